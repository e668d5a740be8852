#include <avr_webhookd/spool/spool_writer.hpp>

#include <avr_webhookd/spool/record.hpp>
#include <avr_webhookd/spool/spool_error.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace avr_webhookd::spool {
namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

std::error_code write_all_at(int fd, std::string_view bytes, std::uint64_t offset) {
    while (!bytes.empty()) {
        const auto written = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
        if (written < 0) {
            if (errno == EINTR) continue;
            return last_error();
        }
        if (written == 0) return std::make_error_code(std::errc::no_space_on_device);
        bytes.remove_prefix(static_cast<std::size_t>(written));
        offset += static_cast<std::uint64_t>(written);
    }
    return {};
}

std::error_code read_all_at(int fd, char* into, std::size_t size, std::uint64_t offset) {
    while (size > 0) {
        const auto got = ::pread(fd, into, size, static_cast<off_t>(offset));
        if (got < 0) {
            if (errno == EINTR) continue;
            return last_error();
        }
        if (got == 0) return make_error_code(SpoolErrc::unknown_record);  // shorter than the locator says
        into += got;
        size -= static_cast<std::size_t>(got);
        offset += static_cast<std::uint64_t>(got);
    }
    return {};
}

}  // namespace

std::error_code SyncPoint::sync() const {
    for (const auto& file : files_)
        if (::fdatasync(file->get()) != 0) return last_error();
    if (directory_ && ::fsync(directory_->get()) != 0) return last_error();
    return {};
}

SpoolWriter::SpoolWriter(SpoolDirectory directory, const Recovery& recovered, SpoolOptions options)
    : directory_(std::move(directory)), options_(options), next_id_(recovered.next_record_id) {
    directory_handle_ = std::make_shared<FileHandle>(::dup(directory_.fd()));
    std::uint64_t highest = 0;
    for (const auto& found : recovered.segments) {
        Segment& segment = segments_[found.number];
        segment.number = found.number;
        segment.bytes = found.bytes;
        segment.carried = found.carried;
        segment.first_id = found.first_id;
        segment.last_id = found.last_id;
        disk_bytes_ += found.bytes;
        highest = std::max(highest, found.number);
    }
    for (const auto& [number, error] : recovered.stats.unreadable) highest = std::max(highest, number);
    // Only live events matter here: done ones need no bookkeeping, as their segment may go.
    for (const auto& event : recovered.events) {
        const auto found = segments_.find(event.locator.segment);
        if (found == segments_.end()) continue;
        found->second.ids.push_back(event.record_id);
    }
    for (auto& [number, segment] : segments_) {
        std::sort(segment.ids.begin(), segment.ids.end());
        segment.ids.erase(std::unique(segment.ids.begin(), segment.ids.end()), segment.ids.end());
        segment.done.assign(segment.ids.size(), false);
        segment.live = segment.ids.size();
        live_events_ += segment.live;
    }
    if (auto ec = start_segment(highest + 1))
        throw SpoolOpenError(SpoolOpenError::Kind::cannot_create,
                             "cannot create a segment in spool_dir " + directory_.path().native() + ": " + ec.message());
    if (auto ec = directory_.sync())
        throw SpoolOpenError(SpoolOpenError::Kind::cannot_create,
                             "cannot sync spool_dir " + directory_.path().native() + ": " + ec.message());
    directory_dirty_ = false;
}

std::optional<std::size_t> SpoolWriter::Segment::index_of(std::uint64_t record_id) const {
    if (ids.empty() || record_id < ids.front() || record_id > ids.back()) return std::nullopt;
    const auto it = std::lower_bound(ids.begin(), ids.end(), record_id);
    if (it == ids.end() || *it != record_id) return std::nullopt;
    return static_cast<std::size_t>(it - ids.begin());
}

std::pair<SpoolWriter::Segment*, std::size_t> SpoolWriter::owner_of(std::uint64_t record_id) {
    for (auto it = segments_.rbegin(); it != segments_.rend(); ++it)
        if (const auto index = it->second.index_of(record_id)) return {&it->second, *index};
    return {nullptr, 0};
}

bool SpoolWriter::stored_elsewhere(std::uint64_t record_id, const Segment& except) const {
    for (const auto& [number, segment] : segments_)
        if (&segment != &except && segment.first_id != 0 && segment.first_id <= record_id && record_id <= segment.last_id)
            return true;
    return false;
}

void SpoolWriter::mark_done(Segment& segment, std::size_t index) {
    if (segment.done[index]) return;
    segment.done[index] = true;
    --segment.live;
    --live_events_;
}

std::error_code SpoolWriter::start_segment(std::uint64_t number) {
    const auto file = directory_.segment_path(number);
    FileHandle fd(::open(file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) return last_error();
    Segment& segment = segments_[number];
    segment.number = number;
    active_ = &segment;
    active_file_ = std::make_shared<FileHandle>(std::move(fd));
    directory_dirty_ = true;
    rotate_needed_ = false;
    return {};
}

std::error_code SpoolWriter::append_event(const NewEvent& event, Appended& out) {
    const EventFields fields{next_id_, event.sequence, event.accepted_ms, event.event_id, event.call, event.type, event.body};
    const std::size_t size = encoded_event_size(fields);
    if (size - kRecordHeaderSize > kMaxRecordPayload) return make_error_code(SpoolErrc::record_too_large);
    if (bytes() + size > options_.max_bytes) return make_error_code(SpoolErrc::spool_full);
    const std::uint64_t offset = active_->bytes + pending_.size();
    encode_event(pending_, fields);
    active_->ids.push_back(next_id_);  // ids only grow: the list stays sorted
    if (active_->first_id == 0) active_->first_id = next_id_;
    active_->last_id = next_id_;
    active_->done.push_back(false);
    ++active_->live;
    ++live_events_;
    pending_events_.push_back(next_id_);
    out = Appended{next_id_, Locator{active_->number, offset, static_cast<std::uint32_t>(size)}};
    ++next_id_;
    return {};
}

void SpoolWriter::append_done(std::uint64_t record_id) {
    const auto [owner, index] = owner_of(record_id);
    if (owner == nullptr || owner->done[index]) return;
    mark_done(*owner, index);
    encode_done(pending_, record_id);
    pending_dones_.push_back(record_id);
    if (owner != active_) active_->carried.push_back(record_id);
}

std::error_code SpoolWriter::flush() {
    // A rotation asked for while only done records wait goes first: on a full disk the old
    // segment can then be deleted (collect) although those records cannot be written yet. They
    // now go to the new segment, which carries them for the older segments they are about.
    if (rotate_needed_ && pending_events_.empty() && active_->bytes > 0 && !start_segment(active_->number + 1))
        active_->carried.insert(active_->carried.end(), pending_dones_.begin(), pending_dones_.end());
    if (!pending_.empty()) {
        if (auto ec = write_pending()) return ec;
    }
    // A rotation that fails is tried again at the next flush; the data above is written.
    if ((active_->bytes >= options_.segment_bytes || rotate_needed_) && active_->bytes > 0)
        (void)start_segment(active_->number + 1);
    return {};
}

std::error_code SpoolWriter::write_pending() {
    const int fd = active_file_->get();
    if (auto ec = write_all_at(fd, pending_, active_->bytes)) {
        // Cut whatever part was written, so that nothing half-written stays in the file. If even
        // that fails the tail is garbage a later recovery cuts; write no more after it.
        if (::ftruncate(fd, static_cast<off_t>(active_->bytes)) != 0) rotate_needed_ = true;
        roll_back_pending();
        return ec;
    }
    active_->bytes += pending_.size();
    disk_bytes_ += pending_.size();
    pending_.clear();
    pending_events_.clear();
    pending_dones_.clear();
    if (dirty_files_.empty() || dirty_files_.back() != active_file_) dirty_files_.push_back(active_file_);
    ++flush_generation_;
    return {};
}

void SpoolWriter::roll_back_pending() {
    for (const auto id : pending_events_)
        if (const auto index = active_->index_of(id)) mark_done(*active_, *index);
    pending_events_.clear();
    pending_.clear();
    for (const auto id : pending_dones_) encode_done(pending_, id);
}

SyncPoint SpoolWriter::sync_point() {
    SyncPoint point;
    point.files_ = std::move(dirty_files_);
    dirty_files_.clear();
    if (directory_dirty_) point.directory_ = directory_handle_;
    directory_dirty_ = false;
    point.generation_ = flush_generation_;
    return point;
}

void SpoolWriter::synced(const SyncPoint& point) {
    durable_generation_ = std::max(durable_generation_, point.generation_);
}

void SpoolWriter::sync_failed(const SyncPoint& point) {
    // After a failed fdatasync the kernel may have dropped the dirty pages: never trust that
    // segment's tail again; continue in a fresh one.
    if (point.directory_) directory_dirty_ = true;
    rotate_needed_ = true;
}

std::error_code SpoolWriter::sync() {
    if (auto ec = flush()) return ec;
    const SyncPoint point = sync_point();
    if (auto ec = point.sync()) {
        sync_failed(point);
        return ec;
    }
    synced(point);
    return {};
}

bool SpoolWriter::carry_forward(Segment& segment) {
    bool carried = false;
    for (const auto id : segment.carried) {
        if (!stored_elsewhere(id, segment)) continue;
        encode_done(pending_, id);
        pending_dones_.push_back(id);
        active_->carried.push_back(id);
        carried = true;
    }
    segment.carried.clear();
    return carried;
}

std::error_code SpoolWriter::remove(Segment& segment) {
    if (::unlink(directory_.segment_path(segment.number).c_str()) != 0 && errno != ENOENT) return last_error();
    disk_bytes_ -= segment.bytes;
    segments_.erase(segment.number);
    return {};
}

std::error_code SpoolWriter::collect() {
    std::vector<Segment*> removable;
    for (auto& [number, segment] : segments_) {
        if (&segment == active_ || segment.live != 0) continue;
        if (!segment.retire_generation && carry_forward(segment)) segment.retire_generation = flush_generation_ + 1;
        if (!segment.retire_generation || *segment.retire_generation <= durable_generation_) removable.push_back(&segment);
    }
    for (Segment* segment : removable)
        if (auto ec = remove(*segment)) return ec;
    return {};
}

std::error_code SpoolWriter::read_body(const Locator& at, std::string& body) const {
    const auto found = segments_.find(at.segment);
    if (found == segments_.end() || at.length < kRecordHeaderSize) return make_error_code(SpoolErrc::unknown_record);
    const Segment& segment = found->second;
    std::string bytes;
    if (&segment == active_ && at.offset >= segment.bytes) {
        const std::uint64_t in_pending = at.offset - segment.bytes;
        if (in_pending + at.length > pending_.size()) return make_error_code(SpoolErrc::unknown_record);
        bytes.assign(pending_, in_pending, at.length);
    } else {
        std::shared_ptr<FileHandle> file = &segment == active_ ? active_file_ : nullptr;
        if (!file) {
            FileHandle fd(::open(directory_.segment_path(at.segment).c_str(), O_RDONLY | O_CLOEXEC));
            if (!fd) return errno == ENOENT ? make_error_code(SpoolErrc::unknown_record) : last_error();
            file = std::make_shared<FileHandle>(std::move(fd));
        }
        bytes.resize(at.length);
        if (auto ec = read_all_at(file->get(), bytes.data(), bytes.size(), at.offset)) return ec;
    }
    const Decoded record = decode_record(bytes);
    if (record.status != DecodeStatus::ok || record.type != RecordType::event || record.size != at.length)
        return make_error_code(SpoolErrc::corrupt_record);
    body.assign(record.event.body);
    return {};
}

}  // namespace avr_webhookd::spool
