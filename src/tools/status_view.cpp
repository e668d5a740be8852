// render_status_text: the terminal view of GET /status, for `avr-webhookd status`.
#include <avr_webhookd/tools/status_command.hpp>

#include <avr_webhookd/common/text_table.hpp>
#include <avr_webhookd/ops/logger.hpp>

#include <boost/json/object.hpp>

#include <cmath>
#include <cstdio>

namespace avr_webhookd {

namespace json = boost::json;

namespace {

// The document is the daemon's, but the terminal must not take orders from it: every text is
// made printable and cut short.
std::string text(const json::value* value, std::size_t limit = 200) {
    if (!value || !value->is_string()) return "-";
    return Logger::sanitize(std::string_view(value->get_string()), limit);
}

const json::value* at(const json::value* value, std::string_view key) {
    const auto* object = value ? value->if_object() : nullptr;
    return object ? object->if_contains(key) : nullptr;
}

template <typename... Keys>
const json::value* at(const json::value* value, std::string_view key, Keys... more) {
    return at(at(value, key), more...);
}

std::optional<double> number(const json::value* value) {
    if (!value) return std::nullopt;
    if (value->is_double()) return value->get_double();
    if (value->is_int64()) return static_cast<double>(value->get_int64());
    if (value->is_uint64()) return static_cast<double>(value->get_uint64());
    return std::nullopt;
}

std::string printf_text(const char* format, double value) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, format, value);
    return buffer;
}

std::string count(const json::value* value) {
    const auto n = number(value);
    return n ? printf_text("%.0f", *n) : "-";
}

std::string rate(const json::value* value) {
    const auto n = number(value);
    return n ? printf_text("%.2f", *n) : "-";
}

std::string age(const json::value* value) {
    const auto n = number(value);
    if (!n) return "-";
    const auto seconds = static_cast<long long>(std::floor(*n));
    if (seconds < 60) return std::to_string(seconds) + "s";
    if (seconds < 3600) return std::to_string(seconds / 60) + "m" + printf_text("%02.0f", double(seconds % 60)) + "s";
    if (seconds < 86400)
        return std::to_string(seconds / 3600) + "h" + printf_text("%02.0f", double(seconds % 3600 / 60)) + "m";
    return std::to_string(seconds / 86400) + "d" + std::to_string(seconds % 86400 / 3600) + "h";
}

std::string latency(const json::value* value) {
    const auto n = number(value);
    if (!n) return "-";
    if (*n < 1) return printf_text("%.0fms", *n * 1000);
    return printf_text("%.2fs", *n);
}

std::string bytes(const json::value* value) {
    const auto n = number(value);
    if (!n) return "-";
    if (*n < 1024) return printf_text("%.0f B", *n);
    if (*n < 1024 * 1024) return printf_text("%.1f KiB", *n / 1024);
    if (*n < 1024.0 * 1024 * 1024) return printf_text("%.1f MiB", *n / (1024 * 1024));
    return printf_text("%.1f GiB", *n / (1024.0 * 1024 * 1024));
}

std::string_view state_style(std::string_view state) {
    if (state == "delivering") return "32";
    if (state == "retrying") return "33";
    if (state == "failing") return "1;31";
    return "2";
}

std::string header(const json::value& status) {
    const auto* healthy = at(&status, "healthy");
    const bool is_healthy = healthy && healthy->is_bool() && healthy->get_bool();
    const auto* accepting = at(&status, "accepting");
    std::string line = "avr-webhookd " + text(at(&status, "version"), 40) + ", up " +
                       age(at(&status, "uptime_seconds")) + ", " +
                       (accepting && accepting->is_bool() && accepting->get_bool() ? "accepting" : "NOT accepting") +
                       ", " + (is_healthy ? "healthy" : "UNHEALTHY: " + text(at(&status, "unhealthy_reason"), 300)) +
                       "   " + text(at(&status, "now"), 40) + "\n";
    const auto* socket = at(&status, "intakes", "socket");
    line += "intake   socket " + text(at(socket, "address")) + ": " + count(at(socket, "connections")) +
            " connections, " + rate(at(socket, "rate_1m")) + " events/s (5m " + rate(at(socket, "rate_5m")) + ")\n";
    const auto* http = at(&status, "intakes", "http");
    if (const auto* on = at(http, "enabled"); on && on->is_bool() && on->get_bool())
        line += "         http " + text(at(http, "address")) + ": " + count(at(http, "connections")) +
                " connections, " + rate(at(http, "rate_1m")) + " events/s (5m " + rate(at(http, "rate_5m")) + ")\n";
    const auto* spool = at(&status, "spool");
    if (const auto* on = at(spool, "enabled"); on && on->is_bool() && on->get_bool())
        line += "spool    " + text(at(spool, "dir")) + " (sync " + text(at(spool, "sync"), 40) +
                "): " + bytes(at(spool, "bytes")) + " of " + bytes(at(spool, "max_bytes")) + ", " +
                count(at(spool, "waiting")) + " events waiting, oldest " + age(at(spool, "oldest_age_seconds")) +
                (at(spool, "disk_full") && at(spool, "disk_full")->is_bool() && at(spool, "disk_full")->get_bool()
                     ? ", DISK FULL"
                     : "") +
                "\n";
    else line += "spool    off (memory only)\n";
    if (const auto* on = at(&status, "dead_letter", "enabled"); on && on->is_bool() && on->get_bool())
        line += "dead     " + text(at(&status, "dead_letter", "file")) + " (avr-webhookd dead-letters list)\n";
    return line;
}

void add_destination(TextTable& table, const json::value& destination) {
    const auto state = text(at(&destination, "state"), 20);
    const auto* minute = at(&destination, "rates", "1m");
    table.add({text(at(&destination, "name"), 40),
               {state, state_style(state)},
               rate(at(minute, "delivered")),
               rate(at(minute, "retried")),
               rate(at(minute, "given_up")),
               count(at(&destination, "queue", "waiting")) + "+" + count(at(&destination, "queue", "in_flight")),
               age(at(&destination, "queue", "oldest_age_seconds")),
               latency(at(&destination, "latency", "p50_seconds")),
               latency(at(&destination, "latency", "p99_seconds")),
               count(at(&destination, "dead_letters", "total"))});
}

// The newest failure's block, indented, after the line saying when and what came of it.
std::string newest_failure(const json::value& destination) {
    const auto* failures = at(&destination, "recent_failures");
    if (!failures || !failures->is_array() || failures->get_array().empty()) return {};
    const auto& newest = failures->get_array().front();
    const auto* given_up = at(&newest, "given_up");
    std::string out = "newest failure of " + text(at(&destination, "name"), 40) + " at " +
                      text(at(&newest, "time"), 40) + ", attempt " + count(at(&newest, "attempt")) +
                      (given_up && given_up->is_string() ? ", given up: " + text(given_up) : ", to be retried") + "\n";
    const auto* block = at(&newest, "block");
    std::string_view lines = block && block->is_string() ? std::string_view(block->get_string()) : std::string_view();
    for (std::size_t shown = 0; !lines.empty() && shown < 12; ++shown) {
        const auto end = lines.find('\n');
        out += "    " + Logger::sanitize(lines.substr(0, end), 300) + "\n";
        lines.remove_prefix(end == std::string_view::npos ? lines.size() : end + 1);
    }
    return out;
}

}  // namespace

std::string render_status_text(const json::value& status, bool color) {
    std::string out = header(status);
    TextTable table({"DESTINATION", "STATE", "DELIVERED/s", "RETRIED/s", "GIVEN UP/s", "QUEUE", "OLDEST", "P50", "P99",
                     "DEAD LETTERS"},
                    {TextTable::Align::left, TextTable::Align::left, TextTable::Align::right, TextTable::Align::right,
                     TextTable::Align::right, TextTable::Align::right, TextTable::Align::right, TextTable::Align::right,
                     TextTable::Align::right, TextTable::Align::right});
    std::string reasons;
    std::string failures;
    const auto* destinations = at(&status, "destinations");
    if (destinations && destinations->is_array()) {
        for (const auto& destination : destinations->get_array()) {
            add_destination(table, destination);
            reasons += "  " + text(at(&destination, "name"), 40) + " (" + text(at(&destination, "url"), 200) +
                       "): " + text(at(&destination, "reason"), 400) + "\n";
            failures += newest_failure(destination);
        }
    }
    out += "\n" + table.render(color) + reasons;
    if (!failures.empty()) out += "\n" + failures;
    return out;
}

}  // namespace avr_webhookd
