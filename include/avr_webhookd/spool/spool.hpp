#pragma once

#include <avr_webhookd/common/event.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/ops/logger.hpp>
#include <avr_webhookd/ops/metrics.hpp>
#include <avr_webhookd/spool/block_reader.hpp>
#include <avr_webhookd/spool/numbering_checkpoint.hpp>
#include <avr_webhookd/spool/recovery.hpp>
#include <avr_webhookd/spool/spool_writer.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace avr_webhookd::spool {

class DiskThread;

struct SpoolSettings {
    std::filesystem::path dir;
    SpoolSync sync = SpoolSync::always;
    std::chrono::milliseconds sync_interval{100};
    std::uint64_t max_bytes = 1ull << 30;
    // How long close() waits for its last fdatasync, and for a parked event's read in progress,
    // before it goes on without it (a hung disk).
    std::chrono::milliseconds close_sync_budget{5000};
};
SpoolSettings spool_settings(const Config& config);

// The daemon's side of the spool: the SpoolWriter driven from the event loop, with its fdatasync
// on a thread of its own so that the loop never waits for the disk.
//
// store() writes an event's record at once (one write; delivery may start right after; a batch of
// append() calls shares one write_appended()). With
// spool_sync = always it returns a ticket, a flush generation: the event may be acknowledged once
// durable() reaches it. One fdatasync runs at a time and covers every record written before it
// started (group commit); records written meanwhile wait for the next one, which starts as soon
// as the previous ends. With interval the ticket is 0 (acknowledge now) and a timer syncs.
// done() records that an event was delivered or durably dead-lettered; done records ride along
// with the next write, and segments whose events are all done are deleted every second.
//
// Numbering: segments are deleted only after the numbering checkpoint (NumberingCheckpoint).
class Spool {
public:
    // Opens and locks the folder and recovers what it holds. Throws SpoolOpenError. `files`: a
    // test seam (every file operation of the spool goes through it).
    Spool(boost::asio::io_context& io, SpoolSettings settings, Logger& logger, Metrics& metrics,
          FileSystem& files = system_file_system());
    ~Spool();
    Spool(const Spool&) = delete;
    Spool& operator=(const Spool&) = delete;

    // The undelivered events found at start (bodies via read_body); emptied by release_recovered().
    // Whoever queues them may pop them as it goes, so that a large backlog is not held twice.
    const Recovery& recovered() const { return recovery_; }
    Recovery& recovered() { return recovery_; }
    void release_recovered();
    std::error_code read_body(const Locator& at, std::string& body) const { return writer_.read_body(at, body); }
    // The whole record (a parked event read back); the locator of store() or recovered(), which
    // stays valid after the record was written again elsewhere (the writer follows it).
    std::error_code read_event(const Locator& at, StoredEvent& event, std::string& body) const {
        return writer_.read_event(at, event, body);
    }
    // The same without blocking the loop (see BlockReader): ready, or reading (then `waiter` is
    // told when to ask again), or failed.
    BlockReader::Status try_read_event(const Locator& at, BlockReader::Waiter& waiter, StoredEvent& event,
                                       std::string& body, std::error_code& error) {
        return reader_->read(at, waiter, event, body, error);
    }
    void forget_waiter(const BlockReader::Waiter& waiter) { reader_->forget(waiter); }
    std::uint64_t parked_reads() const { return reader_->reads(); }  // blocks read back so far

    struct Stored {
        std::error_code error;  // SpoolErrc::spool_full, record_too_large, or the file system's
        std::uint64_t record_id = 0;
        Locator locator;           // where the record lies, for read_event()
        std::uint64_t ticket = 0;  // acknowledge once durable() >= ticket; 0: at once
    };
    // `destination`: "" for the default destination, else the name of the one it is stored for.
    // append() + write_appended() for one event.
    Stored store(const Event& event, std::uint64_t sequence, std::string_view destination = {});
    // Group writes (the socket intake's lines of one read): append() encodes an event's record
    // without writing it (its error: spool_full, record_too_large or the store fault; ticket 0),
    // and write_appended() writes every record appended since with one write(2), giving the
    // ticket that acknowledges them all (0: at once). Until it succeeded those events must not be
    // queued; when it fails the writer dropped them all (the caller refuses each of them).
    Stored append(const Event& event, std::uint64_t sequence, std::string_view destination = {});
    std::error_code write_appended(std::uint64_t& ticket);
    // A test seam: called by store() first; an error it returns is store()'s (nothing is
    // written), so that one destination's copy of an event can fail while another's is stored.
    using StoreFault = std::function<std::error_code(const Event& event, std::string_view destination)>;
    void set_store_fault(StoreFault fault) { store_fault_ = std::move(fault); }
    void done(std::uint64_t record_id);

    // Whether `bytes` more fit under spool_max_bytes.
    bool has_room(std::uint64_t bytes) const { return writer_.bytes() + bytes <= settings_.max_bytes; }
    std::uint64_t durable() const { return writer_.durable_generation(); }
    // Called on the loop whenever durable() advances.
    void on_durable(std::function<void(std::uint64_t)> callback) { on_durable_ = std::move(callback); }
    // Called on the loop after deleted segments made room.
    void on_room(std::function<void()> callback) { on_room_ = std::move(callback); }
    // Each call's last sequence number, for the numbering checkpoint.
    using Numbering = NumberingCheckpoint::Numbering;
    void on_checkpoint(std::function<Numbering()> provider) { numbering_ = std::move(provider); }

    void start();
    // Writes and syncs what is pending and stops the timers (shutdown; blocks the loop on the
    // disk, for at most close_sync_budget: a disk whose fdatasync hangs gets an error log, and the stop goes on
    // without that sync, leaving the sync thread behind. Nothing acknowledged depends on it: with
    // always, records written since the last sync were not acknowledged; with interval they are
    // in the page cache, as after any stop). A read of a parked event that hangs gets the same
    // budget first (the event stays in the spool).
    void close();

    std::optional<std::string> unhealthy_reason() const;
    void update_gauges();
    const std::filesystem::path& path() const { return writer_.path(); }
    const SpoolSettings& settings() const { return settings_; }

private:
    Spool(boost::asio::io_context& io, SpoolSettings settings, Logger& logger, Metrics& metrics,
          SpoolDirectory directory);
    void request_sync();
    void sync_finished(const SyncPoint& point, std::error_code error, std::chrono::nanoseconds took);
    void schedule_flush();
    void flush_now();
    void note_write_result(std::error_code error);
    void run_timer();
    void log_recovery();
    void collect();

    boost::asio::io_context& io_;
    SpoolSettings settings_;
    Logger& logger_;
    Metrics& metrics_;
    Recovery recovery_;
    SpoolWriter writer_;
    std::unique_ptr<BlockReader> reader_;
    std::unique_ptr<DiskThread> sync_thread_;
    boost::asio::steady_timer timer_;
    std::function<void(std::uint64_t)> on_durable_;
    std::function<void()> on_room_;
    std::function<Numbering()> numbering_;
    StoreFault store_fault_;
    NumberingCheckpoint checkpoint_;
    bool checkpoint_failed_ = false;  // logged once until it succeeds
    enum class SyncState { idle, running, running_and_wanted } sync_state_ = SyncState::idle;
    bool flush_posted_ = false;
    bool closed_ = false;
    std::chrono::steady_clock::time_point last_collect_{};
    std::uint64_t unsynced_bytes_ = 0;  // written since the last sync started (bounded with interval)
    std::error_code write_error_;       // the last write's failure, until a write succeeds
    std::error_code sync_error_;        // the last sync's failure, until a sync succeeds
};

}  // namespace avr_webhookd::spool
