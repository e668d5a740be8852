// Reading the dead-letter file for the dead-letter tools: parsing lines, filters, a file still
// being appended to, malformed lines, and the record of what was replayed.
#include <avr_webhookd/dead_letter/dead_letter_reader.hpp>
#include <avr_webhookd/dead_letter/replay_record.hpp>
#include <avr_webhookd/delivery/failure_report.hpp>

#include "support/process.hpp"

#include <catch2/catch.hpp>

#include <fstream>

using namespace avr_webhookd;
using namespace std::chrono_literals;

namespace {

const auto given_up_at = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));  // 2026-01-01

// A line as the daemon writes it.
std::string line(std::string id, std::string destination, std::string type = "call_started",
                 std::string call = "550e8400-e29b-41d4-a716-446655440000", std::string reason = "queue_full",
                 std::chrono::system_clock::time_point when = given_up_at) {
    AttemptOutcome outcome;
    outcome.status = 503;
    outcome.code = "HTTP 503";
    outcome.message = "Request failed with status code 503";
    const auto body =
        R"({"uuid":")" + call + R"(","type":")" + type + R"(","timestamp":"2026-01-01T00:00:00.000Z","payload":{}})";
    return dead_letter_line(id, body, reason, outcome, 4, when, destination);
}

DeadLetterEntry entry_of(const std::string& text, std::uint64_t number = 1) {
    auto parsed = parse_dead_letter_line(text, number);
    if (auto* why = std::get_if<std::string>(&parsed)) FAIL("not a dead letter: " << *why);
    return std::get<DeadLetterEntry>(std::move(parsed));
}

void append(const std::filesystem::path& file, std::string_view text) {
    std::ofstream(file, std::ios::binary | std::ios::app) << text;
}

}  // namespace

TEST_CASE("dead letters: a line gives its id, destination, call, type and failure", "[dead_letter_tools]") {
    const auto entry = entry_of(line("e1", "crm"), 7);
    CHECK(entry.line == 7);
    CHECK(entry.id == "e1");
    CHECK(entry.destination == "crm");
    CHECK(entry.call == "550e8400-e29b-41d4-a716-446655440000");
    CHECK(entry.type == "call_started");
    CHECK(entry.reason == "queue_full");
    CHECK(entry.code == "HTTP 503");
    CHECK(entry.time == "2026-01-01T00:00:00.000Z");
    CHECK(entry.given_up_at == given_up_at);
    CHECK(entry.attempts == 4);
    CHECK(entry.text == line("e1", "crm"));
    CHECK(entry.key() == "crm\te1\t2026-01-01T00:00:00.000Z");

    for (const char* bad : {"not json", "[1,2]", R"({"id":"e1","uuid":"u","type":"t"})",
                            R"({"id":"e1","uuid":"u","type":"t","failure":{"reason":"r"}})",
                            R"({"id":1,"uuid":"u","type":"t","failure":{"reason":"r","time":"2026-01-01T00:00:00Z"}})",
                            R"({"id":"e1","uuid":"u","type":"t","failure":{"reason":"r","time":"yesterday"}})"}) {
        CAPTURE(bad);
        CHECK(std::holds_alternative<std::string>(parse_dead_letter_line(bad, 1)));
    }
}

TEST_CASE("dead letters: filters of different kinds must all match, values of one kind any", "[dead_letter_tools]") {
    const auto crm = entry_of(line("e1", "crm", "call_started", "550E8400-E29B-41D4-A716-446655440000",
                                   "retry budget exhausted (4 attempts)"));
    const auto old =
        entry_of(line("e2", "", "call_ended", "660e8400-e29b-41d4-a716-446655440000", "shutdown", given_up_at - 2h));
    DeadLetterFilter all;
    CHECK(all.matches(crm));
    CHECK(all.matches(old));

    DeadLetterFilter filter;
    filter.destinations = {"default"};
    CHECK_FALSE(filter.matches(crm));
    CHECK(filter.matches(old));  // written before destinations: it was the default's
    filter.destinations = {"default", "crm"};
    CHECK(filter.matches(crm));

    filter = {};
    filter.calls = {"550e8400-e29b-41d4-a716-446655440000"};  // any case
    CHECK(filter.matches(crm));
    CHECK_FALSE(filter.matches(old));

    filter = {};
    filter.types = {"call_ended"};
    CHECK_FALSE(filter.matches(crm));
    CHECK(filter.matches(old));

    filter = {};
    filter.reasons = {"RETRY BUDGET"};
    CHECK(filter.matches(crm));
    CHECK_FALSE(filter.matches(old));
    filter.reasons = {"503"};  // the code
    CHECK(filter.matches(crm));

    filter = {};
    filter.since = given_up_at - 1h;
    CHECK(filter.matches(crm));
    CHECK_FALSE(filter.matches(old));
    filter.types = {"call_ended"};
    CHECK_FALSE(filter.matches(crm));
}

TEST_CASE("dead letters: --since takes a date-time, a date or a duration before now", "[dead_letter_tools]") {
    const auto now = given_up_at + 90min;
    CHECK(parse_since("2026-01-01T00:30:00Z", now) == given_up_at + 30min);
    CHECK(parse_since("2026-01-01", now) == given_up_at);
    CHECK(parse_since("30m", now) == given_up_at + 60min);
    CHECK(parse_since("1h", now) == given_up_at + 30min);
    CHECK_FALSE(parse_since("30", now));
    CHECK_FALSE(parse_since("yesterday", now));
    CHECK_FALSE(parse_since("2026-13-01", now));
}

TEST_CASE("dead letters: the file is read up to its last complete line, malformed lines are reported",
          "[dead_letter_tools]") {
    test::TempDirectory dir("avr-dl-reader");
    const auto file = dir / "dead-letter.ndjson";
    std::vector<DeadLetterEntry> entries;
    const auto collect = [&](DeadLetterEntry&& entry) { entries.push_back(std::move(entry)); };

    CHECK(read_dead_letters(file.string(), collect).lines == 0);  // none yet: nothing to read

    append(file, line("e1", "default") + "\n" + "{not json\n\n" + line("e2", "crm") + "\n");
    const auto partial = line("e3", "crm");
    append(file, partial.substr(0, 40));  // the daemon is in the middle of writing this one
    auto scan = read_dead_letters(file.string(), collect);
    CHECK(scan.lines == 4);
    CHECK(scan.incomplete_tail);
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].id == "e1");
    CHECK(entries[1].id == "e2");
    CHECK(entries[1].line == 4);
    REQUIRE(scan.malformed.size() == 1);
    CHECK(scan.malformed[0].first == 2);
    CHECK_THAT(scan.malformed[0].second, Catch::StartsWith("not JSON"));

    append(file, partial.substr(40) + "\n");
    entries.clear();
    scan = read_dead_letters(file.string(), collect);
    CHECK_FALSE(scan.incomplete_tail);
    REQUIRE(entries.size() == 3);
    CHECK(entries[2].id == "e3");
    CHECK(entries[2].line == 5);
}

TEST_CASE("dead letters: the replay record remembers, compacts and keeps one replay at a time", "[dead_letter_tools]") {
    test::TempDirectory dir("avr-dl-record");
    const auto file = (dir / "dead-letter.ndjson").string();
    {
        ReplayRecord record(file, ReplayRecord::Mode::locked);
        CHECK(record.path() == file + ".replayed");
        CHECK(record.size() == 0);
        CHECK_THROWS_WITH(ReplayRecord(file, ReplayRecord::Mode::locked),
                          Catch::Contains("another dead-letters replay of this file is running"));
        record.add({"default\te1\tt1", "crm\te2\tt2"});
        CHECK(record.contains("crm\te2\tt2"));
    }
    // Written and synced at once: a second run (or a crash) finds them.
    ReplayRecord read(file, ReplayRecord::Mode::read_only);
    CHECK(read.contains("default\te1\tt1"));
    CHECK(read.contains("crm\te2\tt2"));
    CHECK_THROWS_AS(read.compact(), std::logic_error);

    // A torn last line (a crash while appending) is ignored, and the next key stays whole.
    append(file + ".replayed", "crm\te3");
    {
        ReplayRecord record(file, ReplayRecord::Mode::locked);
        CHECK(record.size() == 2);
        record.add({"crm\te4\tt4"});
    }
    {
        ReplayRecord record(file, ReplayRecord::Mode::locked);
        CHECK(record.contains("crm\te4\tt4"));
        CHECK_FALSE(record.contains("crm\te3"));
        // Only keys whose line is still in the dead-letter file stay, and those added.
        record.mark_present("crm\te2\tt2");
        record.mark_present("never\trecorded\tt");
        record.add({"default\te5\tt5"});
        record.compact();
        CHECK(record.size() == 2);
    }
    const ReplayRecord compacted(file, ReplayRecord::Mode::read_only);
    CHECK(compacted.size() == 2);
    CHECK(compacted.contains("crm\te2\tt2"));
    CHECK(compacted.contains("default\te5\tt5"));
    CHECK_FALSE(std::filesystem::exists(file + ".replayed.tmp"));
}
