#pragma once

#include <avr_webhookd/common/uuid.hpp>
#include <avr_webhookd/spool/spool_directory.hpp>

#include <cstdint>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace avr_webhookd::spool {

// Where a record lies: its segment, the byte offset of its header and its whole length.
struct Locator {
    std::uint64_t segment = 0;
    std::uint64_t offset = 0;
    std::uint32_t length = 0;
    bool operator==(const Locator&) const = default;
};

// A whole event record as read back (read_event): its fields and where it lies.
struct StoredEvent {
    std::uint64_t record_id = 0;
    std::uint64_t sequence = 0;
    std::int64_t accepted_ms = 0;
    std::string event_id;
    std::string call;
    std::string type;
    Locator locator;
    std::string destination;  // "" = the default destination
};

// An event without a done record, found at start: to be delivered again. Only what queueing it
// takes (72 bytes: a backlog of a million events must restart in little memory); its id, type
// and body stay on disk (read_event).
struct RecoveredEvent {
    std::uint64_t record_id = 0;
    std::uint64_t sequence = 0;
    std::int64_t accepted_ms = 0;
    Locator locator;
    UuidBytes call{};               // when canonical_call
    std::uint16_t destination = 0;  // Recovery::destinations[destination]
    bool canonical_call = true;     // false: the record's call is no canonical uuid (read_event has it)
};

// The key of Recovery::last_sequence and of the numbering checkpoint: the call uuid for the
// default destination, "NAME/uuid" for a named one (each destination numbers a call on its own).
std::string numbering_key(std::string_view destination, std::string_view call);
void append_numbering_key(std::string& out, std::string_view destination, std::string_view call);
// The inverse: {destination ("" for the default), call}.
std::pair<std::string_view, std::string_view> split_numbering_key(std::string_view key);

// What the writer needs to know of each segment found.
struct RecoveredSegment {
    std::uint64_t number = 0;
    std::uint64_t bytes = 0;     // after any cut
    std::uint64_t first_id = 0;  // lowest and highest record id of its event records, done ones
    std::uint64_t last_id = 0;   // included (0, 0 when it has none)
    // Ids of done records in this segment whose event lies in an earlier segment still present:
    // they must be carried forward before this segment may be deleted.
    std::vector<std::uint64_t> carried;
};

struct DamagedRange {
    std::uint64_t segment = 0;
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
};

struct RecoveryStats {
    std::uint64_t segments = 0;
    std::uint64_t bytes = 0;          // of all segments, after any cut
    std::uint64_t event_records = 0;  // valid records read
    std::uint64_t done_records = 0;
    std::vector<DamagedRange> corrupt;     // damaged bytes followed by valid records: skipped
    std::vector<DamagedRange> torn_tails;  // damaged or incomplete tails: cut (or, read-only, left)
    std::vector<std::pair<std::uint64_t, std::error_code>> unreadable;  // segments that could not be read or cut
    std::error_code list_error;                                         // the folder itself could not be read
};

struct Recovery {
    // Undelivered, in acceptance order (record ids are given in that order): the log's order,
    // except that records written again after a failed sync go back to their place. A deque, so
    // that whoever queues them can free them as it goes.
    std::deque<RecoveredEvent> events;
    std::vector<std::string> destinations{""};  // the names RecoveredEvent::destination indexes; [0]: default
    // The highest sequence number of every call that still has records, so that numbering
    // continues after a restart.
    std::unordered_map<std::string, std::uint64_t> last_sequence;
    std::vector<RecoveredSegment> segments;  // readable segments, ascending
    std::uint64_t next_record_id = 1;
    RecoveryStats stats;

    std::uint64_t calls() const;  // how many calls the events belong to
    std::string_view destination_of(const RecoveredEvent& event) const { return destinations.at(event.destination); }
};

enum class RepairMode {
    cut_torn_tails,  // the owner at start: torn tails are truncated away (and synced)
    read_only,       // anyone, any time: nothing is changed
};

// Scans every segment of `dir` in order. Never throws on damaged data; I/O errors of single
// segments are reported in stats.unreadable and the scan goes on.
Recovery scan_spool(FileSystem& files, const std::filesystem::path& dir, RepairMode mode);
inline Recovery scan_spool(const std::filesystem::path& dir, RepairMode mode) {
    return scan_spool(system_file_system(), dir, mode);
}

// The start of a daemon that holds the spool: scan_spool with torn tails cut.
inline Recovery recover(const SpoolDirectory& dir) {
    return scan_spool(dir.files(), dir.path(), RepairMode::cut_torn_tails);
}

// A read-only summary from the files alone, safe while a daemon runs (no lock, no change).
struct SpoolStatus {
    std::uint64_t events_waiting = 0;
    std::uint64_t calls = 0;
    std::optional<std::int64_t> oldest_accepted_ms;
    std::uint64_t segments = 0;
    std::uint64_t bytes = 0;
    std::uint64_t corrupt_records = 0;
    std::uint64_t torn_tails = 0;
    std::vector<std::string> errors;  // the folder or segments that could not be read: counts incomplete
};
SpoolStatus spool_status(const std::filesystem::path& dir);

}  // namespace avr_webhookd::spool
