#include <avr_webhookd/spool/recovery.hpp>

#include <avr_webhookd/spool/record.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <unordered_set>

namespace avr_webhookd::spool {

std::pair<std::string_view, std::string_view> split_numbering_key(std::string_view key) {
    const auto slash = key.find('/');
    if (slash == std::string_view::npos) return {{}, key};
    return {key.substr(0, slash), key.substr(slash + 1)};
}

std::string numbering_key(std::string_view destination, std::string_view call) {
    if (destination.empty()) return std::string(call);
    std::string key;
    key.reserve(destination.size() + 1 + call.size());
    key.append(destination).append("/").append(call);
    return key;
}
namespace {

constexpr std::uint64_t kRemoved = 0;  // record_id of an event whose done record was found

std::error_code cut_tail(const std::filesystem::path& file, std::uint64_t size) {
    FileHandle fd(::open(file.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0 || ::fdatasync(fd.get()) != 0)
        return {errno, std::system_category()};
    return {};
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

    // Drops the events that were done, keeping log order.
    void finish() {
        auto& events = out_.events;
        events.erase(
            std::remove_if(events.begin(), events.end(), [](const auto& e) { return e.record_id == kRemoved; }),
            events.end());
    }

private:
    void event(std::uint64_t number, std::size_t offset, const Decoded& record, RecoveredSegment& info) {
        const EventFields& fields = record.event;
        ++out_.stats.event_records;
        note_id(fields.record_id);
        if (info.first_id == 0 || fields.record_id < info.first_id) info.first_id = fields.record_id;
        info.last_id = std::max(info.last_id, fields.record_id);
        if (fields.record_id == kRemoved || !index_.emplace(fields.record_id, out_.events.size()).second)
            return;  // id 0 is never written, and a repeated id keeps its first record
        out_.events.push_back(RecoveredEvent{
            fields.record_id, fields.sequence, fields.accepted_ms, std::string(fields.event_id),
            std::string(fields.call), std::string(fields.type),
            Locator{number, offset, static_cast<std::uint32_t>(record.size)}, std::string(fields.destination)});
        auto& last = out_.last_sequence[numbering_key(fields.destination, fields.call)];
        last = std::max(last, fields.sequence);
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
        const auto found = index_.find(id);
        if (found == index_.end()) return;  // its event is gone (deleted segment) or was done before
        out_.events[found->second].record_id = kRemoved;
        index_.erase(found);
    }

    void note_id(std::uint64_t id) { out_.next_record_id = std::max(out_.next_record_id, id + 1); }

    Recovery& out_;
    std::unordered_map<std::uint64_t, std::size_t> index_;  // live event id -> position in events
};

}  // namespace

Recovery scan_spool(const std::filesystem::path& dir, RepairMode mode) {
    Recovery out;
    Scanner scanner(out);
    const auto numbers = list_segments(dir, out.stats.list_error);
    for (const std::uint64_t number : numbers) {
        const auto file = dir / segment_file_name(number);
        std::error_code ec;
        const std::string bytes = read_whole_file(file, ec);
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
            if (auto cut = cut_tail(file, info.bytes)) {
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

SpoolStatus spool_status(const std::filesystem::path& dir) {
    const Recovery recovery = scan_spool(dir, RepairMode::read_only);
    SpoolStatus status;
    status.events_waiting = recovery.events.size();
    std::unordered_set<std::string_view> calls;
    for (const auto& event : recovery.events) {
        calls.insert(event.call);
        if (!status.oldest_accepted_ms || event.accepted_ms < *status.oldest_accepted_ms)
            status.oldest_accepted_ms = event.accepted_ms;
    }
    status.calls = calls.size();
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
