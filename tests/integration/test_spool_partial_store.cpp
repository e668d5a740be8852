// One destination's copy of an event cannot be stored while another's is (issue 18, point 4):
// Destinations and the Spool in this process, two receivers on loopback, and the spool's test
// seam failing the store for one destination only. The producer is told ok (another destination
// took the event, so it will not send it again); the destination whose copy was stored delivers
// it; the other one dead-letters its copy with reason spool_write_failed (the whole event, naming
// that destination, so a replay goes back there only) and never posts it.

#include "support/daemon_fixture.hpp"

#include <avr_webhookd/delivery/destinations.hpp>
#include <avr_webhookd/spool/spool.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <new>

using namespace avr_webhookd;
using namespace avr_webhookd::test;

namespace {

Event make_event(const std::string& id, unsigned call) {
    Event event;
    event.id = id;
    event.uuid = call_uuid(call);
    event.type = "transcription";
    event.timestamp = "2026-12-01T10:00:00.000Z";
    event.body = R"({"uuid":")" + event.uuid + R"(","type":"transcription","timestamp":")" + event.timestamp +
                 R"(","payload":{"text":"hello"}})";
    event.accepted_at = std::chrono::steady_clock::now();
    event.accepted_wall = std::chrono::system_clock::now();
    return event;
}

// The daemon's pieces around one spool: the default destination to `first`, "crm" to `second`.
struct Fixture {
    TempDir dir;
    ReceiverThread first, second;
    Config config;
    boost::asio::io_context io;
    Logger logger{{LogLevel::error, LogFormat::text, false}};
    Metrics metrics;
    std::unique_ptr<spool::Spool> spool;
    std::unique_ptr<Destinations> destinations;
    std::uint64_t durable = 0;

    explicit Fixture(spool::FileSystem& files = spool::system_file_system()) {
        config.url = first.url();
        Destination crm;
        crm.name = "crm";
        crm.url = second.url();
        config.destinations.push_back(crm);
        config.dead_letter = (dir / "dead-letter.ndjson").string();
        config.spool_dir = (dir / "spool").string();
        spool = std::make_unique<spool::Spool>(io, spool::spool_settings(config), logger, metrics, files);
        destinations = std::make_unique<Destinations>(io, config, logger, metrics, spool.get());
        destinations->restore_from_spool();
        spool->on_durable([this](std::uint64_t ticket) { durable = ticket; });
        destinations->start();
        spool->start();
    }
    ~Fixture() {
        spool->close();
        destinations.reset();
    }

    bool run_until(const std::function<bool()>& condition) {
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        while (!condition() && std::chrono::steady_clock::now() < deadline) {
            io.restart();
            io.run_for(10ms);
        }
        return condition();
    }

    // The dead-letter lines, parsed.
    std::vector<boost::json::object> dead_letters() const {
        std::vector<boost::json::object> lines;
        if (!std::filesystem::exists(config.dead_letter)) return lines;
        for (const auto& line : read_lines(config.dead_letter)) lines.push_back(boost::json::parse(line).as_object());
        return lines;
    }
};

std::vector<std::string> ids_received(const ReceiverThread& receiver) {
    std::vector<std::string> ids;
    for (const auto& request : receiver.requests()) ids.push_back(header(request, "x-avr-webhook-id"));
    return ids;
}

std::map<std::string, std::string> sequences_received(const ReceiverThread& receiver) {
    std::map<std::string, std::string> sequences;
    for (const auto& request : receiver.requests())
        sequences[header(request, "x-avr-webhook-id")] = header(request, "x-avr-webhook-sequence");
    return sequences;
}

// The real disk, with the spool's writes counted and failed on demand.
struct WatchedDisk : spool::SystemFileSystem {
    std::atomic<int> writes{0};
    std::atomic<bool> fail_writes{false};
    std::atomic<bool> throw_on_write{false};
    std::error_code write_at(int fd, std::string_view bytes, std::uint64_t offset) override {
        ++writes;
        if (throw_on_write) throw std::bad_alloc();
        if (fail_writes) return std::error_code(EIO, std::system_category());
        return SystemFileSystem::write_at(fd, bytes, offset);
    }
};

}  // namespace

TEST_CASE("spool: a copy stored for one destination and not for another: one delivers, the other dead-letters it",
          "[integration][spool]") {
    Fixture f;
    f.spool->set_store_fault([](const Event&, std::string_view destination) -> std::error_code {
        return destination == "crm" ? std::error_code(EIO, std::system_category()) : std::error_code{};
    });
    const auto receipt = f.destinations->submit(make_event("e1", 1));
    // Taken: the default destination's copy is stored, so the producer gets ok once it is durable.
    CHECK(receipt.admission == EventSink::Admission::queued);
    CHECK(receipt.ticket > 0);
    REQUIRE(f.run_until([&] { return f.durable >= receipt.ticket; }));

    // The default destination delivers its copy.
    REQUIRE(f.run_until([&] { return f.metrics.destination("default").events_delivered == 1; }));
    CHECK(ids_received(f.first) == std::vector<std::string>{"e1"});
    // crm dead-letters its copy: the whole event, its destination and why, and never posts it.
    REQUIRE(f.run_until([&] { return f.metrics.destination("crm").events_dead_lettered == 1; }));
    const auto lines = f.dead_letters();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].at("id") == "e1");
    CHECK(lines[0].at("destination") == "crm");
    CHECK(lines[0].at("failure").as_object().at("reason") == "spool_write_failed");
    CHECK(lines[0].at("failure").as_object().at("code") == "SPOOL_WRITE_FAILED");
    CHECK(lines[0].at("payload").as_object().at("text") == "hello");
    CHECK(f.metrics.destination("crm").delivery_attempts == 0);
    CHECK(f.metrics.destination("default").events_dead_lettered == 0);

    // Once stores succeed again, both destinations get the next event.
    f.spool->set_store_fault({});
    const auto next = f.destinations->submit(make_event("e2", 1));
    CHECK(next.admission == EventSink::Admission::queued);
    REQUIRE(f.run_until([&] { return f.metrics.destination("crm").events_delivered == 1; }));
    REQUIRE(f.run_until([&] { return f.metrics.destination("default").events_delivered == 2; }));
    CHECK(ids_received(f.first) == std::vector<std::string>{"e1", "e2"});
    CHECK(ids_received(f.second) == std::vector<std::string>{"e2"});
    CHECK(f.dead_letters().size() == 1);
}

TEST_CASE("spool: when no destination's copy can be stored the event is refused and nothing is dead-lettered",
          "[integration][spool]") {
    Fixture f;
    f.spool->set_store_fault(
        [](const Event&, std::string_view) { return std::error_code(ENOSPC, std::system_category()); });
    const auto receipt = f.destinations->submit(make_event("e1", 2));
    // The producer is told; it keeps the event and sends it again later.
    CHECK(receipt.admission == EventSink::Admission::not_stored);
    CHECK_THAT(receipt.detail, Catch::Contains("could not store"));
    f.spool->set_store_fault({});
    const auto again = f.destinations->submit(make_event("e2", 2));
    REQUIRE(again.admission == EventSink::Admission::queued);
    REQUIRE(f.run_until([&] {
        return f.metrics.destination("default").events_delivered == 1 &&
               f.metrics.destination("crm").events_delivered == 1;
    }));
    CHECK(ids_received(f.first) == std::vector<std::string>{"e2"});
    CHECK(ids_received(f.second) == std::vector<std::string>{"e2"});
    CHECK(f.dead_letters().empty());
}

// Group writes (issue 21): the intake hands the lines of one read over as a batch. Every copy of
// every event in it (here 3 events x 2 destinations) is written with one write, and queued in
// order once that write succeeded; a failed write refuses the whole batch, queues none of it and
// gives none of its sequence numbers away.
TEST_CASE("spool: a batch is written with one write and queued in order, and a failed write refuses all of it",
          "[integration][spool]") {
    WatchedDisk disk;
    Fixture f(disk);
    f.destinations->begin_batch();
    for (const auto& [id, call] : {std::pair{"e1", 3u}, {"e2", 4u}, {"e3", 3u}})
        CHECK(f.destinations->submit(make_event(id, call)).admission == EventSink::Admission::staged);
    const int writes_before = disk.writes;
    const auto taken = f.destinations->end_batch();
    CHECK(disk.writes == writes_before + 1);
    REQUIRE(taken.admission == EventSink::Admission::queued);
    REQUIRE(taken.ticket > 0);
    REQUIRE(f.run_until([&] { return f.durable >= taken.ticket; }));
    REQUIRE(f.run_until([&] {
        return f.metrics.destination("default").events_delivered == 3 &&
               f.metrics.destination("crm").events_delivered == 3;
    }));
    for (const auto* receiver : {&f.first, &f.second}) {
        const auto sequences = sequences_received(*receiver);
        CHECK(sequences == std::map<std::string, std::string>{{"e1", "1"}, {"e2", "1"}, {"e3", "2"}});
    }

    // The next batch's write fails: both of its events are refused, none is delivered or dead-lettered.
    f.destinations->begin_batch();
    CHECK(f.destinations->submit(make_event("e4", 3)).admission == EventSink::Admission::staged);
    CHECK(f.destinations->submit(make_event("e5", 5)).admission == EventSink::Admission::staged);
    disk.fail_writes = true;
    const auto refused = f.destinations->end_batch();
    disk.fail_writes = false;
    CHECK(refused.admission == EventSink::Admission::not_stored);
    CHECK_THAT(refused.detail, Catch::Contains("Input/output error"));

    // Writes work again: the next event of call 3 takes the number e4 did not keep.
    f.destinations->begin_batch();
    CHECK(f.destinations->submit(make_event("e6", 3)).admission == EventSink::Admission::staged);
    REQUIRE(f.destinations->end_batch().admission == EventSink::Admission::queued);
    REQUIRE(f.run_until([&] {
        return f.metrics.destination("default").events_delivered == 4 &&
               f.metrics.destination("crm").events_delivered == 4;
    }));
    for (const auto* receiver : {&f.first, &f.second}) {
        const auto sequences = sequences_received(*receiver);
        CHECK(sequences.size() == 4);
        CHECK(sequences.at("e6") == "3");
        CHECK_FALSE(sequences.contains("e4"));
        CHECK_FALSE(sequences.contains("e5"));
    }
    CHECK(f.dead_letters().empty());
}

// A copy one destination cannot store, in a batch: written off only once the batch is taken.
TEST_CASE("spool: in a batch, a copy that one destination cannot store is written off only if the batch is taken",
          "[integration][spool]") {
    WatchedDisk disk;
    Fixture f(disk);
    f.spool->set_store_fault([](const Event&, std::string_view destination) -> std::error_code {
        return destination == "crm" ? std::error_code(EIO, std::system_category()) : std::error_code{};
    });
    f.destinations->begin_batch();
    CHECK(f.destinations->submit(make_event("e1", 6)).admission == EventSink::Admission::staged);
    disk.fail_writes = true;
    CHECK(f.destinations->end_batch().admission == EventSink::Admission::not_stored);
    disk.fail_writes = false;
    CHECK(f.dead_letters().empty());  // refused as a whole: the producer sends it again

    f.destinations->begin_batch();
    CHECK(f.destinations->submit(make_event("e2", 6)).admission == EventSink::Admission::staged);
    REQUIRE(f.destinations->end_batch().admission == EventSink::Admission::queued);
    REQUIRE(f.run_until([&] { return f.metrics.destination("crm").events_dead_lettered == 1; }));
    const auto lines = f.dead_letters();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].at("id") == "e2");
    CHECK(lines[0].at("destination") == "crm");
    REQUIRE(f.run_until([&] { return f.metrics.destination("default").events_delivered == 1; }));
    CHECK(ids_received(f.first) == std::vector<std::string>{"e2"});
}

// An exception while a batch is written (bad_alloc, a bug) ends the batch all the same: the sink is
// not left batching (the next event is queued at once, not staged), and the batch's events are
// queued and delivered (the intake refuses their lines, so at worst one is delivered twice).
TEST_CASE("spool: an exception while a batch is written ends the batch all the same", "[integration][spool]") {
    WatchedDisk disk;
    Fixture f(disk);
    f.destinations->begin_batch();
    CHECK(f.destinations->submit(make_event("e1", 8)).admission == EventSink::Admission::staged);
    disk.throw_on_write = true;
    CHECK_THROWS_AS(f.destinations->end_batch(), std::bad_alloc);
    disk.throw_on_write = false;
    const auto next = f.destinations->submit(make_event("e2", 8));
    CHECK(next.admission == EventSink::Admission::queued);
    REQUIRE(f.run_until([&] {
        return f.metrics.destination("default").events_delivered == 2 &&
               f.metrics.destination("crm").events_delivered == 2;
    }));
    CHECK(ids_received(f.first) == std::vector<std::string>{"e1", "e2"});
    CHECK(sequences_received(f.second) == std::map<std::string, std::string>{{"e1", "1"}, {"e2", "2"}});
}
