#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace avr_webhookd {

// One line of the dead-letter file (see delivery/failure_report.hpp: dead_letter_line), as the
// dead-letter tools need it.
struct DeadLetterEntry {
    std::uint64_t line = 0;   // its line number in the file, from 1
    std::string text;         // the line as written, without its newline (what a replay sends)
    std::string id;           // the event id the receiver saw in X-AVR-WEBHOOK-ID
    std::string destination;  // "" in lines written before destinations existed
    std::string call;         // uuid as written
    std::string type;
    std::string reason;  // failure.reason
    std::string code;    // failure.code
    std::string message;
    std::string time;  // failure.time as written
    std::chrono::system_clock::time_point given_up_at{};
    int attempts = 0;

    // What identifies this dead letter for the replay record: the same event given up again
    // after a replay is a new line with a new time, so it can be replayed again.
    std::string key() const;
};

// Parses one line; the reason it is not a dead letter otherwise (not JSON, no id, no failure
// object with reason and time ...).
std::variant<DeadLetterEntry, std::string> parse_dead_letter_line(std::string_view text, std::uint64_t line);

// The dead letters a command works on. Each option may be given several times and matches any of
// its values; different options must all match. An empty filter takes every line.
struct DeadLetterFilter {
    std::vector<std::string> destinations;  // exact names ("default" also takes lines without one)
    std::vector<std::string> calls;         // uuids, any case
    std::vector<std::string> types;
    std::vector<std::string> reasons;                            // part of failure.reason or failure.code, any case
    std::optional<std::chrono::system_clock::time_point> since;  // given up at or after

    bool matches(const DeadLetterEntry& entry) const;
};

// --since: an ISO 8601 date-time with a zone, a date (YYYY-MM-DD, midnight UTC), or a duration
// before `now` (30m, 2h, 90s). nullopt when it is none of those.
std::optional<std::chrono::system_clock::time_point> parse_since(std::string_view text,
                                                                 std::chrono::system_clock::time_point now);

// What reading the file came to.
struct DeadLetterScan {
    std::uint64_t lines = 0;       // complete lines read, empty ones included
    std::uint64_t bytes = 0;       // bytes of those lines
    bool incomplete_tail = false;  // the file did not end in a newline: its last line is still being
                                   // written (or was torn by a crash) and was left out
    std::vector<std::pair<std::uint64_t, std::string>> malformed;  // line number, why
};

// Reads the file the daemon may be appending to: only the lines complete when reading starts
// (up to the size the file had then, each ending in '\n'), in 64 KiB chunks, so memory stays
// small whatever its size. Each well-formed line goes to `each`; malformed ones are collected,
// empty ones skipped. Throws std::runtime_error when the file cannot be read; a missing file is
// an empty scan.
DeadLetterScan read_dead_letters(const std::string& path, const std::function<void(DeadLetterEntry&&)>& each);

}  // namespace avr_webhookd
