#include <avr_webhookd/spool/recovery.hpp>

#include <avr_webhookd/spool/record.hpp>

#include <algorithm>
#include <optional>
#include <utility>

namespace avr_webhookd::spool {

std::pair<std::string_view, std::string_view> split_numbering_key(std::string_view key) {
    const auto slash = key.find('/');
    if (slash == std::string_view::npos) return {{}, key};
    return {key.substr(0, slash), key.substr(slash + 1)};
}

void append_numbering_key(std::string& out, std::string_view destination, std::string_view call) {
    if (!destination.empty()) out.append(destination).append("/");
    out.append(call);
}

std::string numbering_key(std::string_view destination, std::string_view call) {
    std::string key;
    key.reserve(destination.size() + 1 + call.size());
    append_numbering_key(key, destination, call);
    return key;
}
namespace {

constexpr std::uint64_t kRemoved = 0;  // record_id of an event whose done record was found

std::error_code cut_tail(FileSystem& files, const std::filesystem::path& file, std::uint64_t size) {
    FileHandle fd;
    if (auto ec = files.open(file, FileSystem::Mode::write, fd)) return ec;
    if (auto ec = files.truncate(fd.get(), size)) return ec;
    return files.sync_data(fd.get());
}

class Scanner {
public:
    explicit Scanner(Recovery& out) : out_(out) {}

    void segment(std::uint64_t number, std::string_view bytes, RecoveredSegment& info) {
        const auto on_record = [&](std::size_t offset, const Decoded& record) {
            if (record.type == RecordType::event) event(number, offset, record, info);
            else done(record.done_id, info);
        };
        const auto on_corrupt = [&](std::size_t offset, std::size_t length) {
            out_.stats.corrupt.push_back({number, offset, length});
        };
        const ScanResult result = scan_records(bytes, on_record, on_corrupt);
        info.bytes = bytes.size();
        if (result.torn_tail) {
            out_.stats.torn_tails.push_back({number, result.valid_end, bytes.size() - result.valid_end});
            info.bytes = result.valid_end;
        }
    }

    // Drops the events that were done, and copies after the first of an event written twice,
    // keeping log order. Sorting positions by id costs 4 bytes per event for a moment, instead of
    // a map from every event's id during the whole scan.
    void finish() {
        auto& events = out_.events;
        std::sort(done_.begin(), done_.end());
        std::vector<std::uint32_t> order(events.size());
        for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(),
                         [&](std::uint32_t a, std::uint32_t b) { return events[a].record_id < events[b].record_id; });
        std::uint64_t previous = kRemoved;
        for (const std::uint32_t at : order) {
            auto& event = events[at];
            const std::uint64_t id = std::exchange(previous, event.record_id);
            if (id == event.record_id || std::binary_search(done_.begin(), done_.end(), event.record_id))
                event.record_id = kRemoved;
        }
        events.erase(
            std::remove_if(events.begin(), events.end(), [](const auto& e) { return e.record_id == kRemoved; }),
            events.end());
        done_ = {};
        // Acceptance order is record id order. The log has it too, except where records were
        // written again after a failed sync: a newer segment then holds copies of events older
        // than those of the segment before it, and a call's events would come back out of order.
        std::sort(events.begin(), events.end(),
                  [](const RecoveredEvent& a, const RecoveredEvent& b) { return a.record_id < b.record_id; });
    }

private:
    void event(std::uint64_t number, std::size_t offset, const Decoded& record, RecoveredSegment& info) {
        const EventFields& fields = record.event;
        ++out_.stats.event_records;
        note_id(fields.record_id);
        if (info.first_id == 0 || fields.record_id < info.first_id) info.first_id = fields.record_id;
        info.last_id = std::max(info.last_id, fields.record_id);
        if (fields.record_id == kRemoved) return;  // never written
        RecoveredEvent event{fields.record_id, fields.sequence, fields.accepted_ms,
                             Locator{number, offset, static_cast<std::uint32_t>(record.size)}};
        const auto call = uuid_bytes(fields.call);
        const auto destination = destination_index(fields.destination);
        if (call) event.call = *call;
        if (destination) event.destination = *destination;
        event.canonical_call = call && destination;  // (past 65,535 names: given up as invalid)
        out_.events.push_back(event);
        // The key in a buffer of its own: no allocation per event for a call seen before.
        key_.clear();
        append_numbering_key(key_, fields.destination, fields.call);
        const auto [last, inserted] = out_.last_sequence.try_emplace(key_, fields.sequence);
        if (!inserted) last->second = std::max(last->second, fields.sequence);
    }

    // The destination's index in out_.destinations (few names: a linear search).
    std::optional<std::uint16_t> destination_index(std::string_view name) {
        const auto& names = out_.destinations;
        const auto found = std::find(names.begin(), names.end(), name);
        if (found != names.end()) return static_cast<std::uint16_t>(found - names.begin());
        if (names.size() > 0xFFFF) return std::nullopt;
        out_.destinations.emplace_back(name);
        return static_cast<std::uint16_t>(names.size() - 1);
    }

    void done(std::uint64_t id, RecoveredSegment& info) {
        ++out_.stats.done_records;
        note_id(id);
        // Only the id ranges of the segments before are needed here, not a map of every event
        // ever written (a full spool holds millions).
        for (const auto& earlier : out_.segments)
            if (earlier.first_id != 0 && earlier.first_id <= id && id <= earlier.last_id) {
                info.carried.push_back(id);
                break;
            }
        done_.push_back(id);
    }

    void note_id(std::uint64_t id) { out_.next_record_id = std::max(out_.next_record_id, id + 1); }

    Recovery& out_;
    std::vector<std::uint64_t> done_;  // ids of every done record found
    std::string key_;
};

}  // namespace

Recovery scan_spool(FileSystem& files, const std::filesystem::path& dir, RepairMode mode) {
    Recovery out;
    Scanner scanner(out);
    const auto numbers = list_segments(files, dir, out.stats.list_error);
    for (const std::uint64_t number : numbers) {
        const auto file = dir / segment_file_name(number);
        std::error_code ec;
        const std::string bytes = read_whole_file(files, file, ec);
        if (ec) {
            // A segment deleted between listing and reading (a running daemon) is simply gone.
            if (ec != std::errc::no_such_file_or_directory) out.stats.unreadable.emplace_back(number, ec);
            continue;
        }
        RecoveredSegment info;
        info.number = number;
        scanner.segment(number, bytes, info);
        if (info.bytes < bytes.size() && number != numbers.back()) {
            // Only the newest segment was being written when the daemon stopped: damage at the end
            // of an older one is damage, not a torn write. It is reported and kept as it is.
            out.stats.corrupt.push_back(out.stats.torn_tails.back());
            out.stats.torn_tails.pop_back();
            info.bytes = bytes.size();
        } else if (mode == RepairMode::cut_torn_tails && info.bytes < bytes.size()) {
            // A tail that cannot be cut stays; the writer never appends to an old segment, and
            // the next start tries again.
            if (auto cut = cut_tail(files, file, info.bytes)) {
                out.stats.unreadable.emplace_back(number, cut);
                info.bytes = bytes.size();
            }
        }
        ++out.stats.segments;
        out.stats.bytes += info.bytes;
        out.segments.push_back(std::move(info));
    }
    scanner.finish();
    return out;
}

std::uint64_t Recovery::calls() const {
    std::vector<UuidBytes> keys;
    keys.reserve(events.size());
    std::uint64_t other = 0;  // not canonical: each counted as a call of its own
    for (const auto& event : events)
        if (event.canonical_call) keys.push_back(event.call);
        else ++other;
    std::sort(keys.begin(), keys.end());
    return static_cast<std::uint64_t>(std::unique(keys.begin(), keys.end()) - keys.begin()) + other;
}

SpoolStatus spool_status(const std::filesystem::path& dir) {
    const Recovery recovery = scan_spool(dir, RepairMode::read_only);
    SpoolStatus status;
    status.events_waiting = recovery.events.size();
    for (const auto& event : recovery.events)
        if (!status.oldest_accepted_ms || event.accepted_ms < *status.oldest_accepted_ms)
            status.oldest_accepted_ms = event.accepted_ms;
    status.calls = recovery.calls();
    status.segments = recovery.stats.segments;
    status.bytes = recovery.stats.bytes;
    status.corrupt_records = recovery.stats.corrupt.size();
    status.torn_tails = recovery.stats.torn_tails.size();
    if (recovery.stats.list_error) status.errors.push_back(dir.string() + ": " + recovery.stats.list_error.message());
    for (const auto& [segment, error] : recovery.stats.unreadable)
        status.errors.push_back((dir / segment_file_name(segment)).string() + ": " + error.message());
    return status;
}

}  // namespace avr_webhookd::spool
