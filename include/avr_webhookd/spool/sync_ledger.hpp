#pragma once

#include <avr_webhookd/spool/spool_directory.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace avr_webhookd::spool {

// What a SpoolWriter has written but not yet seen synced, oldest first, with a copy of the bytes:
// after a failed fdatasync the kernel may have dropped those pages and report the next sync of the
// file as a success ("fsyncgate"), so the file cannot be trusted for them and they are written
// again, into a new segment, from this copy. Sans-io: it only decides, from the flush generations,
// what durable_generation may claim.
class SyncLedger {
public:
    struct Batch {
        std::uint64_t generation = 0;   // the flush that wrote it
        std::uint64_t covers_from = 0;  // the oldest generation whose records it holds (older than
                                        // `generation` when it holds records written again)
        std::uint64_t segment = 0;      // where it was written
        std::uint64_t offset = 0;
        std::string bytes;
        bool confirmed = false;            // its sync point succeeded, but an older one has not yet
        std::shared_ptr<FileHandle> file;  // the segment, open
    };

    void flushed(Batch batch);
    // A sync point that covered the flushes first..last succeeded. Its batches count as durable
    // (and are forgotten) once every older batch is durable too: a sync that overlapped a failed
    // one may have succeeded only because the other saw the error.
    void synced(std::uint64_t first, std::uint64_t last);
    // A sync failed: every batch not yet settled is suspect, whichever sync point covers it.
    void failed();
    // The suspect batches, oldest first, handed over to be written again.
    std::vector<Batch> take_failed();
    bool has_failed() const { return !failed_.empty(); }

    // The files of the batches not yet confirmed (each once).
    std::vector<std::shared_ptr<FileHandle>> unconfirmed_files() const;
    // The oldest generation not known to be durable: durable_generation must stay below it.
    std::optional<std::uint64_t> oldest_unconfirmed() const;
    std::size_t bytes() const { return bytes_; }  // held in memory

private:
    std::deque<Batch> unconfirmed_;  // not settled, ascending generation
    std::vector<Batch> failed_;      // ascending generation, all older than unconfirmed_
    std::size_t bytes_ = 0;
};

}  // namespace avr_webhookd::spool
