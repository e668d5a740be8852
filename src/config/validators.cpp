#include "validators.hpp"

#include <avr_webhookd/common/duration.hpp>
#include <avr_webhookd/common/host_port.hpp>
#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/common/unix_socket.hpp>
#include <avr_webhookd/common/url.hpp>
#include <avr_webhookd/delivery/nats_subject.hpp>
#include <avr_webhookd/intake/event_parser.hpp>
#include <avr_webhookd/intake/producer_access.hpp>
#include <avr_webhookd/ops/admin_address.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>

namespace avr_webhookd::config_detail {

namespace {

constexpr std::size_t max_agent_id = 256;

std::optional<std::int64_t> parse_integer(std::string_view text) {
    std::int64_t number = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (text.empty() || error != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return number;
}

}  // namespace

std::int64_t integer_in(const Value& value, std::int64_t min, std::int64_t max, std::string_view note) {
    const auto number = parse_integer(value.text());
    if (!number || *number < min || *number > max) {
        value.reject("a whole number from " + std::to_string(min) + " to " + std::to_string(max) + std::string{note});
    }
    return *number;
}

std::chrono::milliseconds duration_in(const Value& value, std::chrono::milliseconds min,
                                      std::chrono::milliseconds max) {
    const auto duration = parse_duration(value.text());
    if (!duration) {
        value.reject(duration_syntax);
    }
    if (*duration < min || *duration > max) {
        value.reject("a duration from " + format_duration(min) + " to " + format_duration(max));
    }
    return *duration;
}

bool boolean(const Value& value) {
    const auto text = ascii_lower(value.text());
    for (const std::string_view yes : {"true", "yes", "on", "1"}) {
        if (text == yes) {
            return true;
        }
    }
    for (const std::string_view no : {"false", "no", "off", "0"}) {
        if (text == no) {
            return false;
        }
    }
    value.reject("true or false (also yes/no, on/off, 1/0)");
}

std::vector<std::string> type_list(const Value& value, std::string_view empty_means) {
    std::vector<std::string> types;
    if (trim(value.text()).empty()) {
        return types;
    }
    std::string_view rest = value.text();
    while (true) {
        const auto comma = rest.find(',');
        const auto name = trim(rest.substr(0, comma));
        if (!is_valid_type_name(name)) {
            value.reject(
                "a comma-separated list of event types such as call_started,call_ended "
                "(each matching [a-z][a-z0-9_]{0,63}), or empty for " +
                std::string(empty_means));
        }
        if (std::find(types.begin(), types.end(), name) == types.end()) {
            types.emplace_back(name);
        }
        if (comma == std::string_view::npos) {
            return types;
        }
        rest.remove_prefix(comma + 1);
    }
}

std::vector<std::uint32_t> id_list(const Value& value) {
    auto ids = parse_id_list(value.text());
    if (!ids) value.reject("comma-separated numeric ids from 0 to 4294967294 (e.g. 0,1000), or empty for anyone");
    return *ids;
}

std::string url_setting(const Value& value) {
    constexpr std::string_view expected =
        "an http:// or https:// URL with a host, such as https://example.com/webhooks/avr, or NATS servers such as "
        "nats://nats1:4222,nats://nats2:4222";
    const auto text = value.text();
    if (std::any_of(text.begin(), text.end(), [](char c) { return !is_printable_ascii(c) || c == ' '; })) {
        value.reject(std::string{expected} + ", without spaces or control characters");
    }
    std::string problem;
    if (is_nats_url(text) ? !parse_nats_url(text, &problem) : !parse_url(text, &problem)) {
        value.reject(std::string{expected} + " (" + problem + ")");
    }
    return std::string{text};
}

std::string subject_setting(const Value& value) {
    std::string problem;
    if (!SubjectTemplate::parse(value.text(), &problem))
        value.reject("a NATS subject such as avr.events.{type}: " + problem);
    return std::string{value.text()};
}

std::string nats_user_setting(const Value& value) {
    const auto text = value.text();
    if (text.size() > max_agent_id ||
        !std::all_of(text.begin(), text.end(), [](char c) { return is_printable_ascii(c) && c != ' '; }))
        value.reject("printable ASCII without spaces, at most " + std::to_string(max_agent_id) + " bytes");
    return std::string{text};
}

std::string absolute_path(const Value& value, std::size_t max_size, std::string_view or_else) {
    const auto text = value.text();
    if (!text.starts_with('/') || text.size() > max_size || text.find('\0') != std::string_view::npos ||
        text.ends_with('/')) {
        value.reject("an absolute file path" +
                     (max_size < SIZE_MAX ? " of at most " + std::to_string(max_size) + " bytes" : std::string{}) +
                     std::string{or_else});
    }
    return std::string{text};
}

std::string socket_path_setting(const Value& value) { return absolute_path(value, max_socket_path); }

std::string admin_setting(const Value& value) {
    const auto text = value.text();
    if (text.empty()) {
        return {};
    }
    if (!parse_admin_address(text)) {
        constexpr std::string_view or_else = ", HOST:PORT such as 127.0.0.1:9100 or [::1]:9100, or empty for off";
        value.reject((text.starts_with('/')
                          ? "an absolute file path of at most " + std::to_string(max_socket_path) + " bytes"
                          : std::string{"an absolute Unix socket path"}) +
                     std::string{or_else});
    }
    return std::string{text};
}

std::string http_listen_setting(const Value& value) {
    const auto text = value.text();
    if (text.empty()) return {};
    HostPortError problem;
    if (!parse_host_port(text, PortRule::required_or_zero, &problem))
        value.reject("HOST:PORT such as 127.0.0.1:9000, 0.0.0.0:9000 or [::1]:9000, or empty for off (" +
                     problem.message + ")");
    return std::string{text};
}

std::string agent_id_setting(const Value& value) {
    const auto text = value.text();
    if (text.size() > max_agent_id || !std::all_of(text.begin(), text.end(), is_printable_ascii)) {
        value.reject("printable ASCII of at most " + std::to_string(max_agent_id) + " bytes");
    }
    return std::string{text};
}

std::string existing_file(const Value& value) {
    std::error_code error;
    if (!value.text().empty() && !std::filesystem::is_regular_file(std::string{value.text()}, error)) {
        value.reject("the path of an existing file, or empty for none");
    }
    return std::string{value.text()};
}

unsigned socket_mode_setting(const Value& value) {
    const auto text = value.text();
    unsigned mode = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), mode, 8);
    if (text.size() < 3 || text.size() > 4 || error != std::errc{} || end != text.data() + text.size() || mode > 0777 ||
        (mode & 0002) != 0) {
        value.reject("an octal mode such as 0660 or 660, at most 0777 and not writable by others");
    }
    return mode;
}

std::string octal(unsigned mode) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", mode);
    return text;
}

std::string shown_text(std::string_view text) {
    const bool bare = !text.empty() && text.front() != ' ' && text.back() != ' ' && text.front() != '"' &&
                      text.front() != '\'' && text.find(" #") == std::string_view::npos &&
                      std::all_of(text.begin(), text.end(), is_printable_ascii);
    return bare ? std::string{text} : quoted_text(text);
}

}  // namespace avr_webhookd::config_detail
