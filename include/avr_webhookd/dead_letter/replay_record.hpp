#pragma once

#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace avr_webhookd {

// What `dead-letters replay` has sent again, kept beside the dead-letter file as
// <file>.replayed: a header line, then one DeadLetterEntry::key() per line (destination, id and
// failure time, tab-separated). A replay skips what is recorded unless told --again.
//
// Durable and bounded: keys are appended and synced as each batch is acknowledged (an interrupted
// replay keeps what it sent), and at the end of a replay the file is rewritten atomically (temp
// file, fsync, rename, fsync of the folder) with only the keys whose line is still in the
// dead-letter file, so it never holds more lines than that file (itself bounded by
// dead_letter_max_bytes). A torn last line (a crash while appending) is ignored when read.
// <file>.replayed.lock (flock) keeps two replays from running at once.
class ReplayRecord {
public:
    enum class Mode { read_only, locked };
    // Reads the record of the dead-letter file at `dead_letter_path` (none yet: empty). `locked`
    // takes the lock first. Throws std::runtime_error when the record or the lock cannot be had
    // (another replay runs, the folder is not writable).
    ReplayRecord(const std::string& dead_letter_path, Mode mode);
    ~ReplayRecord();
    ReplayRecord(const ReplayRecord&) = delete;
    ReplayRecord& operator=(const ReplayRecord&) = delete;

    const std::string& path() const { return path_; }
    std::size_t size() const { return keys_.size(); }
    bool contains(const std::string& key) const { return keys_.contains(key); }

    // The line of `key` is in the dead-letter file now: compact() keeps it.
    void mark_present(const std::string& key);
    // Records keys sent again and acknowledged; on disk and synced when this returns. Throws
    // std::runtime_error when writing fails.
    void add(const std::vector<std::string>& keys);
    // Rewrites the file atomically with the keys marked present and those added since it was read.
    void compact();

private:
    void open_for_append();

    std::string path_;
    Mode mode_;
    int lock_fd_ = -1;
    int append_fd_ = -1;
    std::unordered_set<std::string> keys_;
    std::unordered_set<std::string> kept_;  // marked present or added
};

}  // namespace avr_webhookd
