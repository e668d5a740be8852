#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd {

// The dead-letter file itself, synchronous (the writer thread below drives it; tests use it
// directly). Lines are NDJSON, replayable with `avr-webhookd send`.
//
// No torn lines: a batch is one write(2) with O_APPEND and one fdatasync, and a failed or short
// write (disk full, RLIMIT_FSIZE, I/O error) is cut back with ftruncate to the size before it,
// so each line is either whole on disk or reported as not written. A file that does not end in
// '\n' when opened (a crash mid-write) first gets one, so the torn line stays one bad line
// instead of swallowing the next good one.
class DeadLetterFile {
public:
    // An empty path disables the file. Opens (creating with mode 0640) at once, so a path that
    // cannot be written stops the daemon at start: std::runtime_error.
    explicit DeadLetterFile(std::string path);
    ~DeadLetterFile();
    DeadLetterFile(const DeadLetterFile&) = delete;
    DeadLetterFile& operator=(const DeadLetterFile&) = delete;

    bool enabled() const { return fd_ >= 0; }
    const std::string& path() const { return path_; }

    struct BatchResult {
        std::size_t written = 0;     // the first `written` lines are on disk and synced
        std::size_t overflowed = 0;  // then this many did not fit under max_bytes (not written)
        std::string error;           // set when the write or sync failed: no line of the batch is on disk
    };
    // Appends the lines (each without its '\n') in order. With max_bytes > 0, lines go in while the
    // file stays within max_bytes; the first that would pass it and every line after it overflow.
    BatchResult append(const std::vector<std::string>& lines, std::uint64_t max_bytes);

private:
    std::string path_;
    int fd_ = -1;
};

// Group commit off the event loop: lines are handed to one writer thread, which writes all that
// are pending with one write and one fdatasync and reports each line's outcome back on the
// loop's executor. A flood of dead letters thus costs a few syncs, and never stalls delivery,
// /healthz or the watchdog.
class DeadLetterWriter {
public:
    enum class Result { written, overflow, failed };
    struct Outcome {
        Result result;
        std::string error;  // for failed
        std::string line;   // the line, when it was not written (the caller logs it instead)
    };
    using Completion = std::function<void(const Outcome&)>;

    // Lines waiting for the thread beyond this are not queued but complete as failed at once
    // (the caller logs them), so a disk that hangs cannot grow the daemon without bound.
    static constexpr std::size_t max_backlog_bytes = 64u << 20;

    // max_bytes 0 = no bound. Throws std::runtime_error when the file cannot be opened.
    DeadLetterWriter(boost::asio::any_io_executor executor, std::string path, std::uint64_t max_bytes);
    ~DeadLetterWriter();  // finish(30s) if not done yet
    DeadLetterWriter(const DeadLetterWriter&) = delete;
    DeadLetterWriter& operator=(const DeadLetterWriter&) = delete;

    bool enabled() const;
    const std::string& path() const;
    void set_max_bytes(std::uint64_t max_bytes);
    std::uint64_t max_bytes() const;
    // The most recent batch had lines that did not fit under max_bytes.
    bool full() const;

    // Queues one line (without '\n'); `done` runs on the executor once it is synced or was not
    // written. After finish(), `done` runs at once with Result::failed.
    void append(std::string line, Completion done);
    // Lines handed over whose completion has not run yet (call on the executor's thread).
    std::size_t pending() const;

    // For after the event loop stopped: waits up to `budget` for the thread to write what it has,
    // then runs the outstanding completions on the calling thread. Lines the thread could not
    // take in time complete as failed. Idempotent.
    void finish(std::chrono::milliseconds budget);

private:
    struct Shared;
    static void run(const std::shared_ptr<Shared>& shared);
    static void run_completions(Shared& shared);

    std::shared_ptr<Shared> shared_;
    bool finished_ = false;
};

}  // namespace avr_webhookd
