#include <avr_webhookd/ops/logger.hpp>

#include <avr_webhookd/common/js_json.hpp>
#include <avr_webhookd/common/timestamp.hpp>
#include <avr_webhookd/common/utf8.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace avr_webhookd {

std::string_view to_string(LogLevel level) {
    switch (level) {
    case LogLevel::debug:
        return "debug";
    case LogLevel::info:
        return "info";
    case LogLevel::warn:
        return "warn";
    case LogLevel::error:
        return "error";
    }
    return "unknown";
}

std::string_view to_string(LogFormat format) { return format == LogFormat::json ? "json" : "text"; }

namespace {

char syslog_priority(LogLevel level) {
    switch (level) {
    case LogLevel::debug:
        return '7';
    case LogLevel::info:
        return '6';
    case LogLevel::warn:
        return '4';
    case LogLevel::error:
        return '3';
    }
    return '6';
}

std::string_view level_label(LogLevel level) {
    switch (level) {
    case LogLevel::debug:
        return "DEBUG";
    case LogLevel::info:
        return "INFO ";
    case LogLevel::warn:
        return "WARN ";
    case LogLevel::error:
        return "ERROR";
    }
    return "INFO ";
}

// C0 controls, DEL, and C1 controls (U+0080..U+009F, "\xC2\x80".."\xC2\x9F" in UTF-8), which
// terminals also act on (U+009B starts an escape sequence like ESC [).
bool is_control_at(std::string_view text, std::size_t i, std::size_t& length) {
    const auto byte = static_cast<unsigned char>(text[i]);
    length = 1;
    if (byte < 0x20 || byte == 0x7F) return true;
    if (byte == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) <= 0x9F) {
        length = 2;
        return true;
    }
    return false;
}

// Valid UTF-8 (bad bytes become U+FFFD) with every control character replaced by '?'.
void append_printable(std::string& out, std::string_view text) {
    const std::string repaired = find_invalid_utf8(text) ? repaired_utf8(text) : std::string{};
    if (!repaired.empty()) text = repaired;
    for (std::size_t i = 0; i < text.size();) {
        std::size_t length = 1;
        if (is_control_at(text, i, length)) out.push_back('?');
        else out.push_back(text[i]);
        i += length;
    }
}

}  // namespace

Logger::Logger(Options options, int fd) : options_(options), fd_(fd) {}

bool Logger::stream_is_journal(int fd, const char* journal_stream) {
    if (!journal_stream || !*journal_stream) return false;
    unsigned long long device = 0, inode = 0;
    if (std::sscanf(journal_stream, "%llu:%llu", &device, &inode) != 2) return false;
    struct stat status {};
    if (::fstat(fd, &status) != 0) return false;
    return static_cast<unsigned long long>(status.st_dev) == device &&
           static_cast<unsigned long long>(status.st_ino) == inode;
}

std::string Logger::sanitize(std::string_view text, std::size_t limit) {
    const bool cut = text.size() > limit;
    if (cut) text = text.substr(0, limit);  // a sequence cut in two becomes U+FFFD below
    std::string out;
    out.reserve(text.size() + 3);
    append_printable(out, text);
    if (cut) out.append("...");
    return out;
}

void Logger::log(LogLevel level, std::string_view message) {
    if (!enabled(level)) return;
    std::string record;
    record.reserve(message.size() + 48);
    if (options_.format == LogFormat::json) {
        record.append("{\"time\":\"");
        append_utc_millis(record, std::chrono::system_clock::now());
        record.append("\",\"level\":\"");
        record.append(to_string(level));
        record.append("\",\"msg\":");
        // A receiver's reason phrase or body may carry any bytes; the record must stay valid JSON.
        if (find_invalid_utf8(message)) append_js_string(record, repaired_utf8(message));
        else append_js_string(record, message);
        record.append("}\n");
    } else if (options_.journald) {
        record.push_back('<');
        record.push_back(syslog_priority(level));
        record.push_back('>');
        append_printable(record, message);
        record.push_back('\n');
    } else {
        append_utc_millis(record, std::chrono::system_clock::now());
        record.push_back(' ');
        record.append(level_label(level));
        record.push_back(' ');
        append_printable(record, message);  // one record is one line, whatever a peer sent
        record.push_back('\n');
    }
    write_record(record);
}

void Logger::block(LogLevel level, std::string_view lines) {
    if (!enabled(level)) return;
    if (options_.format == LogFormat::json) {
        log(level, lines);
        return;
    }
    std::string record;
    record.reserve(lines.size() + 32);
    while (!lines.empty()) {
        const auto newline = lines.find('\n');
        if (options_.journald) {
            record.push_back('<');
            record.push_back(syslog_priority(level));
            record.push_back('>');
        }
        append_printable(record, lines.substr(0, newline));
        record.push_back('\n');
        if (newline == std::string_view::npos) break;
        lines.remove_prefix(newline + 1);
    }
    write_record(record);
}

void Logger::write_record(std::string& record) {
    std::string_view rest = record;
    while (!rest.empty()) {
        const auto written = ::write(fd_, rest.data(), rest.size());
        if (written < 0) {
            if (errno == EINTR) continue;
            return;  // nowhere left to report a failing log stream
        }
        rest.remove_prefix(static_cast<std::size_t>(written));
    }
}

}  // namespace avr_webhookd
