#include "spool_helpers.hpp"

#include <avr_webhookd/spool/record.hpp>
#include <avr_webhookd/spool/spool_error.hpp>

#include <catch2/catch.hpp>

#include <thread>

using namespace avr_webhookd::spool;
using namespace avr_webhookd::spool::test;
using avr_webhookd::test::read_file;
using avr_webhookd::test::TempDirectory;

namespace {

std::size_t segment_files(const std::filesystem::path& dir) {
    std::error_code ec;
    return list_segments(dir, ec).size();
}

}  // namespace

TEST_CASE("a second opener of the same spool is refused until the first lets go", "[spool]") {
    TempDirectory temp("spool");
    const auto dir = temp.path() / "nested" / "spool";
    {
        auto first = SpoolDirectory::open(dir);
        CHECK((std::filesystem::status(dir).permissions() & std::filesystem::perms::all) ==
              std::filesystem::perms::owner_all);
        try {
            (void)SpoolDirectory::open(dir);
            FAIL("a second open succeeded");
        } catch (const SpoolOpenError& e) {
            CHECK(e.kind() == SpoolOpenError::Kind::locked);
            CHECK(std::string(e.what()).find("in use by another avr-webhookd") != std::string::npos);
        }
    }
    CHECK_NOTHROW(SpoolDirectory::open(dir));
}

TEST_CASE("a spool folder that cannot be created is a clear start error", "[spool]") {
    TempDirectory temp("spool");
    write_file(temp.path() / "file", "not a folder");
    try {
        (void)SpoolDirectory::open(temp.path() / "file" / "spool");
        FAIL("open succeeded");
    } catch (const SpoolOpenError& e) {
        CHECK(e.kind() == SpoolOpenError::Kind::cannot_create);
        CHECK(std::string(e.what()).find("cannot create spool_dir") != std::string::npos);
    }
}

TEST_CASE("segment names are strict", "[spool]") {
    CHECK(segment_file_name(0x1f) == "segment-000000000000001f.log");
    CHECK(parse_segment_file_name("segment-000000000000001f.log") == 0x1fu);
    CHECK_FALSE(parse_segment_file_name("segment-000000000000001F.log"));
    CHECK_FALSE(parse_segment_file_name("segment-00000000000001f.log"));
    CHECK_FALSE(parse_segment_file_name("segment-000000000000001f.log.tmp"));
    CHECK_FALSE(parse_segment_file_name("lock"));
}

TEST_CASE("bodies read back from pending memory, the active file and older segments", "[spool]") {
    TempDirectory temp("spool");
    SpoolOptions options;
    options.segment_bytes = 1;
    auto writer = open_writer(temp.path() / "spool", options);
    const Appended old = append(*writer, 1, 1);
    REQUIRE_FALSE(writer->flush());  // rotates: `old` is now in a closed segment
    const Appended second = append(*writer, 1, 2);
    const Appended pending = append(*writer, 1, 3);
    std::string body;
    REQUIRE_FALSE(writer->read_body(pending.locator, body));  // not written yet: from memory
    CHECK(body == body_for(1, 3));
    REQUIRE_FALSE(writer->read_body(second.locator, body));
    CHECK(body == body_for(1, 2));
    REQUIRE_FALSE(writer->flush());  // now in the file (which the flush then closed)
    REQUIRE_FALSE(writer->read_body(old.locator, body));
    CHECK(body == body_for(1, 1));
    REQUIRE_FALSE(writer->read_body(pending.locator, body));
    CHECK(body == body_for(1, 3));
    CHECK(writer->read_body(Locator{999, 0, 100}, body) == SpoolErrc::unknown_record);

    const auto file = temp.path() / "spool" / segment_file_name(old.locator.segment);
    std::string bytes = read_file(file);
    bytes[old.locator.offset + old.locator.length - 2] ^= 1;  // bit rot in the body
    write_file(file, bytes);
    CHECK(writer->read_body(old.locator, body) == SpoolErrc::corrupt_record);
}

TEST_CASE("segments rotate at segment_bytes and are deleted once all their events are done", "[spool]") {
    TempDirectory temp("spool");
    const auto dir = temp.path() / "spool";
    SpoolOptions options;
    options.segment_bytes = 500;
    auto writer = open_writer(dir, options);
    std::vector<Appended> events;
    for (std::uint64_t sequence = 1; sequence <= 30; ++sequence) {
        events.push_back(append(*writer, 1, sequence));
        REQUIRE_FALSE(writer->flush());
    }
    const std::size_t segments = writer->segments();
    REQUIRE(segments >= 8);
    REQUIRE(segment_files(dir) == segments);
    for (const auto& event : events) CHECK(event.locator.offset < 500);  // rotation at the first flush past it

    // Every event of the first segment done: it goes; the others stay.
    const std::uint64_t first = events.front().locator.segment;
    std::size_t in_first = 0;
    for (const auto& event : events)
        if (event.locator.segment == first) {
            writer->append_done(event.record_id);
            ++in_first;
        }
    REQUIRE(in_first >= 2);
    REQUIRE_FALSE(writer->sync());
    const std::uint64_t before = writer->bytes();
    REQUIRE_FALSE(writer->collect());
    CHECK(writer->segments() == segments - 1);
    CHECK(segment_files(dir) == segments - 1);
    CHECK_FALSE(std::filesystem::exists(dir / segment_file_name(first)));
    CHECK(writer->bytes() < before);

    // All done: everything but the active segment goes.
    for (const auto& event : events) writer->append_done(event.record_id);
    CHECK(writer->live_events() == 0);
    REQUIRE_FALSE(writer->sync());
    REQUIRE_FALSE(writer->collect());
    REQUIRE_FALSE(writer->sync());  // carried done records, if any, made durable
    REQUIRE_FALSE(writer->collect());
    CHECK(writer->segments() == 1);
    CHECK(segment_files(dir) == 1);
    writer.reset();
    CHECK(spool_status(dir).events_waiting == 0);
}

TEST_CASE("a done record for an older event is carried forward before its segment is deleted", "[spool]") {
    TempDirectory temp("spool");
    const auto dir = temp.path() / "spool";
    SpoolOptions options;
    options.segment_bytes = 1;  // every flush starts a new segment
    auto writer = open_writer(dir, options);
    const Appended a = append(*writer, 1, 1);
    const Appended b = append(*writer, 2, 1);
    REQUIRE_FALSE(writer->flush());  // segment S: a, b
    const Appended c = append(*writer, 3, 1);
    writer->append_done(a.record_id);
    REQUIRE_FALSE(writer->flush());  // segment T: c, done(a)
    writer->append_done(c.record_id);
    REQUIRE_FALSE(writer->sync());  // segment U: done(c)
    REQUIRE(a.locator.segment == b.locator.segment);
    REQUIRE(c.locator.segment > a.locator.segment);

    // T has no live event, but deleting it at once would bring `a` back after a restart.
    REQUIRE_FALSE(writer->collect());
    CHECK(std::filesystem::exists(dir / segment_file_name(c.locator.segment)));
    // done(a) again, in the active segment; and done(c) from U, whose T is not gone yet either.
    CHECK(writer->pending_bytes() == 2 * kEncodedDoneSize);
    REQUIRE_FALSE(writer->flush());
    REQUIRE_FALSE(writer->collect());  // written but not yet durable: T stays
    CHECK(std::filesystem::exists(dir / segment_file_name(c.locator.segment)));
    REQUIRE_FALSE(writer->sync());
    REQUIRE_FALSE(writer->collect());
    CHECK_FALSE(std::filesystem::exists(dir / segment_file_name(c.locator.segment)));
    CHECK(std::filesystem::exists(dir / segment_file_name(a.locator.segment)));  // b is still live

    writer.reset();
    Recovery recovery;
    writer = open_writer(dir, {}, &recovery);
    REQUIRE(recovery.events.size() == 1);
    CHECK(recovery.events[0].record_id == b.record_id);
}

TEST_CASE("max_bytes refuses the event that would pass it, exactly at the edge", "[spool]") {
    TempDirectory temp("spool");
    const auto dir = temp.path() / "spool";
    const std::uint64_t record = encoded_event_size(
        EventFields{1, 1, 0, make_event(1, 1).id, make_event(1, 1).call, "transcription", body_for(1, 1), {}});
    SpoolOptions options;
    options.segment_bytes = record * 2;
    options.max_bytes = record * 4;  // exactly four events of this size
    auto writer = open_writer(dir, options);
    std::vector<Appended> events;
    for (std::uint64_t sequence = 1; sequence <= 4; ++sequence) {
        events.push_back(append(*writer, 1, sequence));
        REQUIRE_FALSE(writer->flush());
    }
    CHECK(writer->bytes() == options.max_bytes);
    Appended refused;
    CHECK(writer->append_event(make_event(1, 5).view(), refused) == SpoolErrc::spool_full);
    CHECK(writer->bytes() == options.max_bytes);
    CHECK(writer->pending_bytes() == 0);
    REQUIRE_FALSE(writer->flush());

    // Done records are accepted when full; freeing a segment makes room again.
    writer->append_done(events[0].record_id);
    writer->append_done(events[1].record_id);
    REQUIRE_FALSE(writer->sync());
    REQUIRE_FALSE(writer->collect());
    CHECK(writer->bytes() < options.max_bytes);
    Appended again;
    CHECK_FALSE(writer->append_event(make_event(1, 5).view(), again));
}

TEST_CASE("a sync point taken on the loop can be synced on another thread while appends go on", "[spool]") {
    TempDirectory temp("spool");
    SpoolOptions options;
    options.segment_bytes = 1;
    auto writer = open_writer(temp.path() / "spool", options);
    for (std::uint64_t round = 1; round <= 20; ++round) {
        append(*writer, 1, round);
        REQUIRE_FALSE(writer->flush());  // rotates every time: the point holds the old file open
        const SyncPoint point = writer->sync_point();
        CHECK_FALSE(point.empty());
        CHECK(point.generation() == writer->flush_generation());
        std::error_code synced_ec;
        std::thread worker([&] { synced_ec = point.sync(); });
        append(*writer, 2, round);
        worker.join();
        REQUIRE_FALSE(synced_ec);
        writer->synced(point);
        CHECK(writer->durable_generation() == point.generation());
        REQUIRE_FALSE(writer->flush());
    }
    CHECK(writer->sync_point().generation() == writer->flush_generation());
}

// The disk fills up while writing (see limit_file_size), in a child process.
TEST_CASE("a full disk fails the flush, leaves the spool recoverable and the writer usable", "[spool]") {
    TempDirectory temp("spool");
    const auto dir = temp.path() / "spool";
    constexpr int kAcknowledged = 10;
    REQUIRE(exit_status_in_child([&] {
                auto writer = open_writer(dir);
                Appended appended;
                for (int i = 1; i <= kAcknowledged; ++i) (void)writer->append_event(make_event(1, i).view(), appended);
                if (writer->sync()) return 10;
                const std::uint64_t size = writer->bytes();
                const rlimit before = limit_file_size(size + 100);  // part of the next batch fits: a partial write
                writer->append_done(appended.record_id);            // the last event was delivered
                for (int i = kAcknowledged + 1; i <= kAcknowledged + 5; ++i)
                    (void)writer->append_event(make_event(1, i).view(), appended);
                if (writer->flush() != std::errc::file_too_large) return 11;
                if (size_on_disk(dir / segment_file_name(writer->active_segment())) != size) return 12;
                if (writer->live_events() != kAcknowledged - 1 || writer->pending_bytes() != kEncodedDoneSize)
                    return 13;
                ::setrlimit(RLIMIT_FSIZE, &before);  // space is back
                if (writer->sync()) return 14;       // the kept done record is written now
                if (writer->append_event(make_event(2, 1).view(), appended) || writer->sync()) return 15;
                return 0;
            }) == 0);

    Recovery recovery;
    auto writer = open_writer(dir, {}, &recovery);
    CHECK(recovery.stats.corrupt.empty());
    CHECK(recovery.stats.torn_tails.empty());
    REQUIRE(recovery.events.size() == kAcknowledged);  // 1..9 of call 1, then call 2's event
    for (int i = 0; i < kAcknowledged - 1; ++i)
        CHECK(recovery.events[static_cast<std::size_t>(i)].sequence == std::uint64_t(i + 1));
    CHECK(avr_webhookd::uuid_text(recovery.events.back().call) == call_uuid(2));
}

TEST_CASE("a write that fails is cut off the file even when part of it was written", "[spool]") {
    TempDirectory temp("spool");
    const auto dir = temp.path() / "spool";
    REQUIRE(exit_status_in_child([&] {
                auto writer = open_writer(dir);
                limit_file_size(300);
                Appended appended;
                for (int i = 1; i <= 20; ++i) (void)writer->append_event(make_event(1, i).view(), appended);
                if (!writer->flush()) return 20;
                if (writer->bytes() != 0 || writer->live_events() != 0) return 21;
                return 0;
            }) == 0);
    std::error_code ec;
    for (const auto number : list_segments(dir, ec)) CHECK(size_on_disk(dir / segment_file_name(number)) == 0);
    const Recovery recovery = scan_spool(dir, RepairMode::read_only);
    CHECK(recovery.events.empty());
    CHECK(recovery.stats.torn_tails.empty());
}

TEST_CASE("after a restart, done records for older events are still carried forward", "[spool]") {
    TempDirectory temp("spool");
    const auto dir = temp.path() / "spool";
    SpoolOptions options;
    options.segment_bytes = 1;
    Appended a, b, c;
    {
        auto writer = open_writer(dir, options);
        a = append(*writer, 1, 1);
        b = append(*writer, 2, 1);
        REQUIRE_FALSE(writer->flush());  // segment S: a, b
        c = append(*writer, 3, 1);
        writer->append_done(a.record_id);
        REQUIRE_FALSE(writer->sync());  // segment T: c, done(a); then the daemon stops
    }
    Recovery recovery;
    auto writer = open_writer(dir, options, &recovery);
    REQUIRE(recovery.events.size() == 2);
    REQUIRE(recovery.segments.size() >= 2);
    CHECK(recovery.segments[1].carried == std::vector<std::uint64_t>{a.record_id});
    writer->append_done(c.record_id);
    REQUIRE_FALSE(writer->sync());
    REQUIRE_FALSE(writer->collect());
    CHECK(std::filesystem::exists(dir / segment_file_name(c.locator.segment)));  // waits for done(a) again
    REQUIRE_FALSE(writer->sync());
    REQUIRE_FALSE(writer->collect());
    CHECK_FALSE(std::filesystem::exists(dir / segment_file_name(c.locator.segment)));
    writer.reset();
    writer = open_writer(dir, {}, &recovery);
    REQUIRE(recovery.events.size() == 1);
    CHECK(recovery.events[0].record_id == b.record_id);
}
