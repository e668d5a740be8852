// Reading parked events back from the spool (SpoolEventLoader): every field comes back, and a
// record damaged on disk is reported and counted, never delivered nor a crash.
#include <avr_webhookd/delivery/spool_loader.hpp>
#include <avr_webhookd/queue/call_queues.hpp>

#include "spool_helpers.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <fstream>

using namespace avr_webhookd;
using namespace std::chrono_literals;

namespace {

Event loader_event(int call, int number) {
    Event event;
    event.id = "event-" + std::to_string(call) + "-" + std::to_string(number);
    event.uuid = spool::test::call_uuid(call);
    event.type = number == 1 ? "call_started" : "transcription";
    event.body = R"({"uuid":")" + event.uuid + R"(","n":)" + std::to_string(number) + "}";
    event.accepted_wall = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'780'000'000'123 + number));
    return event;
}

spool::SpoolSettings interval_settings(const std::filesystem::path& dir) {
    spool::SpoolSettings settings;
    settings.dir = dir;
    settings.sync = SpoolSync::interval;
    settings.max_bytes = 1 << 20;
    return settings;
}

// A spool in a temp folder with a loader reading from it.
struct LoaderFixture {
    avr_webhookd::test::TempDirectory dir{"spool-loader"};
    boost::asio::io_context io;
    Logger logger{{LogLevel::error, LogFormat::text, false}};
    Metrics metrics;
    spool::Spool spool{io, interval_settings(dir.path()), logger, metrics};
    bool read_ended = false;  // the loader's on_ready
    SpoolEventLoader loader{spool, logger, metrics, [this] { read_ended = true; }};
    ~LoaderFixture() { spool.close(); }

    // The next job, running the loop while the queues wait for a read (as the Deliverer does).
    std::optional<CallQueues::Job> take(CallQueues& queues) {
        for (;;) {
            if (auto job = queues.take(CallQueues::TimePoint{})) return job;
            if (queues.loading() == 0) return std::nullopt;
            const auto deadline = std::chrono::steady_clock::now() + 10s;
            while (!read_ended && std::chrono::steady_clock::now() < deadline) {
                io.restart();
                io.run_for(5ms);
            }
            REQUIRE(read_ended);
            read_ended = false;
            queues.loads_ready();
        }
    }
};

}  // namespace

TEST_CASE("spool loader: parked events come back whole, in the queues' order, and a damaged one is reported",
          "[spool]") {
    LoaderFixture fixture;
    auto& spool = fixture.spool;
    auto& loader = fixture.loader;
    auto& metrics = fixture.metrics;
    CallQueues queues;
    queues.set_loader(&loader, 0);  // park everything behind a head

    std::vector<spool::Locator> places;
    for (int number = 1; number <= 6; ++number) {
        Event event = loader_event(1, number);
        const auto sequence = queues.next_sequence(*call_key(event.uuid));
        const auto stored = spool.store(event, sequence);
        REQUIRE_FALSE(stored.error);
        event.spool_record = stored.record_id;
        places.push_back(stored.locator);
        queues.push(std::move(event), CallQueues::TimePoint{}, sequence,
                    SpoolEventLoader::place_of(stored.record_id, stored.locator));
    }
    CHECK(queues.parked() == 5);
    // Damage event 4's record on disk (a byte of its body): its checksum no longer matches.
    {
        std::fstream file(spool.path() / spool::segment_file_name(places[3].segment),
                          std::ios::in | std::ios::out | std::ios::binary);
        file.seekp(static_cast<std::streamoff>(places[3].offset + places[3].length - 2));
        file.put('#');
    }
    spool.update_gauges();
    CHECK(metrics.spool_records == 6);

    std::vector<int> delivered;
    while (auto job = fixture.take(queues)) {
        const Event& event = *job->event;
        const int number = static_cast<int>(job->sequence);
        const Event expected = loader_event(1, number);
        CHECK(event.id == expected.id);
        CHECK(event.uuid == expected.uuid);
        CHECK(event.type == expected.type);
        CHECK(event.body == expected.body);
        CHECK(event.accepted_wall == expected.accepted_wall);
        CHECK(event.spool_record != 0);
        delivered.push_back(number);
        spool.done(event.spool_record);
        queues.finish(*job, CallQueues::TimePoint{});
    }
    CHECK(delivered == std::vector<int>{1, 2, 3, 5, 6});
    CHECK(metrics.spool_unreadable_events == 1);
    CHECK(spool.parked_reads() == 1);  // one read off the loop brought events 2 to 6 back
    spool.update_gauges();
    CHECK(metrics.spool_records == 0);  // the damaged one is forgotten too: it can never be delivered
    CHECK(queues.queued() == 0);
}

TEST_CASE("spool loader: a record that is not the one parked there is not delivered", "[spool]") {
    LoaderFixture fixture;
    auto& spool = fixture.spool;
    auto& loader = fixture.loader;
    auto& metrics = fixture.metrics;
    const Event event = loader_event(2, 1);
    const auto stored = spool.store(event, 1);
    REQUIRE_FALSE(stored.error);
    const auto key = *call_key(event.uuid);
    REQUIRE(loader.load(key, 1, SpoolEventLoader::place_of(stored.record_id, stored.locator)));
    CHECK_FALSE(loader.load(key, 1, SpoolEventLoader::place_of(stored.record_id + 1, stored.locator)));
    CHECK_FALSE(loader.load(*call_key(spool::test::call_uuid(3)), 1,
                            SpoolEventLoader::place_of(stored.record_id, stored.locator)));
    auto beyond = stored.locator;
    beyond.offset += 1 << 16;
    CHECK_FALSE(loader.load(key, 1, SpoolEventLoader::place_of(stored.record_id, beyond)));
    CHECK(metrics.spool_unreadable_events == 3);
}

TEST_CASE("spool loader: the resident budget is spool_resident_bytes, at most half of max_queue_bytes",
          "[spool][config]") {
    Config config;  // the defaults: 80 MiB of 256 MiB, so a burst of 100,000 small events stays whole
    CHECK(SpoolEventLoader::resident_budget(config) == 80u << 20);
    Event burst_event = loader_event(1, 2);
    burst_event.body.assign(176, 'x');  // a short transcription event, as the bench sends
    CHECK(100'000 * CallQueues::event_cost(burst_event) < SpoolEventLoader::resident_budget(config));
    config.max_queue_bytes = 64u << 20;
    CHECK(SpoolEventLoader::resident_budget(config) == 32u << 20);
    config.spool_resident_bytes = 0;  // every event behind its call's next one is parked
    CHECK(SpoolEventLoader::resident_budget(config) == 0);
}
