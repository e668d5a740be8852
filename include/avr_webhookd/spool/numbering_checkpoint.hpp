#pragma once

#include <avr_webhookd/spool/file_system.hpp>
#include <avr_webhookd/spool/recovery.hpp>
#include <avr_webhookd/spool/spool_writer.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace avr_webhookd::spool {

// Deleting a segment must not make a call's numbering restart at the next start. Before segments
// are deleted after a rotation, the file `sequences` in the spool folder (written to a temporary
// file, synced, renamed, the folder synced) records the last sequence number of every call the
// queues hold; recovery takes the higher of it and the records' own.
//
// Format: a header line, then "<numbering key> <last sequence>" lines. A missing or damaged file
// adds nothing (the records still number what they hold); a torn last line is ignored.
class NumberingCheckpoint {
public:
    // Each call's last sequence number (keys as numbering_key).
    using Numbering = std::vector<std::pair<std::string, std::uint64_t>>;

    // Adds what the folder's checkpoint holds to recovery.last_sequence.
    static void merge(FileSystem& files, const std::filesystem::path& dir, Recovery& recovery);
    static std::error_code write(FileSystem& files, const std::filesystem::path& dir, const Numbering& numbering);

    struct Collected {
        std::error_code checkpoint;  // the checkpoint could not be written (segments went anyway)
        std::error_code collect;     // SpoolWriter::collect's
    };
    // SpoolWriter::collect, after writing the checkpoint when the active segment changed since the
    // last one was written (every segment that collect may delete is then older than the
    // checkpoint). A failed checkpoint does not keep done segments (a full disk must get its
    // space back): a call whose numbers they held may then start again at 1 after a restart.
    Collected collect(SpoolWriter& writer, const std::function<Numbering()>& numbering);

private:
    std::uint64_t checkpointed_segment_ = 0;  // the active segment when the last one was written
};

}  // namespace avr_webhookd::spool
