#include <avr_webhookd/spool/spool.hpp>

#include <avr_webhookd/spool/spool_error.hpp>

#include "disk_thread.hpp"

#include <avr_webhookd/common/duration.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cerrno>

namespace avr_webhookd::spool {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto collect_period = std::chrono::seconds(1);
constexpr std::uint64_t rotate_when_idle_bytes = 64 << 10;
// spool_sync = interval: a sync starts before the interval is over once this much was written since
// the last one, which bounds the copy the writer keeps of unsynced records (SpoolWriter).
constexpr std::uint64_t interval_sync_bytes = 1 << 20;

SpoolOptions writer_options(const SpoolSettings& settings) {
    SpoolOptions options;
    options.max_bytes = settings.max_bytes;
    // Space comes back a segment at a time: keep several segments under the bound. At most 16 MiB:
    // the scan at start holds one segment in memory at a time.
    options.segment_bytes = std::clamp<std::uint64_t>(settings.max_bytes / 8, 64 << 10, 16ull << 20);
    return options;
}

bool is_out_of_space(std::error_code error) {
    return error == std::error_code(ENOSPC, std::system_category()) ||
           error == std::error_code(EDQUOT, std::system_category()) ||
           error == std::error_code(EFBIG, std::system_category()) || error == SpoolErrc::spool_full;
}

// A segment that cannot be read may hold the highest record ids and the oldest events: starting
// without it would reuse its ids (its events then look done) and replay calls out of order.
Recovery recover_or_refuse(const SpoolDirectory& directory) {
    Recovery recovery = recover(directory);
    const auto& stats = recovery.stats;
    if (stats.list_error)
        throw SpoolOpenError(SpoolOpenError::Kind::cannot_create,
                             "spool: cannot list " + directory.path().string() + ": " + stats.list_error.message());
    if (!stats.unreadable.empty()) {
        const auto& [segment, error] = stats.unreadable.front();
        throw SpoolOpenError(SpoolOpenError::Kind::cannot_create,
                             "spool: " + (directory.path() / segment_file_name(segment)).string() +
                                 " cannot be read (" + error.message() +
                                 "); not starting, so that its events are neither lost nor reordered: "
                                 "make it readable, or move it out of the spool to give its events up");
    }
    NumberingCheckpoint::merge(directory.files(), directory.path(), recovery);
    return recovery;
}

}  // namespace

SpoolSettings spool_settings(const Config& config) {
    return SpoolSettings{config.spool_dir, config.spool_sync, config.spool_sync_interval, config.spool_max_bytes};
}

Spool::Spool(asio::io_context& io, SpoolSettings settings, Logger& logger, Metrics& metrics, FileSystem& files)
    : Spool(io, settings, logger, metrics, SpoolDirectory::open(files, settings.dir)) {}

Spool::Spool(asio::io_context& io, SpoolSettings settings, Logger& logger, Metrics& metrics, SpoolDirectory directory)
    : io_(io),
      settings_(std::move(settings)),
      logger_(logger),
      metrics_(metrics),
      recovery_(recover_or_refuse(directory)),
      writer_(std::move(directory), recovery_, writer_options(settings_)),
      reader_(std::make_unique<BlockReader>(io, writer_)),
      sync_thread_(std::make_unique<DiskThread>(io)),
      timer_(io) {
    log_recovery();
}

Spool::~Spool() = default;

void Spool::log_recovery() {
    const auto& stats = recovery_.stats;
    metrics_.spool_recovered = recovery_.events.size();
    metrics_.spool_corrupt_records = stats.corrupt.size() + stats.torn_tails.size();
    for (const auto& range : stats.corrupt)
        logger_.error("spool: damaged record in " + segment_file_name(range.segment) + " at byte " +
                      std::to_string(range.offset) + " (" + std::to_string(range.length) +
                      " bytes) skipped; the events it held are lost");
    for (const auto& range : stats.torn_tails)
        logger_.warn("spool: torn tail of " + segment_file_name(range.segment) + " cut at byte " +
                     std::to_string(range.offset) + " (" + std::to_string(range.length) +
                     " bytes; a write the crash interrupted, never acknowledged)");
    logger_.info("spool: " + path().string() + ": " + std::to_string(recovery_.events.size()) +
                 " undelivered events of " + std::to_string(recovery_.calls()) + " calls recovered from " +
                 std::to_string(stats.segments) + " segments; spool_sync = " + std::string(to_string(settings_.sync)));
}

void Spool::release_recovered() {
    recovery_.events = {};
    recovery_.last_sequence = {};
    recovery_.destinations = {""};
}

void Spool::start() { run_timer(); }

Spool::Stored Spool::store(const Event& event, std::uint64_t sequence, std::string_view destination) {
    Stored stored = append(event, sequence, destination);
    if (stored.error) return stored;
    if (const auto error = write_appended(stored.ticket)) {
        stored = Stored{};
        stored.error = error;
    }
    return stored;
}

Spool::Stored Spool::append(const Event& event, std::uint64_t sequence, std::string_view destination) {
    Stored stored;
    if (store_fault_ && (stored.error = store_fault_(event, destination))) {
        note_write_result(stored.error);
        return stored;
    }
    const auto accepted_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(event.accepted_wall.time_since_epoch()).count();
    Appended appended;
    stored.error = writer_.append_event(
        NewEvent{event.id, event.uuid, event.type, event.body, sequence, accepted_ms, destination}, appended);
    if (stored.error) {
        note_write_result(stored.error);
        return stored;
    }
    stored.record_id = appended.record_id;
    stored.locator = appended.locator;
    return stored;
}

// Written at once: delivery may start as soon as this returns, and a crash from here on keeps them.
std::error_code Spool::write_appended(std::uint64_t& ticket) {
    ticket = 0;
    const auto written = writer_.pending_bytes();
    const auto error = writer_.flush();
    note_write_result(error);
    if (error) return error;
    unsynced_bytes_ += written;
    if (settings_.sync == SpoolSync::always) {
        ticket = writer_.flush_generation();
        request_sync();
    } else if (unsynced_bytes_ >= interval_sync_bytes) {
        request_sync();  // sooner than the interval: the writer keeps a copy of what is not synced
    }
    return {};
}

void Spool::done(std::uint64_t record_id) {
    writer_.append_done(record_id);
    schedule_flush();
}

void Spool::note_write_result(std::error_code error) {
    if (!error) {
        if (write_error_) logger_.info("spool: writes succeed again");
        write_error_.clear();
        metrics_.spool_disk_full = 0;
        return;
    }
    if (error == SpoolErrc::record_too_large) return;  // one event's problem, not the disk's
    const bool first = !write_error_;
    write_error_ = error;
    metrics_.spool_disk_full = is_out_of_space(error) ? 1 : 0;
    if (error == SpoolErrc::spool_full) return;  // the queue_full machinery logs and counts it
    ++metrics_.spool_write_failures;
    if (first)
        logger_.error("spool: write to " + path().string() + " failed: " + error.message() +
                      "; new events are rejected until writes succeed again");
}

// Done records need no sync of their own (a lost one means a duplicate delivery, not a loss):
// one write per loop turn carries them, unless an event's write took them along first.
void Spool::schedule_flush() {
    if (flush_posted_ || closed_) return;
    flush_posted_ = true;
    asio::post(io_, [this] {
        flush_posted_ = false;
        if (!closed_ && writer_.pending_bytes() > 0) flush_now();
    });
}

// No sync of their own for done records: the next event's sync covers them, or the timer's.
void Spool::flush_now() {
    const auto error = writer_.flush();
    if (error && !write_error_) logger_.warn("spool: writing done records failed: " + error.message());
}

void Spool::request_sync() {
    switch (sync_state_) {
    case SyncState::idle:
        break;
    case SyncState::running:
    case SyncState::running_and_wanted:
        sync_state_ = SyncState::running_and_wanted;
        return;
    }
    SyncPoint point = writer_.sync_point();
    if (point.empty()) return;
    unsynced_bytes_ = 0;
    sync_state_ = SyncState::running;
    sync_thread_->submit([this, point = std::move(point)]() mutable -> DiskThread::LoopPart {
        const auto started = Clock::now();
        const auto error = point.sync();
        const auto took = Clock::now() - started;
        return [this, point = std::move(point), error, took] { sync_finished(point, error, took); };
    });
}

void Spool::sync_finished(const SyncPoint& point, std::error_code error, std::chrono::nanoseconds took) {
    const bool wanted = sync_state_ == SyncState::running_and_wanted;
    sync_state_ = SyncState::idle;
    if (closed_) return;
    metrics_.spool_sync_latency.observe(std::chrono::duration<double>(took).count());
    if (error) {
        writer_.sync_failed(point);
        ++metrics_.spool_sync_failures;
        if (!sync_error_)
            logger_.error("spool: fdatasync of " + path().string() + " failed: " + error.message() +
                          "; acknowledgements wait until a sync succeeds");
        sync_error_ = error;
    } else {
        writer_.synced(point);
        if (sync_error_) logger_.info("spool: fdatasync succeeds again");
        sync_error_.clear();
        if (on_durable_) on_durable_(writer_.durable_generation());
    }
    // After a failure the timer tries again (a second apart), so a broken disk is not spun on.
    // Events written meanwhile wanted one (done records alone wait for the timer's).
    if (!error && wanted) request_sync();
}

void Spool::run_timer() {
    if (closed_) return;
    const auto period = settings_.sync == SpoolSync::interval
                            ? std::min<Clock::duration>(settings_.sync_interval, collect_period)
                            : Clock::duration(collect_period);
    timer_.expires_after(period);
    timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || closed_) return;
        if (writer_.pending_bytes() > 0 || sync_error_) flush_now();
        if (writer_.flush_generation() > writer_.durable_generation()) request_sync();
        if (Clock::now() - last_collect_ >= collect_period) {
            last_collect_ = Clock::now();
            // Everything is done: start afresh, so that the old segment goes (a full disk frees up).
            if (writer_.live_events() == 0 && writer_.active_segment_bytes() >= rotate_when_idle_bytes) {
                writer_.rotate_soon();
                flush_now();
            }
            const auto before = writer_.bytes();
            collect();
            if (writer_.bytes() < before && on_room_) on_room_();
        }
        run_timer();
    });
}

// The numbering checkpoint first when there was a rotation, then done segments go.
void Spool::collect() {
    const auto result = checkpoint_.collect(writer_, numbering_);
    if (result.checkpoint && !checkpoint_failed_)
        logger_.warn("spool: writing the numbering checkpoint failed: " + result.checkpoint.message() +
                     "; after a restart, calls whose events were all delivered may be numbered from 1 again");
    checkpoint_failed_ = static_cast<bool>(result.checkpoint);
    if (result.collect) logger_.warn("spool: deleting done segments failed: " + result.collect.message());
}

// On the loop at the end: the last records written and synced, within close_sync_budget (the sync
// in progress included), then done segments go. Past the budget the disk hangs: the stop goes on
// without the sync (see the header).
void Spool::close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    if (!reader_->stop(settings_.close_sync_budget))
        logger_.error("spool: reading a parked event back from " + path().string() + " did not finish within " +
                      format_duration(settings_.close_sync_budget) +
                      " (the disk hangs); stopping without it. The event stays in the spool");
    std::error_code error = writer_.flush();
    if (!error) {
        SyncPoint point = writer_.sync_point_for_all();
        auto result = std::make_shared<std::error_code>();
        const auto finished = sync_thread_->run_and_wait(
            [point, result]() -> DiskThread::LoopPart {
                *result = point.sync();
                return {};
            },
            settings_.close_sync_budget);
        if (!finished) {
            ++metrics_.spool_sync_failures;
            logger_.error("spool: the final fdatasync of " + path().string() + " did not finish within " +
                          format_duration(settings_.close_sync_budget) +
                          " (the disk hangs); stopping without it. Every acknowledged event was synced before; "
                          "what was written since stays in the page cache and is lost only if the machine loses "
                          "power before the kernel writes it");
            return;
        }
        error = *result;
        if (error) writer_.sync_failed(point);
        else writer_.synced(point);
    }
    if (error) logger_.error("spool: final write and sync of " + path().string() + " failed: " + error.message());
    else if (on_durable_) on_durable_(writer_.durable_generation());
    collect();
}

std::optional<std::string> Spool::unhealthy_reason() const {
    if (write_error_ == SpoolErrc::spool_full)
        return "the spool is full (spool_max_bytes=" + std::to_string(settings_.max_bytes) + ")";
    if (write_error_) return "spool writes fail: " + write_error_.message() + "; new events are rejected";
    if (sync_error_) return "spool fdatasync fails: " + sync_error_.message() + "; acknowledgements wait";
    return std::nullopt;
}

void Spool::update_gauges() {
    metrics_.spool_bytes = writer_.bytes();
    metrics_.spool_records = writer_.live_events();
    metrics_.spool_segments = writer_.segments();
}

}  // namespace avr_webhookd::spool
