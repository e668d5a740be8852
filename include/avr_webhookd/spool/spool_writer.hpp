#pragma once

#include <avr_webhookd/spool/recovery.hpp>
#include <avr_webhookd/spool/spool_directory.hpp>
#include <avr_webhookd/spool/sync_ledger.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace avr_webhookd::spool {

// How SyncPoint::sync makes one file durable: fdatasync(2) for a segment, fsync(2) for the folder
// (through the spool's FileSystem unless a test replaces it).
enum class SyncTarget { segment, directory };
using SyncFunction = std::function<std::error_code(int fd, SyncTarget target)>;
std::error_code system_sync(int fd, SyncTarget target);  // the system's calls

struct SpoolOptions {
    // A segment is closed and a new one started at the first flush that finds it this large, so
    // a segment may exceed it by one flushed batch.
    std::uint64_t segment_bytes = 16ull << 20;
    // append_event refuses (SpoolErrc::spool_full, nothing written) an event that would take the
    // spool's files past this. Done records are always accepted: they are tiny and free space.
    std::uint64_t max_bytes = 1ull << 30;
    // A test seam: when set, SyncPoint::sync calls this instead of the FileSystem's sync (to make
    // a sync fail as a failing disk does).
    SyncFunction sync_file;
};

struct NewEvent {
    std::string_view event_id;
    std::string_view call;
    std::string_view type;
    std::string_view body;
    std::uint64_t sequence = 0;
    std::int64_t accepted_ms = 0;
    std::string_view destination;  // "" = the default destination
};

struct Appended {
    std::uint64_t record_id = 0;
    Locator locator;
};

// The files written since the previous sync point: fdatasync them (and fsync the folder when a
// segment was created) on any thread, while the writer goes on appending on its own. Holds the
// files open, so a rotation or deletion meanwhile is harmless. It covers the flush generations
// after the previous point's up to generation().
class SyncPoint {
public:
    std::error_code sync() const;
    std::uint64_t generation() const { return generation_; }
    bool empty() const { return files_.empty() && !directory_; }

private:
    friend class SpoolWriter;
    std::vector<std::shared_ptr<FileHandle>> files_;
    std::shared_ptr<FileHandle> directory_;
    std::uint64_t first_generation_ = 1;
    std::uint64_t generation_ = 0;
    SyncFunction sync_file_;
    FileSystem* file_system_ = nullptr;
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
//
// A failed sync loses nothing that was acknowledged: after a failed fdatasync the kernel may have
// dropped the pages it could not write and report the next sync of that file as a success, so
// the writer never trusts that segment's unsynced part again. sync_failed() moves on to a new
// segment and writes there again, ahead of anything new, every record whose sync was not
// confirmed (from a copy kept in memory until its sync succeeds; events already done are written
// again too, so that their sequence numbers stay on disk), and durable_generation stays below the
// failed flushes until a sync of the copy succeeds. The caller needs only a new sync point; events
// keep their record ids, read_body follows them to their new place, and an event may afterwards
// be found twice on disk (recovery keeps one copy, and puts events back in record id order). Should the new segment or
// its write fail, the next flush tries again first (and drops the new events it fails for, as any failed flush does);
// meanwhile durable_generation does not move. The copy costs memory: what is written between two syncs (while syncs
// keep failing, what was written since the last good one, within max_bytes).
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

    // Sync points may be synced in any order, even at the same time, but durable_generation only
    // counts a flush once the points of every flush up to it succeeded (and a failure makes the
    // unsettled ones suspect too). Sync them one at a time, as group commit does: when two syncs
    // of a file overlap, the one that succeeds may have done so only because the other one was
    // told of the error. A point whose result is never reported holds durable_generation back
    // until sync() covers it.
    SyncPoint sync_point();
    void synced(const SyncPoint& point);  // its sync() succeeded
    // Its sync() failed: continue in a new segment and write the unconfirmed records again there
    // (see the class comment; does I/O, on this thread).
    void sync_failed(const SyncPoint& point);
    // A sync point that also covers the files of earlier points not yet reported (at shutdown, a
    // point whose result the loop never saw): reported synced, it makes everything durable.
    SyncPoint sync_point_for_all();
    // flush + sync_point_for_all + sync + synced (or sync_failed), here, for everything written so
    // far. Only call it when no other point is being synced.
    std::error_code sync();

    // Deletes segments that are not active and whose events are all done. Done records in such
    // a segment for events of older segments still present are first written again to the
    // active segment, and the segment goes only once they are durable (a later collect).
    std::error_code collect();

    // The body of an event record (pending or on disk), checksum verified.
    std::error_code read_body(const Locator& at, std::string& body) const;
    // The whole event record, checksum verified: its fields (locator: `at`) and body.
    // SpoolErrc::corrupt_record, unknown_record, or the file system's error.
    std::error_code read_event(const Locator& at, StoredEvent& event, std::string& body) const;

    // Where the record `at` (as store() or recovery gave it) can be read now, for a read off the
    // loop: in memory (not yet written: `pending` holds it), or in `file` (open; it stays
    // readable should the segment be deleted meanwhile) at `place`, which lies before `end`, the
    // bytes written to that segment so far. SpoolErrc::unknown_record when it is nowhere.
    struct Source {
        Locator place;
        std::string pending;
        std::shared_ptr<FileHandle> file;
        std::uint64_t end = 0;
    };
    std::error_code locate(const Locator& at, Source& source) const;
    // Decodes and checks the bytes of an event record read from `at` (SpoolErrc::corrupt_record).
    static std::error_code decode_event(std::string_view bytes, const Locator& at, StoredEvent& event,
                                        std::string& body);

    std::uint64_t bytes() const { return disk_bytes_ + pending_.size(); }  // files plus pending
    std::size_t segments() const { return segments_.size(); }
    std::uint64_t live_events() const { return live_events_; }
    std::size_t pending_bytes() const { return pending_.size(); }
    std::uint64_t active_segment() const { return active_->number; }
    std::uint64_t active_segment_bytes() const { return active_->bytes; }
    // The next flush starts a new segment (when the active one is not empty), so that collect()
    // can delete the old one once its events are done: how space comes back on a small disk.
    void rotate_soon() {
        if (active_state_ == ActiveState::writable) active_state_ = ActiveState::rotate_soon;
    }
    std::uint64_t flush_generation() const { return flush_generation_; }
    // Every record of every flush up to this one is on stable storage (after a failed sync:
    // written again, and that copy synced). An event flushed at generation g may be acknowledged
    // with spool_sync = always once this reaches g.
    std::uint64_t durable_generation() const { return durable_generation_; }
    const std::filesystem::path& path() const { return directory_.path(); }
    FileSystem& files() const { return files_; }

private:
    struct Segment {
        std::uint64_t number = 0;
        std::uint64_t bytes = 0;  // written to the file
        // Its event record ids, ascending, and whether each is done: 8 bytes and a bit per
        // event, and no assumption that ids are dense (damage or rollbacks leave gaps).
        std::vector<std::uint64_t> ids;  // live ones, after a restart
        std::uint64_t first_id = 0;      // range of every event record in the file, done ones too
        std::uint64_t last_id = 0;
        std::vector<bool> done;
        std::uint64_t live = 0;
        std::optional<std::size_t> index_of(std::uint64_t record_id) const;
        std::vector<std::uint64_t> carried;              // see RecoveredSegment::carried
        std::optional<std::uint64_t> retire_generation;  // deletable once this flush is durable
    };

    // The segment holding that event, and its index there.
    std::pair<Segment*, std::size_t> owner_of(std::uint64_t record_id);
    void mark_done(Segment& segment, std::size_t index);
    // Whether a segment other than `except` may still hold the event record `record_id`.
    bool stored_elsewhere(std::uint64_t record_id, const Segment& except) const;
    std::error_code start_segment(std::uint64_t number);
    std::error_code write_pending();
    std::error_code write_head(std::size_t length);
    void roll_back_pending(bool maybe_written);
    bool carry_forward(Segment& segment);
    std::error_code remove(Segment& segment);
    std::uint64_t durable_floor() const;
    // After a failed sync or on rotate_soon (spool_rewrite.cpp).
    std::error_code continue_in_new_segment();
    void carry_over(std::string_view bytes, std::uint64_t segment, std::uint64_t offset, std::string& out);
    bool move_to_active(std::uint64_t record_id);
    static void widen_range(Segment& segment, std::uint64_t record_id);
    void relocate(const Locator& from, const Locator& to);
    void forget_relocations_into(std::uint64_t segment, std::uint64_t offset = 0);
    Locator current_location(const Locator& at) const;
    std::error_code read_record(const Locator& at, std::string& bytes) const;
    std::shared_ptr<FileHandle> read_file(std::uint64_t segment) const;

    // What the next flush does with the active segment: append to it; start a new one (before
    // writing when only done records wait, else after; rotate_soon); or never write to it again,
    // after a failed sync of it or a failed write that could not be cut back off it (untrusted).
    enum class ActiveState { writable, rotate_soon, untrusted };
    using Place = std::pair<std::uint64_t, std::uint64_t>;  // segment, offset

    SpoolDirectory directory_;
    FileSystem& files_;  // the directory's
    SpoolOptions options_;
    std::shared_ptr<FileHandle> directory_handle_;
    std::map<std::uint64_t, Segment> segments_;
    Segment* active_ = nullptr;
    std::shared_ptr<FileHandle> active_file_;
    // Segments opened for reading parked events back, kept open until they are deleted.
    mutable std::map<std::uint64_t, std::shared_ptr<FileHandle>> read_files_;
    std::string pending_;
    std::vector<std::uint64_t> pending_events_;
    std::vector<std::uint64_t> pending_dones_;
    std::vector<std::shared_ptr<FileHandle>> dirty_files_;
    bool directory_dirty_ = false;
    ActiveState active_state_ = ActiveState::writable;
    SyncLedger ledger_;
    // The head of pending_ holds this many bytes of records written again after a failed sync
    // (not the caller's to lose when a flush fails), of flushes from rewrite_from_ on.
    std::size_t rewrite_bytes_ = 0;
    std::uint64_t rewrite_from_ = 0;
    // Events written again elsewhere: where the caller's locator pointed -> where they are now,
    // and back, until their new segment is deleted.
    std::map<Place, Locator> relocated_;
    std::map<Place, Place> relocated_from_;
    std::uint64_t next_id_ = 1;
    std::uint64_t disk_bytes_ = 0;
    std::uint64_t live_events_ = 0;
    std::uint64_t flush_generation_ = 0;
    std::uint64_t last_point_generation_ = 0;
    std::uint64_t durable_generation_ = 0;
};

}  // namespace avr_webhookd::spool
