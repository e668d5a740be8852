#pragma once

#include <avr_webhookd/spool/recovery.hpp>
#include <avr_webhookd/spool/spool_directory.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace avr_webhookd::spool {

struct SpoolOptions {
    // A segment is closed and a new one started at the first flush that finds it this large, so
    // a segment may exceed it by one flushed batch.
    std::uint64_t segment_bytes = 64ull << 20;
    // append_event refuses (SpoolErrc::spool_full, nothing written) an event that would take the
    // spool's files past this. Done records are always accepted: they are tiny and free space.
    std::uint64_t max_bytes = 1ull << 30;
};

struct NewEvent {
    std::string_view event_id;
    std::string_view call;
    std::string_view type;
    std::string_view body;
    std::uint64_t sequence = 0;
    std::int64_t accepted_ms = 0;
};

struct Appended {
    std::uint64_t record_id = 0;
    Locator locator;
};

// The files written since the previous sync point: fdatasync them (and fsync the folder when a
// segment was created) on any thread, while the writer goes on appending on its own. Holds the
// files open, so a rotation or deletion meanwhile is harmless.
class SyncPoint {
public:
    std::error_code sync() const;
    std::uint64_t generation() const { return generation_; }
    bool empty() const { return files_.empty() && !directory_; }

private:
    friend class SpoolWriter;
    std::vector<std::shared_ptr<FileHandle>> files_;
    std::shared_ptr<FileHandle> directory_;
    std::uint64_t generation_ = 0;
};

// Appends records to the active segment of a held spool folder (single-threaded; only
// SyncPoint::sync may run elsewhere).
//
// Group commit: append_event/append_done only encode into memory; flush() writes everything
// pending with one write(2); sync_point() + SyncPoint::sync() + synced() (or sync() for all
// three on this thread) make it durable, so one fdatasync covers every record written before.
// An event may be acknowledged after flush() (spool_sync = interval: survives the daemon's
// death) or after its sync (always: survives a power loss), and must not be delivered before
// flush() succeeded.
//
// Failures never corrupt the spool: a failed write is cut back off the file and every event
// appended since the last successful flush is dropped (the caller rejects them); done records
// stay pending and are written by the next flush. The writer stays usable; when the disk has
// room again the next flush succeeds.
class SpoolWriter {
public:
    // Takes over the folder after recover(): starts a new segment after the highest one found.
    // Throws SpoolOpenError when the new segment cannot be created.
    SpoolWriter(SpoolDirectory directory, const Recovery& recovered, SpoolOptions options = {});
    SpoolWriter(const SpoolWriter&) = delete;
    SpoolWriter& operator=(const SpoolWriter&) = delete;

    // SpoolErrc::spool_full or record_too_large: nothing was appended.
    std::error_code append_event(const NewEvent& event, Appended& out);
    // The event was delivered or durably dead-lettered. Idempotent; unknown ids are ignored.
    void append_done(std::uint64_t record_id);
    // Writes everything pending (one write). On failure see the class comment.
    std::error_code flush();

    SyncPoint sync_point();
    void synced(const SyncPoint& point);       // its sync() succeeded
    void sync_failed(const SyncPoint& point);  // its sync() failed: the data may not be durable
    std::error_code sync();                    // flush + sync_point + sync + synced, here

    // Deletes segments that are not active and whose events are all done. Done records in such
    // a segment for events of older segments still present are first written again to the
    // active segment, and the segment goes only once they are durable (a later collect).
    std::error_code collect();

    // The body of an event record (pending or on disk), checksum verified.
    std::error_code read_body(const Locator& at, std::string& body) const;

    std::uint64_t bytes() const { return disk_bytes_ + pending_.size(); }  // files plus pending
    std::size_t segments() const { return segments_.size(); }
    std::uint64_t live_events() const { return live_events_; }
    std::size_t pending_bytes() const { return pending_.size(); }
    std::uint64_t active_segment() const { return active_->number; }
    std::uint64_t active_segment_bytes() const { return active_->bytes; }
    // The next flush starts a new segment (when the active one is not empty), so that collect()
    // can delete the old one once its events are done: how space comes back on a small disk.
    void rotate_soon() { rotate_needed_ = true; }
    std::uint64_t flush_generation() const { return flush_generation_; }
    std::uint64_t durable_generation() const { return durable_generation_; }
    const std::filesystem::path& path() const { return directory_.path(); }

private:
    struct Segment {
        std::uint64_t number = 0;
        std::uint64_t bytes = 0;     // written to the file
        // Its event record ids, ascending, and whether each is done: 8 bytes and a bit per
        // event, and no assumption that ids are dense (damage or rollbacks leave gaps).
        std::vector<std::uint64_t> ids;  // live ones, after a restart
        std::uint64_t first_id = 0;      // range of every event record in the file, done ones too
        std::uint64_t last_id = 0;
        std::vector<bool> done;
        std::uint64_t live = 0;
        std::optional<std::size_t> index_of(std::uint64_t record_id) const;
        std::vector<std::uint64_t> carried;             // see RecoveredSegment::carried
        std::optional<std::uint64_t> retire_generation;  // deletable once this flush is durable
    };

    // The segment holding that event, and its index there.
    std::pair<Segment*, std::size_t> owner_of(std::uint64_t record_id);
    void mark_done(Segment& segment, std::size_t index);
    // Whether a segment other than `except` may still hold the event record `record_id`.
    bool stored_elsewhere(std::uint64_t record_id, const Segment& except) const;
    std::error_code start_segment(std::uint64_t number);
    std::error_code write_pending();
    void roll_back_pending();
    bool carry_forward(Segment& segment);
    std::error_code remove(Segment& segment);

    SpoolDirectory directory_;
    SpoolOptions options_;
    std::shared_ptr<FileHandle> directory_handle_;
    std::map<std::uint64_t, Segment> segments_;
    Segment* active_ = nullptr;
    std::shared_ptr<FileHandle> active_file_;
    std::string pending_;
    std::vector<std::uint64_t> pending_events_;
    std::vector<std::uint64_t> pending_dones_;
    std::vector<std::shared_ptr<FileHandle>> dirty_files_;
    bool directory_dirty_ = false;
    bool rotate_needed_ = false;
    std::uint64_t next_id_ = 1;
    std::uint64_t disk_bytes_ = 0;
    std::uint64_t live_events_ = 0;
    std::uint64_t flush_generation_ = 0;
    std::uint64_t durable_generation_ = 0;
};

}  // namespace avr_webhookd::spool
