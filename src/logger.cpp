#include <avr_webhookd/logger.hpp>

#include <avr_webhookd/js_json.hpp>
#include <avr_webhookd/timestamp.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace avr_webhookd {
namespace {

char syslog_priority(LogLevel level) {
    switch (level) {
    case LogLevel::debug: return '7';
    case LogLevel::info: return '6';
    case LogLevel::warn: return '4';
    case LogLevel::error: return '3';
    }
    return '6';
}

std::string_view level_label(LogLevel level) {
    switch (level) {
    case LogLevel::debug: return "DEBUG";
    case LogLevel::info: return "INFO ";
    case LogLevel::warn: return "WARN ";
    case LogLevel::error: return "ERROR";
    }
    return "INFO ";
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
    std::string out;
    const bool cut = text.size() > limit;
    if (cut) text = text.substr(0, limit);
    out.reserve(text.size() + 3);
    for (char c : text) out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7F ? '?' : c);
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
        append_js_string(record, message);
        record.append("}\n");
    } else if (options_.journald) {
        record.push_back('<');
        record.push_back(syslog_priority(level));
        record.push_back('>');
        record.append(message);
        record.push_back('\n');
    } else {
        append_utc_millis(record, std::chrono::system_clock::now());
        record.push_back(' ');
        record.append(level_label(level));
        record.push_back(' ');
        record.append(message);
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
        record.append(lines.substr(0, newline));
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
