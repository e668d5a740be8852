#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd {

// Appends given-up events to the dead-letter file (NDJSON, replayable with `avr-webhookd send`).
// Each line is one write(2) with O_APPEND followed by fdatasync, so a line is either whole on
// disk or absent, even if the daemon dies right after.
class DeadLetterWriter {
public:
    // An empty path disables the file. Opens (creating with mode 0640) at once, so a path that
    // cannot be written stops the daemon at start: std::runtime_error.
    explicit DeadLetterWriter(std::string path);
    ~DeadLetterWriter();
    DeadLetterWriter(const DeadLetterWriter&) = delete;
    DeadLetterWriter& operator=(const DeadLetterWriter&) = delete;

    bool enabled() const { return fd_ >= 0; }
    const std::string& path() const { return path_; }

    // Writes `line` plus a newline; returns an error text on failure, empty on success.
    std::string append(std::string_view line);
    // Writes many lines with one write and one sync (shutdown may dead-letter a whole queue).
    std::string append_all(const std::vector<std::string>& lines);

private:
    std::string path_;
    int fd_ = -1;
};

}  // namespace avr_webhookd
