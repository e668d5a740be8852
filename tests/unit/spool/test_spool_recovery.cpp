#include "spool_helpers.hpp"

#include <avr_webhookd/spool/record.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <random>

using namespace avr_webhookd::spool;
using namespace avr_webhookd::spool::test;
using avr_webhookd::test::read_file;
using avr_webhookd::test::TempDirectory;

namespace {

// One segment holding `count` events of one call (sequence 1..count), written by a real writer;
// returns its bytes and the offset where each record starts.
struct BuiltSegment {
    std::string bytes;
    std::vector<std::size_t> starts;
};

BuiltSegment build_segment(int count, bool with_done_for_first = false) {
    TempDirectory temp("spool-build");
    auto writer = open_writer(temp.path() / "spool");
    BuiltSegment out;
    for (int i = 1; i <= count; ++i) {
        Appended appended;
        REQUIRE_FALSE(writer->append_event(make_event(1, static_cast<std::uint64_t>(i)).view(), appended));
        out.starts.push_back(appended.locator.offset);
    }
    if (with_done_for_first) writer->append_done(1);
    REQUIRE_FALSE(writer->flush());
    out.bytes = read_file(temp.path() / "spool" / segment_file_name(writer->active_segment()));
    return out;
}

std::vector<std::uint64_t> sequences(const Recovery& recovery) {
    std::vector<std::uint64_t> out;
    for (const auto& event : recovery.events) out.push_back(event.sequence);
    return out;
}

std::vector<std::uint64_t> one_to(std::size_t n) {
    std::vector<std::uint64_t> out;
    for (std::uint64_t i = 1; i <= n; ++i) out.push_back(i);
    return out;
}

}  // namespace

TEST_CASE("an empty or missing spool recovers nothing", "[spool]") {
    TempDirectory temp("spool");
    const Recovery missing = scan_spool(temp.path() / "absent", RepairMode::read_only);
    CHECK(missing.events.empty());
    CHECK_FALSE(missing.stats.list_error);
    const auto directory = SpoolDirectory::open(temp.path() / "spool");
    const Recovery empty = recover(directory);
    CHECK(empty.events.empty());
    CHECK(empty.next_record_id == 1);
}

TEST_CASE("a tail torn at every byte offset keeps every whole record and cuts the rest", "[spool]") {
    const BuiltSegment built = build_segment(4);
    const std::size_t last_two = built.starts[2];
    TempDirectory temp("spool-torn");
    const auto directory = SpoolDirectory::open(temp.path() / "spool");
    const auto file = directory.segment_path(1);
    for (std::size_t length = last_two; length <= built.bytes.size(); ++length) {
        write_file(file, std::string_view(built.bytes).substr(0, length));
        const Recovery recovery = recover(directory);

        std::size_t whole = 0;
        while (whole < built.starts.size() &&
               (whole + 1 < built.starts.size() ? built.starts[whole + 1] : built.bytes.size()) <= length)
            ++whole;
        const std::size_t valid_end = whole < built.starts.size() ? built.starts[whole] : built.bytes.size();
        INFO("cut at " << length);
        REQUIRE(sequences(recovery) == one_to(whole));
        REQUIRE(recovery.stats.corrupt.empty());
        REQUIRE(recovery.stats.torn_tails.size() == (length == valid_end ? 0u : 1u));
        if (!recovery.stats.torn_tails.empty()) {
            REQUIRE(recovery.stats.torn_tails[0].offset == valid_end);
            REQUIRE(recovery.stats.torn_tails[0].length == length - valid_end);
        }
        REQUIRE(size_on_disk(file) == valid_end);  // cut off, so the next scan is clean
        REQUIRE(recover(directory).stats.torn_tails.empty());
    }
}

TEST_CASE("a bit flipped anywhere never crashes and loses only the record it hit", "[spool]") {
    const BuiltSegment built = build_segment(8);
    TempDirectory temp("spool-flip");
    std::mt19937 random(1234);
    for (std::size_t at = 0; at < built.bytes.size(); ++at) {
        std::string damaged = built.bytes;
        damaged[at] = static_cast<char>(damaged[at] ^ (1 << (random() % 8)));
        const auto dir = temp.path();
        write_file(dir / segment_file_name(1), damaged);
        const Recovery recovery = scan_spool(dir, RepairMode::read_only);

        const std::size_t hit = static_cast<std::size_t>(
            std::upper_bound(built.starts.begin(), built.starts.end(), at) - built.starts.begin() - 1);
        std::vector<std::uint64_t> expected = one_to(built.starts.size());
        expected.erase(expected.begin() + static_cast<std::ptrdiff_t>(hit));
        INFO("flip at " << at << " in record " << hit);
        REQUIRE(sequences(recovery) == expected);
        const bool last = hit + 1 == built.starts.size();
        REQUIRE(recovery.stats.corrupt.size() == (last ? 0u : 1u));
        REQUIRE(recovery.stats.torn_tails.size() == (last ? 1u : 0u));
        if (!last) REQUIRE(recovery.stats.corrupt[0].offset == built.starts[hit]);
        REQUIRE(read_file(dir / segment_file_name(1)) == damaged);  // read-only changes nothing
    }
}

TEST_CASE("random damage of many bytes at once never crashes and every recovered record is genuine", "[spool]") {
    const BuiltSegment built = build_segment(16, true);
    TempDirectory temp("spool-noise");
    std::mt19937 random(99);
    for (int round = 0; round < 200; ++round) {
        std::string damaged = built.bytes;
        const int flips = 1 + static_cast<int>(random() % 40);
        for (int i = 0; i < flips; ++i) damaged[random() % damaged.size()] = static_cast<char>(random());
        const auto dir = temp.path() / ("noise-" + std::to_string(round));
        std::filesystem::create_directories(dir);
        write_file(dir / segment_file_name(1), damaged);
        const auto directory = SpoolDirectory::open(dir);
        const Recovery recovery = recover(directory);
        for (const auto& event : recovery.events) {
            REQUIRE(avr_webhookd::uuid_text(event.call) == call_uuid(1));
            const Decoded record = decode_record(std::string_view(damaged).substr(event.locator.offset));
            REQUIRE(record.event.event_id == "event-1-" + std::to_string(event.sequence));
            REQUIRE(event.locator.offset == built.starts[event.sequence - 1]);
        }
        REQUIRE(recovery.events.size() <= 16);
    }
}

TEST_CASE("recovery keeps log order across segments, drops done events and continues sequences", "[spool]") {
    TempDirectory temp("spool");
    const auto dir = temp.path() / "spool";
    std::map<std::uint64_t, std::pair<int, std::uint64_t>> expected;  // record id -> call, sequence
    {
        SpoolOptions options;
        options.segment_bytes = 700;  // a few events per segment
        auto writer = open_writer(dir, options);
        std::vector<std::uint64_t> ids;
        for (std::uint64_t sequence = 1; sequence <= 12; ++sequence)
            for (int call = 1; call <= 3; ++call) {
                Appended appended;
                REQUIRE_FALSE(writer->append_event(make_event(call, sequence).view(), appended));
                REQUIRE_FALSE(writer->flush());
                ids.push_back(appended.record_id);
                expected[appended.record_id] = {call, sequence};
            }
        REQUIRE(writer->segments() > 5);
        // Done records, in later segments, for the first four events of every call.
        for (std::size_t i = 0; i < 12; ++i) {
            writer->append_done(ids[i]);
            expected.erase(ids[i]);
        }
        REQUIRE_FALSE(writer->sync());
    }
    Recovery recovery;
    auto writer = open_writer(dir, {}, &recovery);
    REQUIRE(recovery.events.size() == expected.size());
    auto want = expected.begin();
    for (const auto& event : recovery.events) {
        REQUIRE(event.record_id == want->first);
        REQUIRE(avr_webhookd::uuid_text(event.call) == call_uuid(want->second.first));
        REQUIRE(event.sequence == want->second.second);
        std::string body;
        REQUIRE_FALSE(writer->read_body(event.locator, body));
        REQUIRE(body == body_for(want->second.first, want->second.second));
        ++want;
    }
    for (int call = 1; call <= 3; ++call) CHECK(recovery.last_sequence.at(call_uuid(call)) == 12);
    CHECK(recovery.stats.done_records == 12);
    CHECK(recovery.stats.corrupt.empty());
    CHECK(recovery.stats.torn_tails.empty());
    Appended next;
    REQUIRE_FALSE(writer->append_event(make_event(1, 13).view(), next));
    CHECK(next.record_id == recovery.next_record_id);
    CHECK(next.record_id > expected.rbegin()->first);
    CHECK(next.locator.segment > recovery.segments.back().number);  // a new segment after restart
}

TEST_CASE("a corrupt record in an older segment is skipped and the later segments still recover", "[spool]") {
    TempDirectory temp("spool");
    const auto dir = temp.path() / "spool";
    std::vector<Locator> locators;
    {
        SpoolOptions options;
        options.segment_bytes = 1;  // one flush per segment
        auto writer = open_writer(dir, options);
        for (std::uint64_t sequence = 1; sequence <= 4; ++sequence) {
            for (std::uint64_t k = 0; k < 2; ++k) {
                Appended appended;
                REQUIRE_FALSE(writer->append_event(make_event(1, sequence * 2 - 1 + k).view(), appended));
                locators.push_back(appended.locator);
            }
            REQUIRE_FALSE(writer->flush());
        }
    }
    const auto victim = dir / segment_file_name(locators[2].segment);  // the second segment's first record
    std::string bytes = read_file(victim);
    bytes[locators[2].offset + 20] ^= 0x40;
    write_file(victim, bytes);

    const auto directory = SpoolDirectory::open(dir);
    const Recovery recovery = recover(directory);
    CHECK(sequences(recovery) == std::vector<std::uint64_t>{1, 2, 4, 5, 6, 7, 8});
    REQUIRE(recovery.stats.corrupt.size() == 1);
    CHECK(recovery.stats.corrupt[0].segment == locators[2].segment);
    CHECK(recovery.stats.corrupt[0].offset == 0);
    CHECK(recovery.stats.torn_tails.empty());
    CHECK(read_file(victim) == bytes);  // a corrupt record in the middle is skipped, not cut
}

TEST_CASE("spool_status summarises from the files alone while a writer holds the spool", "[spool]") {
    TempDirectory temp("spool");
    const auto dir = temp.path() / "spool";
    auto writer = open_writer(dir);
    std::vector<std::uint64_t> ids;
    for (int call = 1; call <= 3; ++call)
        for (std::uint64_t sequence = 1; sequence <= 2; ++sequence) {
            Appended appended;
            REQUIRE_FALSE(writer->append_event(make_event(call, sequence).view(), appended));
            ids.push_back(appended.record_id);
        }
    CHECK(spool_status(dir).events_waiting == 0);  // nothing written yet
    REQUIRE_FALSE(writer->flush());
    writer->append_done(ids[0]);
    writer->append_done(ids[1]);  // call 1 is finished
    REQUIRE_FALSE(writer->flush());
    const SpoolStatus status = spool_status(dir);
    CHECK(status.events_waiting == 4);
    CHECK(status.calls == 2);
    REQUIRE(status.oldest_accepted_ms);
    CHECK(*status.oldest_accepted_ms == 1'780'000'000'001);
    CHECK(status.segments == 1);
    CHECK(status.bytes == writer->bytes());
    CHECK(status.corrupt_records == 0);
}
