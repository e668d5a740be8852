// A failed fdatasync ("fsyncgate"): the kernel may have dropped the pages it could not write and
// report the next sync of the file as a success. The writer must continue in a new segment, write
// the unconfirmed records again there, and never count a failed flush as durable before that copy
// is synced. The loss is simulated by cutting the old segment back to its last confirmed size.

#include "spool_helpers.hpp"

#include <avr_webhookd/spool/record.hpp>
#include <avr_webhookd/spool/sync_ledger.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>

using namespace avr_webhookd::spool;
using namespace avr_webhookd::spool::test;
using avr_webhookd::test::TempDirectory;

namespace {

// Makes the next `fail_next` syncs fail with EIO, as a failing disk does.
struct FailingSync {
    int fail_next = 0;
    SyncFunction hook() {
        return [this](int fd, SyncTarget target) -> std::error_code {
            if (fail_next > 0) {
                --fail_next;
                return {EIO, std::system_category()};
            }
            return system_sync(fd, target);
        };
    }
};

// A spool folder whose writer's syncs fail on demand.
struct FailingSpool {
    TempDirectory temp{"spool"};
    std::filesystem::path dir = temp.path() / "spool";
    FailingSync failing;

    std::unique_ptr<SpoolWriter> open() {
        SpoolOptions options;
        options.sync_file = failing.hook();
        return open_writer(dir, options);
    }
};

std::filesystem::path segment_file(const std::filesystem::path& dir, std::uint64_t number) {
    return dir / segment_file_name(number);
}

// Every event of `expected` recovered once, in this order, and nothing else.
void check_recovered(const std::filesystem::path& dir, const std::vector<Appended>& expected) {
    const Recovery recovery = scan_spool(dir, RepairMode::read_only);
    CHECK(recovery.stats.corrupt.empty());
    REQUIRE(recovery.events.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) CHECK(recovery.events[i].record_id == expected[i].record_id);
}

}  // namespace

TEST_CASE("after a failed sync new records go to a new segment and the unconfirmed ones are written again there",
          "[spool]") {
    FailingSpool spool;
    auto writer = spool.open();
    std::vector<Appended> events;
    for (std::uint64_t sequence = 1; sequence <= 3; ++sequence) events.push_back(append(*writer, 1, sequence));
    REQUIRE_FALSE(writer->sync());
    const std::uint64_t old_segment = writer->active_segment();
    const auto confirmed_size = size_on_disk(segment_file(spool.dir, old_segment));
    const std::uint64_t confirmed = writer->durable_generation();
    for (std::uint64_t sequence = 4; sequence <= 6; ++sequence) events.push_back(append(*writer, 1, sequence));
    REQUIRE_FALSE(writer->flush());
    const std::uint64_t failed_generation = writer->flush_generation();
    const auto written_size = size_on_disk(segment_file(spool.dir, old_segment));

    spool.failing.fail_next = 1;
    CHECK(writer->sync() == std::errc::io_error);
    CHECK(writer->durable_generation() == confirmed);
    CHECK(writer->active_segment() > old_segment);
    // The kernel dropped the pages it could not write: 4..6 are gone from the old segment.
    std::filesystem::resize_file(segment_file(spool.dir, old_segment), confirmed_size);

    events.push_back(append(*writer, 1, 7));
    CHECK(events.back().locator.segment == writer->active_segment());
    REQUIRE_FALSE(writer->flush());
    CHECK(size_on_disk(segment_file(spool.dir, old_segment)) == confirmed_size);  // never written again
    CHECK(written_size > confirmed_size);
    std::string body;
    REQUIRE_FALSE(writer->read_body(events[4].locator, body));  // followed to its new place
    CHECK(body == body_for(1, 5));
    CHECK(writer->durable_generation() < failed_generation);

    REQUIRE_FALSE(writer->sync());
    CHECK(writer->durable_generation() == writer->flush_generation());
    writer.reset();
    check_recovered(spool.dir, events);
}

TEST_CASE("a sync that succeeds does not cover an earlier one that failed or is still running", "[spool]") {
    FailingSpool spool;
    auto writer = spool.open();
    const std::uint64_t old_segment = writer->active_segment();
    const std::vector<Appended> events{append(*writer, 1, 1), append(*writer, 2, 1)};
    REQUIRE_FALSE(writer->flush());
    const SyncPoint first = writer->sync_point();
    const std::vector<Appended> later{append(*writer, 1, 2), append(*writer, 2, 2)};
    REQUIRE_FALSE(writer->flush());
    const SyncPoint second = writer->sync_point();
    REQUIRE(second.generation() == 2);
    REQUIRE_FALSE(second.sync());
    spool.failing.fail_next = 1;
    REQUIRE(first.sync());

    SECTION("the later success is reported first") {
        writer->synced(second);
        CHECK(writer->durable_generation() == 0);  // the first is still running
        writer->sync_failed(first);
    }
    SECTION("the failure is reported first") {
        writer->sync_failed(first);
        writer->synced(second);
    }
    CHECK(writer->durable_generation() == 0);
    CHECK(writer->active_segment() > old_segment);
    std::filesystem::resize_file(segment_file(spool.dir, old_segment), 0);  // nothing of it is trusted

    // sync_failed wrote everything unconfirmed again: a new sync point is all it takes.
    const SyncPoint third = writer->sync_point();
    CHECK(third.generation() == 3);
    REQUIRE_FALSE(third.sync());
    writer->synced(third);
    CHECK(writer->durable_generation() == 3);
    writer.reset();
    check_recovered(spool.dir, {events[0], events[1], later[0], later[1]});
}

TEST_CASE("sync() covers what a sync point whose result was dropped covered", "[spool]") {
    FailingSpool spool;
    auto writer = spool.open();
    append(*writer, 1, 1);
    REQUIRE_FALSE(writer->flush());
    const SyncPoint dropped = writer->sync_point();  // its thread was stopped at shutdown
    REQUIRE(dropped.generation() == 1);
    REQUIRE_FALSE(writer->sync());  // nothing new: its own point covers no flush
    CHECK(writer->durable_generation() == 1);
}

TEST_CASE("records survive two failed syncs in a row, and the segments they left go once all is done", "[spool]") {
    FailingSpool spool;
    auto writer = spool.open();
    const std::uint64_t first_segment = writer->active_segment();
    std::vector<Appended> events;
    for (std::uint64_t sequence = 1; sequence <= 3; ++sequence) events.push_back(append(*writer, 1, sequence));
    writer->append_done(events[0].record_id);  // delivered at once: not written again
    spool.failing.fail_next = 2;
    CHECK(writer->sync());
    CHECK(writer->sync());
    CHECK(writer->active_segment() == first_segment + 2);
    CHECK(writer->live_events() == 2);
    CHECK(writer->durable_generation() == 0);
    for (std::uint64_t number = first_segment; number < first_segment + 2; ++number)
        std::filesystem::resize_file(segment_file(spool.dir, number), 0);
    std::string body;
    REQUIRE_FALSE(writer->read_body(events[2].locator, body));
    CHECK(body == body_for(1, 3));

    REQUIRE_FALSE(writer->sync());
    CHECK(writer->durable_generation() == writer->flush_generation());
    check_recovered(spool.dir, {events[1], events[2]});

    writer->append_done(events[1].record_id);
    writer->append_done(events[2].record_id);
    for (int round = 0; round < 2; ++round) {
        REQUIRE_FALSE(writer->sync());
        REQUIRE_FALSE(writer->collect());
    }
    CHECK(writer->segments() == 1);
    CHECK(writer->live_events() == 0);
    writer.reset();
    check_recovered(spool.dir, {});
}

// Writing the records again fails too (see limit_file_size), in a child process.
TEST_CASE("records to write again that cannot be written stay pending, ahead of new ones", "[spool]") {
    FailingSpool spool;
    REQUIRE(exit_status_in_child([&] {
                auto writer = spool.open();
                const std::uint64_t old_segment = writer->active_segment();
                Appended appended;
                for (int i = 1; i <= 2; ++i) (void)writer->append_event(make_event(1, i).view(), appended);
                if (writer->sync()) return 30;
                const auto confirmed_size = size_on_disk(segment_file(spool.dir, old_segment));
                for (int i = 3; i <= 5; ++i) (void)writer->append_event(make_event(1, i).view(), appended);
                if (writer->flush()) return 31;
                const rlimit before = limit_file_size(100);  // less than one record fits in a new segment
                spool.failing.fail_next = 1;
                if (writer->sync() != std::errc::io_error) return 32;
                std::filesystem::resize_file(segment_file(spool.dir, old_segment), confirmed_size);
                if (writer->pending_bytes() == 0 || writer->live_events() != 5) return 33;
                if (writer->append_event(make_event(2, 1).view(), appended) || !writer->flush()) return 34;
                if (writer->live_events() != 5 || writer->durable_generation() != 1) return 35;  // call 2 was dropped
                ::setrlimit(RLIMIT_FSIZE, &before);                                              // space is back
                if (writer->sync() || writer->durable_generation() != writer->flush_generation()) return 36;
                return 0;
            }) == 0);
    const Recovery recovery = scan_spool(spool.dir, RepairMode::read_only);
    REQUIRE(recovery.events.size() == 5);
    for (std::size_t i = 0; i < 5; ++i) CHECK(recovery.events[i].sequence == i + 1);
}

TEST_CASE("the sync ledger keeps what is not confirmed in order and hands over what failed", "[spool]") {
    SyncLedger ledger;
    const auto flush = [&](std::uint64_t generation, std::uint64_t covers_from, std::string bytes) {
        ledger.flushed({generation, covers_from, 1, generation * 10, std::move(bytes), false, nullptr});
    };
    for (std::uint64_t generation = 1; generation <= 4; ++generation) flush(generation, generation, "0123456789");
    CHECK(ledger.bytes() == 40);
    ledger.synced(3, 4);  // a later point confirmed first: kept until the older one is
    CHECK(ledger.oldest_unconfirmed() == 1u);
    CHECK(ledger.bytes() == 40);
    ledger.synced(1, 2);
    CHECK_FALSE(ledger.oldest_unconfirmed());
    CHECK(ledger.bytes() == 0);

    flush(5, 5, "a");
    flush(6, 6, "b");
    flush(7, 7, "c");
    ledger.synced(6, 6);
    ledger.failed();      // 5 failed: 6, confirmed behind it, is suspect too
    ledger.synced(7, 7);  // a success reported after the failure changes nothing
    CHECK(ledger.has_failed());
    CHECK(ledger.oldest_unconfirmed() == 5u);
    const auto failed = ledger.take_failed();
    REQUIRE(failed.size() == 3);
    CHECK(failed[0].bytes == "a");
    CHECK(failed[1].bytes == "b");
    CHECK(failed[2].generation == 7);
    CHECK_FALSE(ledger.oldest_unconfirmed());  // the writer's to hold until written again
    CHECK(ledger.bytes() == 0);
    flush(8, 5, "abc");  // written again: covers 5 to 7
    CHECK(ledger.oldest_unconfirmed() == 5u);
    ledger.synced(8, 8);
    CHECK_FALSE(ledger.oldest_unconfirmed());
}

namespace {

// The model of a random run: what was appended and what is done.
struct Model {
    struct Event {
        Appended appended;
        int call = 0;
        std::uint64_t sequence = 0;
        bool done = false;
    };
    std::vector<Event> events;
    std::map<int, std::uint64_t> last_sequence;

    std::vector<std::size_t> live() const {
        std::vector<std::size_t> indexes;
        for (std::size_t i = 0; i < events.size(); ++i)
            if (!events[i].done) indexes.push_back(i);
        return indexes;
    }
};

// Everything the writer says about the model's events holds.
void check_writer(const SpoolWriter& writer, const Model& model) {
    const auto live = model.live();
    REQUIRE(writer.live_events() == live.size());
    REQUIRE(writer.durable_generation() <= writer.flush_generation());
    std::string body;
    for (const auto index : live) {
        const auto& event = model.events[index];
        REQUIRE_FALSE(writer.read_body(event.appended.locator, body));
        REQUIRE(body == body_for(event.call, event.sequence));
    }
}

}  // namespace

TEST_CASE("random runs with failing syncs and rotations keep every live event readable and recoverable", "[spool]") {
    int failed_syncs = 0;
    for (std::uint32_t seed = 1; seed <= 20; ++seed) {
        INFO("seed " << seed);
        FailingSpool spool;
        std::mt19937 random(seed);
        const auto chance = [&](int percent) { return static_cast<int>(random() % 100) < percent; };
        Model model;
        {
            auto writer = spool.open();
            std::vector<SyncPoint> in_flight;
            const auto report = [&](std::size_t which) {
                spool.failing.fail_next = chance(30) ? 1 : 0;
                if (in_flight[which].sync()) {
                    writer->sync_failed(in_flight[which]);
                    ++failed_syncs;
                } else {
                    writer->synced(in_flight[which]);
                }
                in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(which));
            };
            for (int step = 0; step < 150; ++step) {
                const int call = static_cast<int>(random() % 4) + 1;
                const auto live = model.live();
                if (chance(45)) {
                    const std::uint64_t sequence = ++model.last_sequence[call];
                    model.events.push_back({append(*writer, call, sequence), call, sequence, false});
                } else if (chance(40) && !live.empty()) {
                    auto& event = model.events[live[random() % live.size()]];
                    writer->append_done(event.appended.record_id);
                    event.done = true;
                } else if (chance(50)) {
                    REQUIRE_FALSE(writer->flush());
                    if (in_flight.size() < 2) in_flight.push_back(writer->sync_point());
                } else if (!in_flight.empty()) {
                    report(random() % in_flight.size());
                } else {
                    if (chance(50)) writer->rotate_soon();
                    REQUIRE_FALSE(writer->collect());
                }
                check_writer(*writer, model);
            }
            while (!in_flight.empty()) report(0);
            spool.failing.fail_next = 0;
            REQUIRE_FALSE(writer->sync());
            CHECK(writer->durable_generation() == writer->flush_generation());
            check_writer(*writer, model);
        }
        Recovery recovery;
        auto writer = open_writer(spool.dir, {}, &recovery);
        std::set<std::uint64_t> expected, found;
        for (const auto index : model.live()) expected.insert(model.events[index].appended.record_id);
        for (const auto& event : recovery.events) found.insert(event.record_id);
        CHECK(found == expected);
        REQUIRE(recovery.events.size() == expected.size());
        std::map<avr_webhookd::UuidBytes, std::uint64_t> last_seen;
        for (const auto& event : recovery.events) {
            CHECK(event.sequence > last_seen[event.call]);  // per-call order
            last_seen[event.call] = event.sequence;
            writer->append_done(event.record_id);
        }
        for (int round = 0; round < 3; ++round) {
            REQUIRE_FALSE(writer->sync());
            REQUIRE_FALSE(writer->collect());
        }
        CHECK(writer->segments() == 1);
        writer.reset();
        CHECK(scan_spool(spool.dir, RepairMode::read_only).events.empty());
    }
    CHECK(failed_syncs >= 20);
}
