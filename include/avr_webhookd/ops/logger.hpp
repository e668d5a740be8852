#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace avr_webhookd {

enum class LogLevel { debug, info, warn, error };  // setting `log_level`
enum class LogFormat { text, json };               // setting `log_format`

std::string_view to_string(LogLevel level);    // "debug", "info", "warn", "error"
std::string_view to_string(LogFormat format);  // "text", "json"

// Writes log lines to a file descriptor (stderr by default), one write(2) per record so lines
// from the daemon never interleave. Text lines carry a UTC timestamp and level; under journald
// (JOURNAL_STREAM set) they carry the "<N>" syslog priority prefix instead, since journald
// stamps time itself; log_format = json writes one JSON object per line.
class Logger {
public:
    struct Options {
        LogLevel level = LogLevel::info;
        LogFormat format = LogFormat::text;
        bool journald = false;
    };

    explicit Logger(Options options, int fd = 2);

    // True when JOURNAL_STREAM names the device and inode of `fd` (systemd's documented check).
    static bool stream_is_journal(int fd, const char* journal_stream);

    void set_options(Options options) { options_ = options; }
    const Options& options() const { return options_; }
    bool enabled(LogLevel level) const { return level >= options_.level; }

    void log(LogLevel level, std::string_view message);
    void debug(std::string_view message) { log(LogLevel::debug, message); }
    void info(std::string_view message) { log(LogLevel::info, message); }
    void warn(std::string_view message) { log(LogLevel::warn, message); }
    void error(std::string_view message) { log(LogLevel::error, message); }

    // A multi-line block kept together (the specification's failure block). In text mode each
    // line is written as is (with the journald prefix when under journald); in json mode the
    // block is one record whose "msg" holds the lines joined by "\n".
    void block(LogLevel level, std::string_view lines);

    // At most `limit` bytes of `text` kept ("..." added), invalid UTF-8 replaced by U+FFFD and
    // control characters (C0, DEL, C1) by '?', so untrusted input cannot forge log lines, steer a
    // terminal or flood the log. Every text record passes through the same filter; json records
    // are always valid UTF-8.
    static std::string sanitize(std::string_view text, std::size_t limit = 200);

private:
    void write_record(std::string& record);

    Options options_;
    int fd_;
};

}  // namespace avr_webhookd
