#include <avr_webhookd/spool/spool_writer.hpp>

#include <avr_webhookd/spool/record.hpp>
#include <avr_webhookd/spool/spool_error.hpp>

#include <algorithm>
#include <string_view>
#include <utility>

namespace avr_webhookd::spool {
namespace {

// Reads exactly `size` bytes at `offset`: a shorter file means the locator is wrong.
std::error_code read_all_at(FileSystem& files, int fd, char* into, std::size_t size, std::uint64_t offset) {
    std::size_t got = 0;
    if (auto ec = files.read_at(fd, into, size, offset, got)) return ec;
    if (got < size) return make_error_code(SpoolErrc::unknown_record);
    return {};
}

}  // namespace

std::error_code system_sync(int fd, SyncTarget target) {
    auto& files = system_file_system();
    return target == SyncTarget::segment ? files.sync_data(fd) : files.sync(fd);
}

std::error_code SyncPoint::sync() const {
    const auto sync_one = [this](const FileHandle& file, SyncTarget target) {
        if (sync_file_) return sync_file_(file.get(), target);
        return target == SyncTarget::segment ? file_system_->sync_data(file.get()) : file_system_->sync(file.get());
    };
    for (const auto& file : files_)
        if (auto ec = sync_one(*file, SyncTarget::segment)) return ec;
    if (directory_) return sync_one(*directory_, SyncTarget::directory);
    return {};
}

SpoolWriter::SpoolWriter(SpoolDirectory directory, const Recovery& recovered, SpoolOptions options)
    : directory_(std::move(directory)),
      files_(directory_.files()),
      options_(options),
      next_id_(recovered.next_record_id) {
    FileHandle handle;
    if (auto ec = files_.open_directory(directory_.path(), handle))
        throw SpoolOpenError(SpoolOpenError::Kind::cannot_create,
                             "cannot open spool_dir " + directory_.path().native() + ": " + ec.message());
    directory_handle_ = std::make_shared<FileHandle>(std::move(handle));
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
        throw SpoolOpenError(SpoolOpenError::Kind::cannot_create, "cannot create a segment in spool_dir " +
                                                                      directory_.path().native() + ": " + ec.message());
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
        if (&segment != &except && segment.first_id != 0 && segment.first_id <= record_id &&
            record_id <= segment.last_id)
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
    FileHandle fd;
    if (auto ec = files_.open(directory_.segment_path(number), FileSystem::Mode::create_new, fd)) return ec;
    Segment& segment = segments_[number];
    segment.number = number;
    active_ = &segment;
    active_file_ = std::make_shared<FileHandle>(std::move(fd));
    directory_dirty_ = true;
    active_state_ = ActiveState::writable;
    return {};
}

std::error_code SpoolWriter::append_event(const NewEvent& event, Appended& out) {
    const EventFields fields{next_id_,   event.sequence, event.accepted_ms, event.event_id,
                             event.call, event.type,     event.body,        event.destination};
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
    // Another segment may hold the event (its own, or one it was written to before a failed sync).
    if (stored_elsewhere(record_id, *active_)) active_->carried.push_back(record_id);
}

std::error_code SpoolWriter::flush() {
    // A new segment first: after a failed sync, and when a rotation was asked for while only done
    // records wait (on a full disk the old segment can then be deleted by collect() although those
    // records cannot be written yet; the new segment carries them for the segments they are about).
    if (active_state_ == ActiveState::untrusted) {
        if (auto ec = continue_in_new_segment()) {
            roll_back_pending(false);  // nothing was written
            return ec;
        }
    } else if (active_state_ == ActiveState::rotate_soon && pending_events_.empty() && active_->bytes > 0) {
        (void)continue_in_new_segment();  // failing, it rotates after the write below
    }
    if (!pending_.empty()) {
        if (auto ec = write_pending()) return ec;
    }
    // A rotation that fails is tried again at the next flush; the data above is written.
    if ((active_->bytes >= options_.segment_bytes || active_state_ == ActiveState::rotate_soon) && active_->bytes > 0)
        (void)start_segment(active_->number + 1);
    return {};
}

std::error_code SpoolWriter::write_pending() {
    if (auto ec = write_head(pending_.size())) {
        // Not cut back off the file: whole records of the dropped events may be there.
        roll_back_pending(active_state_ == ActiveState::untrusted);
        return ec;
    }
    pending_events_.clear();
    pending_dones_.clear();
    return {};
}

// Writes the first `length` bytes of pending_ (at least the records written again) to the end of
// the active segment, as one flush.
std::error_code SpoolWriter::write_head(std::size_t length) {
    const int fd = active_file_->get();
    if (auto ec = files_.write_at(fd, std::string_view(pending_).substr(0, length), active_->bytes)) {
        // Cut whatever part was written, so that nothing half-written stays in the file. If even
        // that fails the tail is garbage a later recovery cuts; write no more after it.
        if (files_.truncate(fd, active_->bytes)) active_state_ = ActiveState::untrusted;
        return ec;
    }
    ++flush_generation_;
    SyncLedger::Batch batch{flush_generation_,
                            rewrite_bytes_ > 0 ? rewrite_from_ : flush_generation_,
                            active_->number,
                            active_->bytes,
                            {},
                            false,
                            active_file_};
    // A copy of its own size (the ledger may hold many until their sync); pending_ keeps its
    // capacity for the next batch.
    batch.bytes.assign(pending_, 0, length);
    pending_.erase(0, length);
    ledger_.flushed(std::move(batch));
    rewrite_bytes_ = 0;
    active_->bytes += length;
    disk_bytes_ += length;
    if (dirty_files_.empty() || dirty_files_.back() != active_file_) dirty_files_.push_back(active_file_);
    return {};
}

// The caller refuses the events appended since the last successful flush. When their records may
// be on disk whole (a write that could not be cut back), a done record for each is written with
// the next flush (in a new segment), so that recovery never delivers an event that was refused.
void SpoolWriter::roll_back_pending(bool maybe_written) {
    for (const auto id : pending_events_)
        if (const auto index = active_->index_of(id)) mark_done(*active_, *index);
    forget_relocations_into(active_->number, active_->bytes + rewrite_bytes_);
    pending_.resize(rewrite_bytes_);  // records written again after a failed sync are kept
    if (maybe_written) pending_dones_.insert(pending_dones_.end(), pending_events_.begin(), pending_events_.end());
    pending_events_.clear();
    for (const auto id : pending_dones_) encode_done(pending_, id);
}

SyncPoint SpoolWriter::sync_point() {
    SyncPoint point;
    point.files_ = std::exchange(dirty_files_, {});
    if (directory_dirty_) point.directory_ = directory_handle_;
    directory_dirty_ = false;
    point.first_generation_ = last_point_generation_ + 1;
    point.generation_ = last_point_generation_ = flush_generation_;
    point.sync_file_ = options_.sync_file;
    point.file_system_ = &files_;
    return point;
}

// Every flush up to the result is confirmed: synced, or written again and that copy synced.
std::uint64_t SpoolWriter::durable_floor() const {
    std::uint64_t floor = flush_generation_;
    if (const auto oldest = ledger_.oldest_unconfirmed()) floor = std::min(floor, *oldest - 1);
    if (rewrite_bytes_ > 0) floor = std::min(floor, rewrite_from_ - 1);
    return floor;
}

void SpoolWriter::synced(const SyncPoint& point) {
    ledger_.synced(point.first_generation_, point.generation_);
    durable_generation_ = std::max(durable_generation_, durable_floor());
}

void SpoolWriter::sync_failed(const SyncPoint& point) {
    if (point.directory_) directory_dirty_ = true;
    ledger_.failed();
    active_state_ = ActiveState::untrusted;
    // At once, so that a new sync point is all the caller needs; what fails here the next flush
    // tries again.
    if (!continue_in_new_segment() && rewrite_bytes_ > 0) (void)write_head(rewrite_bytes_);
}

SyncPoint SpoolWriter::sync_point_for_all() {
    SyncPoint point = sync_point();
    // Everything written so far, also what points whose result was never reported cover.
    point.first_generation_ = 1;
    for (auto& file : ledger_.unconfirmed_files())
        if (std::find(point.files_.begin(), point.files_.end(), file) == point.files_.end())
            point.files_.push_back(file);
    return point;
}

std::error_code SpoolWriter::sync() {
    if (auto ec = flush()) return ec;
    SyncPoint point = sync_point_for_all();
    if (auto ec = point.sync()) {
        sync_failed(point);
        return ec;
    }
    synced(point);
    return {};
}

// Each id once: the same done record can reach several segments (written, then written again
// after a failed sync), and carrying every copy forward would multiply them at each collect.
bool SpoolWriter::carry_forward(Segment& segment) {
    bool carried = false;
    std::sort(active_->carried.begin(), active_->carried.end());
    active_->carried.erase(std::unique(active_->carried.begin(), active_->carried.end()), active_->carried.end());
    const std::vector<std::uint64_t> already(active_->carried);
    std::sort(segment.carried.begin(), segment.carried.end());
    segment.carried.erase(std::unique(segment.carried.begin(), segment.carried.end()), segment.carried.end());
    for (const auto id : segment.carried) {
        if (std::binary_search(already.begin(), already.end(), id) || !stored_elsewhere(id, segment)) continue;
        encode_done(pending_, id);
        pending_dones_.push_back(id);
        active_->carried.push_back(id);
        carried = true;
    }
    segment.carried.clear();
    return carried;
}

std::error_code SpoolWriter::remove(Segment& segment) {
    if (auto ec = files_.remove(directory_.segment_path(segment.number));
        ec && ec != std::errc::no_such_file_or_directory)
        return ec;
    forget_relocations_into(segment.number);
    read_files_.erase(segment.number);
    disk_bytes_ -= segment.bytes;
    segments_.erase(segment.number);
    return {};
}

std::error_code SpoolWriter::collect() {
    std::vector<Segment*> removable;
    for (auto& [number, segment] : segments_) {
        if (&segment == active_ || segment.live != 0) continue;
        if (!segment.retire_generation && carry_forward(segment)) segment.retire_generation = flush_generation_ + 1;
        if (!segment.retire_generation || *segment.retire_generation <= durable_generation_)
            removable.push_back(&segment);
    }
    for (Segment* segment : removable)
        if (auto ec = remove(*segment)) return ec;
    return {};
}

std::shared_ptr<FileHandle> SpoolWriter::read_file(std::uint64_t segment) const {
    if (segment == active_->number) return active_file_;
    if (const auto open = read_files_.find(segment); open != read_files_.end()) return open->second;
    FileHandle fd;
    if (files_.open(directory_.segment_path(segment), FileSystem::Mode::read, fd)) return nullptr;
    auto file = std::make_shared<FileHandle>(std::move(fd));
    read_files_.emplace(segment, file);
    return file;
}

std::error_code SpoolWriter::locate(const Locator& requested, Source& source) const {
    const Locator at = current_location(requested);
    const auto found = segments_.find(at.segment);
    if (found == segments_.end() || at.length < kRecordHeaderSize) return make_error_code(SpoolErrc::unknown_record);
    const Segment& segment = found->second;
    source = Source{at, {}, nullptr, segment.bytes};
    if (&segment == active_ && at.offset >= segment.bytes) {
        const std::uint64_t in_pending = at.offset - segment.bytes;
        if (in_pending + at.length > pending_.size()) return make_error_code(SpoolErrc::unknown_record);
        source.pending.assign(pending_, in_pending, at.length);
        return {};
    }
    if (at.offset + at.length > segment.bytes) return make_error_code(SpoolErrc::unknown_record);
    source.file = read_file(at.segment);
    if (!source.file) {
        FileHandle fd;  // why it cannot be opened
        const auto ec = files_.open(directory_.segment_path(at.segment), FileSystem::Mode::read, fd);
        return !ec || ec == std::errc::no_such_file_or_directory ? make_error_code(SpoolErrc::unknown_record) : ec;
    }
    return {};
}

// The bytes of the record at `requested` (where it is now, should it have been written again).
std::error_code SpoolWriter::read_record(const Locator& requested, std::string& bytes) const {
    Source source;
    if (auto ec = locate(requested, source)) return ec;
    if (!source.file) {
        bytes = std::move(source.pending);
        return {};
    }
    bytes.resize(source.place.length);
    return read_all_at(files_, source.file->get(), bytes.data(), bytes.size(), source.place.offset);
}

std::error_code SpoolWriter::decode_event(std::string_view bytes, const Locator& at, StoredEvent& event,
                                          std::string& body) {
    const Decoded record = decode_record(bytes);
    if (record.status != DecodeStatus::ok || record.type != RecordType::event || record.size != at.length)
        return make_error_code(SpoolErrc::corrupt_record);
    event.record_id = record.event.record_id;
    event.sequence = record.event.sequence;
    event.accepted_ms = record.event.accepted_ms;
    event.event_id.assign(record.event.event_id);
    event.call.assign(record.event.call);
    event.type.assign(record.event.type);
    event.destination.assign(record.event.destination);
    event.locator = at;
    body.assign(record.event.body);
    return {};
}

std::error_code SpoolWriter::read_event(const Locator& at, StoredEvent& event, std::string& body) const {
    std::string bytes;
    if (auto ec = read_record(at, bytes)) return ec;
    return decode_event(bytes, at, event, body);
}

std::error_code SpoolWriter::read_body(const Locator& at, std::string& body) const {
    StoredEvent event;
    return read_event(at, event, body);
}

}  // namespace avr_webhookd::spool
