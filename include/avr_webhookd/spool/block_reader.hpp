#pragma once

#include <avr_webhookd/spool/recovery.hpp>
#include <avr_webhookd/spool/spool_writer.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace avr_webhookd::spool {

class DiskThread;

// Reads parked events back without blocking the event loop. A record comes from the blocks read
// last, or its block (the record and the records after it, up to block_bytes: a backlog drains
// in log order, so one read serves many events) is read on a thread of its own while the loop goes
// on, and the waiters are told once it is in; they ask again then. Used on the loop only (the
// thread does nothing but the read). Memory: at most `cached_blocks` blocks.
class BlockReader {
public:
    static constexpr std::size_t block_bytes = 256 << 10;
    static constexpr std::size_t cached_blocks = 4;

    // Told on the loop when a read it waited for has ended (successfully or not).
    class Waiter {
    public:
        virtual void records_read() = 0;

    protected:
        ~Waiter() = default;
    };
    enum class Status {
        ready,    // `event` and `body` hold the record
        reading,  // its block is being read; `waiter` is told when it is in
        failed,   // `error`: SpoolErrc::corrupt_record, unknown_record, or the file system's
    };

    BlockReader(boost::asio::io_context& io, const SpoolWriter& writer);
    ~BlockReader();  // stop() without a bound, unless it was stopped
    // No more reads: the read in progress gets up to `budget` (a disk on which pread hangs must
    // not hold a stop); past it, its thread is left behind and false returned. Waiters are not told;
    // a read after it that needs the disk fails with std::errc::operation_canceled.
    bool stop(std::chrono::steady_clock::duration budget);
    BlockReader(const BlockReader&) = delete;
    BlockReader& operator=(const BlockReader&) = delete;

    Status read(const Locator& at, Waiter& waiter, StoredEvent& event, std::string& body, std::error_code& error);
    // The waiter goes away: it is not told of reads it waited for.
    void forget(const Waiter& waiter);
    std::uint64_t reads() const { return reads_; }  // blocks read so far

private:
    struct Range {
        std::uint64_t segment = 0;
        std::uint64_t offset = 0;
        std::uint64_t length = 0;
        bool contains(const Locator& at) const {
            return at.segment == segment && at.offset >= offset && at.offset + at.length <= offset + length;
        }
    };
    struct Block {
        Range range;
        std::string bytes;
    };
    struct Reading {
        Range range;
        std::vector<Waiter*> waiters;
    };
    struct Failed {
        Range range;
        std::error_code error;
    };

    void start(const Locator& place, const SpoolWriter::Source& source, Waiter& waiter);
    void finished(const Range& range, std::string bytes, std::error_code error);

    const SpoolWriter& writer_;
    std::unique_ptr<DiskThread> thread_;
    std::deque<Block> blocks_;  // newest last
    std::vector<Reading> reading_;
    std::deque<Failed> failed_;  // reads that failed lately: the record each was started for fails
    std::uint64_t reads_ = 0;
    bool stopped_ = false;
    std::shared_ptr<char> alive_ = std::make_shared<char>();  // a read ending after this object is ignored
};

}  // namespace avr_webhookd::spool
