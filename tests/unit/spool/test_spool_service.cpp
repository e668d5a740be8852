// The daemon's side of the spool (Spool): store, acknowledgement tickets, done records and
// deleting segments, driven on a real io_context with the sync thread.
#include <avr_webhookd/spool/spool.hpp>
#include <avr_webhookd/spool/spool_error.hpp>

#include "spool_helpers.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

using namespace avr_webhookd;
using namespace std::chrono_literals;

namespace {

Event spool_event(int call, int number, std::size_t body_size = 100) {
    Event event;
    event.id = "event-" + std::to_string(call) + "-" + std::to_string(number);
    event.uuid = spool::test::call_uuid(call);
    event.type = "transcription";
    event.body = std::string(body_size, 'b');
    event.accepted_wall = std::chrono::system_clock::now();
    return event;
}

// Runs the loop until `condition` or 10 s.
bool run_until(boost::asio::io_context& io, const std::function<bool()>& condition) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!condition() && std::chrono::steady_clock::now() < deadline) {
        io.restart();
        io.run_for(10ms);
    }
    return condition();
}

spool::SpoolSettings settings_for(const std::filesystem::path& dir, SpoolSync sync = SpoolSync::always) {
    spool::SpoolSettings settings;
    settings.dir = dir;
    settings.sync = sync;
    settings.sync_interval = 20ms;
    settings.max_bytes = 1 << 20;
    return settings;
}

}  // namespace

TEST_CASE("spool service: an event is acknowledged once a sync covers it, done events are forgotten", "[spool]") {
    avr_webhookd::test::TempDirectory dir("spool-service");
    boost::asio::io_context io;
    Logger logger({LogLevel::error, LogFormat::text, false});
    Metrics metrics;
    std::uint64_t durable = 0;
    std::vector<std::uint64_t> records;
    {
        spool::Spool spool(io, settings_for(dir.path()), logger, metrics);
        spool.on_durable([&](std::uint64_t ticket) { durable = ticket; });
        spool.start();
        std::uint64_t last_ticket = 0;
        for (int i = 1; i <= 20; ++i) {
            const auto stored = spool.store(spool_event(1, i), static_cast<std::uint64_t>(i));
            REQUIRE_FALSE(stored.error);
            CHECK(stored.ticket > last_ticket);  // one write per event, each its own generation
            last_ticket = stored.ticket;
            records.push_back(stored.record_id);
        }
        CHECK(durable < last_ticket);  // nothing ran the loop yet: no sync reported
        REQUIRE(run_until(io, [&] { return durable >= last_ticket; }));
        CHECK(metrics.spool_sync_latency.count() >= 1);
        CHECK(metrics.spool_sync_latency.count() <= 20);  // group commit: syncs cover several events
        for (int i = 0; i < 15; ++i) spool.done(records[static_cast<std::size_t>(i)]);
        spool.close();
    }
    // What was not done comes back, in order, with its sequence numbers.
    spool::Spool reopened(io, settings_for(dir.path()), logger, metrics);
    const auto& recovered = reopened.recovered();
    REQUIRE(recovered.events.size() == 5);
    CHECK(recovered.events.front().event_id == "event-1-16");
    CHECK(recovered.events.front().sequence == 16);
    CHECK(recovered.last_sequence.at(spool::test::call_uuid(1)) == 20);
    std::string body;
    REQUIRE_FALSE(reopened.read_body(recovered.events.back().locator, body));
    CHECK(body == std::string(100, 'b'));
    CHECK(metrics.spool_recovered == 5);
}

TEST_CASE("spool service: interval acknowledges at once, the spool's bound and its lock", "[spool]") {
    avr_webhookd::test::TempDirectory dir("spool-service");
    boost::asio::io_context io;
    Logger logger({LogLevel::error, LogFormat::text, false});
    Metrics metrics;
    std::uint64_t durable = 0;
    spool::Spool spool(io, settings_for(dir.path(), SpoolSync::interval), logger, metrics);
    spool.on_durable([&](std::uint64_t ticket) { durable = ticket; });
    spool.start();
    const auto stored = spool.store(spool_event(2, 1), 1);
    REQUIRE_FALSE(stored.error);
    CHECK(stored.ticket == 0);
    REQUIRE(run_until(io, [&] { return durable > 0; }));  // the interval timer synced it

    // A second owner of the folder is refused.
    CHECK_THROWS_AS(spool::Spool(io, settings_for(dir.path()), logger, metrics), spool::SpoolOpenError);

    // Up to max_bytes (1 MiB), then spool_full: nothing written, and it says so in health.
    std::error_code error;
    int stored_count = 0;
    for (int i = 2; i < 200 && !error; ++i) {
        error = spool.store(spool_event(2, i, 16 << 10), static_cast<std::uint64_t>(i)).error;
        if (!error) ++stored_count;
    }
    CHECK(error == spool::SpoolErrc::spool_full);
    CHECK(stored_count > 50);
    CHECK_FALSE(spool.has_room(16 << 10));
    REQUIRE(spool.unhealthy_reason());
    CHECK_THAT(*spool.unhealthy_reason(), Catch::Contains("spool_max_bytes"));
    CHECK(metrics.spool_disk_full == 1);
}
