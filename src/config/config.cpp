#include <avr_webhookd/config/config.hpp>

#include <unistd.h>
#include <avr_webhookd/common/duration.hpp>
#include <avr_webhookd/intake/event_parser.hpp>
#include <avr_webhookd/common/js_json.hpp>
#include <avr_webhookd/intake/producer_access.hpp>
#include <avr_webhookd/delivery/signature.hpp>
#include <avr_webhookd/common/url.hpp>

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/value_semantic.hpp>
#include <boost/program_options/variables_map.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <utility>

namespace avr_webhookd {

namespace {

using namespace std::chrono_literals;

// Longest path that fits sockaddr_un::sun_path (108 bytes) with its terminating NUL.
constexpr std::size_t max_socket_path = 107;
constexpr std::size_t max_secret_file_size = 64 * 1024;
constexpr std::size_t max_agent_id = 256;
constexpr std::size_t max_quoted_value = 200;

// A setting's text as given, with where it was given for origins and error messages.
struct RawValue {
    std::string text;
    Origin origin = Origin::built_in;
    std::string where;  // "WEBHOOK_TIMEOUT", "--timeout", "/etc/x.conf line 12"
};

using RawValues = std::map<std::string, RawValue, std::less<>>;

bool is_printable_ascii(char c) {
    return c >= 0x20 && c <= 0x7e;
}

// Quoted and escaped as a JSON string, long text cut, so an error stays on one line.
std::string quoted_text(std::string_view text) {
    std::string out;
    append_js_string(out, text.substr(0, max_quoted_value));
    return text.size() > max_quoted_value ? out + "..." : out;
}

// The value as it may appear in an error message or in describe().
std::string shown_value(std::string_view key, bool secret, std::string_view text) {
    if (secret) {
        return "<redacted>";
    }
    return quoted_text(key == "url" ? redact_url(text) : std::string{text});
}

// The value being applied to one setting; reject() throws the one-line error for it.
struct Value {
    const SettingInfo& info;
    const RawValue& raw;

    std::string_view text() const { return raw.text; }

    [[noreturn]] void reject(std::string_view expected) const { fail("expected " + std::string{expected}); }

    [[noreturn]] void fail(std::string_view problem) const {
        throw ConfigError(std::string{info.key}, "invalid setting " + std::string{info.key} + " (" + raw.where +
                                                     ") = " + shown_value(info.key, info.secret, raw.text) + ": " +
                                                     std::string{problem});
    }
};

std::string lower(std::string_view text) {
    std::string out{text};
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); });
    return out;
}

std::string_view trim(std::string_view text) {
    const auto begin = text.find_first_not_of(" \t");
    if (begin == std::string_view::npos) {
        return {};
    }
    return text.substr(begin, text.find_last_not_of(" \t") - begin + 1);
}

std::optional<std::int64_t> parse_integer(std::string_view text) {
    std::int64_t number = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (text.empty() || error != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return number;
}

std::int64_t integer_in(const Value& value, std::int64_t min, std::int64_t max, std::string_view note = {}) {
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
    const auto text = lower(value.text());
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

template <typename Enum>
Enum choice(const Value& value, std::initializer_list<Enum> choices) {
    std::string allowed = "one of ";
    for (const auto candidate : choices) {
        if (value.text() == to_string(candidate)) {
            return candidate;
        }
        allowed += std::string{to_string(candidate)} + (candidate == *(choices.end() - 1) ? "" : ", ");
    }
    value.reject(allowed);
}

std::vector<std::string> type_list(const Value& value) {
    std::vector<std::string> types;
    if (trim(value.text()).empty()) {
        return types;
    }
    std::string_view rest = value.text();
    while (true) {
        const auto comma = rest.find(',');
        const auto name = trim(rest.substr(0, comma));
        if (!is_valid_type_name(name)) {
            value.reject("a comma-separated list of event types such as call_started,call_ended "
                         "(each matching [a-z][a-z0-9_]{0,63}), or empty for all types");
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

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) {
        out += (out.empty() ? "" : ",") + item;
    }
    return out;
}

bool is_port(std::string_view text) {
    const auto port = parse_integer(text);
    return text.find_first_not_of("0123456789") == std::string_view::npos && port && *port >= 1 && *port <= 65535;
}

struct HostPort {
    std::string_view host;  // without the brackets of an IPv6 literal
    std::optional<std::string_view> port;
    bool bracketed = false;
};

// "host", "host:port", "[v6]" or "[v6]:port"; nullopt when the brackets or the colon are misplaced.
std::optional<HostPort> split_host_port(std::string_view text) {
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        const auto after = text.substr(close + 1);
        if (!after.empty() && !after.starts_with(':')) {
            return std::nullopt;
        }
        return HostPort{text.substr(1, close - 1),
                        after.empty() ? std::nullopt : std::optional{after.substr(1)}, true};
    }
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) {
        return HostPort{text, std::nullopt, false};
    }
    return HostPort{text.substr(0, colon), text.substr(colon + 1), false};
}

bool is_valid_port(const HostPort& address) {
    return !address.port || is_port(*address.port);
}

// The daemon's own parser decides, so that what check-config accepts also starts.
std::string url_setting(const Value& value) {
    constexpr std::string_view expected =
        "an http:// or https:// URL with a host, such as https://example.com/webhooks/avr";
    const auto text = value.text();
    if (std::any_of(text.begin(), text.end(), [](char c) { return !is_printable_ascii(c) || c == ' '; })) {
        value.reject(std::string{expected} + ", without spaces or control characters");
    }
    std::string problem;
    if (!parse_url(text, &problem)) {
        value.reject(std::string{expected} + " (" + problem + ")");
    }
    return std::string{text};
}

std::string absolute_path(const Value& value, std::size_t max_size, std::string_view or_else = {}) {
    const auto text = value.text();
    if (!text.starts_with('/') || text.size() > max_size || text.find('\0') != std::string_view::npos ||
        text.ends_with('/')) {
        value.reject("an absolute file path" +
                     (max_size < SIZE_MAX ? " of at most " + std::to_string(max_size) + " bytes" : std::string{}) +
                     std::string{or_else});
    }
    return std::string{text};
}

std::string admin_setting(const Value& value) {
    const auto text = value.text();
    if (text.empty()) {
        return {};
    }
    constexpr std::string_view or_else = ", HOST:PORT such as 127.0.0.1:9100 or [::1]:9100, or empty for off";
    if (text.starts_with('/')) {
        return absolute_path(value, max_socket_path, or_else);
    }
    const auto address = split_host_port(text);
    const auto host_characters = address && address->bracketed ? std::string_view{"0123456789abcdefABCDEF:."}
                                                                 : std::string_view{"abcdefghijklmnopqrstuvwxyz"
                                                                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                                    "0123456789.-"};
    // Port 0 picks a free port; the daemon logs the one it got (useful for tests).
    if (!address || address->host.empty() || address->host.find_first_not_of(host_characters) != std::string_view::npos ||
        !address->port || (*address->port != "0" && !is_valid_port(*address))) {
        value.reject("an absolute Unix socket path" + std::string{or_else});
    }
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
    if (text.size() < 3 || text.size() > 4 || error != std::errc{} || end != text.data() + text.size() ||
        mode > 0777 || (mode & 0002) != 0) {
        value.reject("an octal mode such as 0660 or 660, at most 0777 and not writable by others");
    }
    return mode;
}

std::string octal(unsigned mode) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", mode);
    return text;
}

// A string value for describe(): bare when that reads back unchanged, quoted otherwise.
std::string shown_text(std::string_view text) {
    const bool bare = !text.empty() && text.front() != ' ' && text.back() != ' ' && text.front() != '"' &&
                      text.front() != '\'' && text.find(" #") == std::string_view::npos &&
                      std::all_of(text.begin(), text.end(), is_printable_ascii);
    return bare ? std::string{text} : quoted_text(text);
}

using Parser = void (*)(Config&, const Value&);
using Formatter = std::string (*)(const Config&);

struct Setting {
    SettingInfo info;
    std::string_view value_name;  // for --help; "BOOL" flags mean true when given alone
    Parser parse;
    Formatter format;
};

constexpr std::array settings{
    Setting{{"url", "where events are POSTed: an http:// or https:// URL (required)", false, true}, "URL",
            [](Config& c, const Value& v) { c.url = url_setting(v); },
            [](const Config& c) { return shown_text(redact_url(c.url)); }},
    Setting{{"secret", "shared secret sent to the receiver; empty for none", true, true}, "SECRET",
            [](Config& c, const Value& v) { c.secret = std::string{v.text()}; },
            [](const Config& c) { return c.secret.empty() ? std::string{"\"\""} : std::string{"<redacted>"}; }},
    Setting{{"secret_file", "read the secret from this file instead (trailing newline removed)", false, true},
            "PATH", [](Config& c, const Value& v) { c.secret_file = std::string{v.text()}; },
            [](const Config& c) { return shown_text(c.secret_file); }},
    Setting{{"signature", "how the secret is presented: plain, hmac-sha256 or standard", false, true}, "MODE",
            [](Config& c, const Value& v) {
                c.signature = choice(v, {SignatureMode::plain, SignatureMode::hmac_sha256, SignatureMode::standard});
            },
            [](const Config& c) { return std::string{to_string(c.signature)}; }},
    Setting{{"timeout", "time allowed for one delivery attempt", false, true}, "DURATION",
            [](Config& c, const Value& v) { c.timeout = duration_in(v, 1ms, 1h); },
            [](const Config& c) { return format_duration(c.timeout); }},
    Setting{{"retry", "extra attempts after a failed one; -1 = until max_age", false, true}, "N",
            [](Config& c, const Value& v) {
                c.retry = static_cast<int>(integer_in(v, -1, 1'000'000, " (-1 = until max_age)"));
            },
            [](const Config& c) { return std::to_string(c.retry); }},
    Setting{{"retry_base", "first retry delay; later ones grow exponentially with jitter", false, true},
            "DURATION", [](Config& c, const Value& v) { c.retry_base = duration_in(v, 1ms, 1h); },
            [](const Config& c) { return format_duration(c.retry_base); }},
    Setting{{"retry_max_delay", "longest delay between two attempts", false, true}, "DURATION",
            [](Config& c, const Value& v) { c.retry_max_delay = duration_in(v, 1ms, 24h); },
            [](const Config& c) { return format_duration(c.retry_max_delay); }},
    Setting{{"max_age", "give an event up when it is this old", false, true}, "DURATION",
            [](Config& c, const Value& v) { c.max_age = duration_in(v, 1ms, 720h); },
            [](const Config& c) { return format_duration(c.max_age); }},
    Setting{{"agent_id", "sent as X-AVR-AGENT-ID when set (printable ASCII)", false, true}, "ID",
            [](Config& c, const Value& v) { c.agent_id = agent_id_setting(v); },
            [](const Config& c) { return shown_text(c.agent_id); }},
    Setting{{"ca_file", "extra CA bundle (PEM) trusted for https", false, true}, "PATH",
            [](Config& c, const Value& v) { c.ca_file = existing_file(v); },
            [](const Config& c) { return shown_text(c.ca_file); }},
    Setting{{"tls_verify", "verify the receiver's certificate and host name", false, true}, "BOOL",
            [](Config& c, const Value& v) { c.tls_verify = boolean(v); },
            [](const Config& c) { return std::string{c.tls_verify ? "true" : "false"}; }},
    Setting{{"concurrency", "most requests in flight at once (1..4096)", false, true}, "N",
            [](Config& c, const Value& v) { c.concurrency = static_cast<unsigned>(integer_in(v, 1, 4096)); },
            [](const Config& c) { return std::to_string(c.concurrency); }},
    Setting{{"types", "forward only these event types, comma-separated; empty = all", false, true}, "LIST",
            [](Config& c, const Value& v) { c.types = type_list(v); },
            [](const Config& c) { return shown_text(join(c.types)); }},
    Setting{{"socket", "Unix socket that producers write events to", false, false}, "PATH",
            [](Config& c, const Value& v) { c.socket = absolute_path(v, max_socket_path); },
            [](const Config& c) { return c.socket; }},
    Setting{{"socket_mode", "permissions of the socket file (octal, never world-writable)", false, false}, "MODE",
            [](Config& c, const Value& v) { c.socket_mode = socket_mode_setting(v); },
            [](const Config& c) { return octal(c.socket_mode); }},
    Setting{{"max_line", "longest accepted event line in bytes (256..16777216)", false, true}, "BYTES",
            [](Config& c, const Value& v) { c.max_line = static_cast<std::size_t>(integer_in(v, 256, 16 << 20)); },
            [](const Config& c) { return std::to_string(c.max_line); }},
    Setting{{"max_connections", "most producers connected at once (1..65535)", false, true}, "N",
            [](Config& c, const Value& v) { c.max_connections = static_cast<unsigned>(integer_in(v, 1, 65535)); },
            [](const Config& c) { return std::to_string(c.max_connections); }},
    Setting{{"partial_line_timeout",
             "a producer silent this long in the middle of a line may be closed for a new one at max_connections",
             false, true},
            "DURATION", [](Config& c, const Value& v) { c.partial_line_timeout = duration_in(v, 1s, 24h); },
            [](const Config& c) { return format_duration(c.partial_line_timeout); }},
    Setting{{"producer_uids", "serve only producers with these uids, comma-separated; empty = anyone", false, true},
            "LIST", [](Config& c, const Value& v) { c.producer_uids = id_list(v); },
            [](const Config& c) { return shown_text(format_id_list(c.producer_uids)); }},
    Setting{{"producer_gids", "serve only producers in these groups, comma-separated; empty = anyone", false, true},
            "LIST", [](Config& c, const Value& v) { c.producer_gids = id_list(v); },
            [](const Config& c) { return shown_text(format_id_list(c.producer_gids)); }},
    Setting{{"max_queue", "most events waiting in memory (1..10000000)", false, true}, "N",
            [](Config& c, const Value& v) { c.max_queue = static_cast<std::size_t>(integer_in(v, 1, 10'000'000)); },
            [](const Config& c) { return std::to_string(c.max_queue); }},
    Setting{{"max_queue_bytes", "most bytes of events waiting in memory (65536..68719476736)", false, true}, "BYTES",
            [](Config& c, const Value& v) { c.max_queue_bytes = static_cast<std::uint64_t>(integer_in(v, 64 << 10, 64ll << 30)); },
            [](const Config& c) { return std::to_string(c.max_queue_bytes); }},
    Setting{{"queue_full", "when the queue is full: block (stop reading) or reject the line", false, true},
            "POLICY",
            [](Config& c, const Value& v) { c.queue_full = choice(v, {QueueFullPolicy::block, QueueFullPolicy::reject}); },
            [](const Config& c) { return std::string{to_string(c.queue_full)}; }},
    Setting{{"ack", "reply to errors only, or to all lines", false, true}, "MODE",
            [](Config& c, const Value& v) { c.ack = choice(v, {AckMode::errors, AckMode::all}); },
            [](const Config& c) { return std::string{to_string(c.ack)}; }},
    Setting{{"allow_unknown_types", "accept event types beyond the specification's seven", false, true}, "BOOL",
            [](Config& c, const Value& v) { c.allow_unknown_types = boolean(v); },
            [](const Config& c) { return std::string{c.allow_unknown_types ? "true" : "false"}; }},
    Setting{{"dead_letter", "file for events given up; default next to the socket; empty = off", false, false},
            "PATH",
            [](Config& c, const Value& v) {
                c.dead_letter = v.text().empty() ? std::string{} : absolute_path(v, SIZE_MAX, ", or empty for off");
            },
            [](const Config& c) { return shown_text(c.dead_letter); }},
    Setting{{"dead_letter_max_bytes", "dead-letter file size beyond which events are only logged; 0 = no bound", false,
             true},
            "BYTES",
            [](Config& c, const Value& v) {
                c.dead_letter_max_bytes = static_cast<std::uint64_t>(integer_in(v, 0, 1ll << 50, " (0 = no bound)"));
            },
            [](const Config& c) { return std::to_string(c.dead_letter_max_bytes); }},
    Setting{{"spool_dir", "folder of the crash-safe spool; default a state folder; empty = memory only", false,
             false},
            "PATH",
            [](Config& c, const Value& v) {
                c.spool_dir = v.text().empty() ? std::string{} : absolute_path(v, SIZE_MAX, ", or empty for off");
            },
            [](const Config& c) { return shown_text(c.spool_dir); }},
    Setting{{"spool_sync", "acknowledge after fdatasync (always) or after the write (interval)", false, false},
            "MODE", [](Config& c, const Value& v) { c.spool_sync = choice(v, {SpoolSync::always, SpoolSync::interval}); },
            [](const Config& c) { return std::string{to_string(c.spool_sync)}; }},
    Setting{{"spool_sync_interval", "spool_sync = interval: fdatasync this often", false, false}, "DURATION",
            [](Config& c, const Value& v) { c.spool_sync_interval = duration_in(v, 1ms, 60s); },
            [](const Config& c) { return format_duration(c.spool_sync_interval); }},
    Setting{{"spool_max_bytes", "most bytes of spool files; beyond it queue_full applies (1048576..1125899906842624)",
             false, false},
            "BYTES",
            [](Config& c, const Value& v) {
                c.spool_max_bytes = static_cast<std::uint64_t>(integer_in(v, 1ll << 20, 1ll << 50));
            },
            [](const Config& c) { return std::to_string(c.spool_max_bytes); }},
    Setting{{"shutdown_timeout", "on stop, time allowed to finish deliveries in flight", false, true}, "DURATION",
            [](Config& c, const Value& v) { c.shutdown_timeout = duration_in(v, 0ms, 1h); },
            [](const Config& c) { return format_duration(c.shutdown_timeout); }},
    Setting{{"call_idle_timeout", "forget a call's state after this long without events", false, false},
            "DURATION", [](Config& c, const Value& v) { c.call_idle_timeout = duration_in(v, 1s, 24h); },
            [](const Config& c) { return format_duration(c.call_idle_timeout); }},
    Setting{{"log_level", "least severe level logged: debug, info, warn or error", false, true}, "LEVEL",
            [](Config& c, const Value& v) {
                c.log_level = choice(v, {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error});
            },
            [](const Config& c) { return std::string{to_string(c.log_level)}; }},
    Setting{{"log_format", "log lines as text or json", false, true}, "FORMAT",
            [](Config& c, const Value& v) { c.log_format = choice(v, {LogFormat::text, LogFormat::json}); },
            [](const Config& c) { return std::string{to_string(c.log_format)}; }},
    Setting{{"admin", "health and metrics endpoint: HOST:PORT or a Unix socket path; empty = off", false, false},
            "ADDRESS", [](Config& c, const Value& v) { c.admin = admin_setting(v); },
            [](const Config& c) { return shown_text(c.admin); }},
};

constexpr auto setting_infos = [] {
    std::array<SettingInfo, settings.size()> infos{};
    for (std::size_t i = 0; i < settings.size(); ++i) {
        infos[i] = settings[i].info;
    }
    return infos;
}();

const Setting* find_setting(std::string_view key) {
    const auto found = std::find_if(settings.begin(), settings.end(), [&](const Setting& s) { return s.info.key == key; });
    return found == settings.end() ? nullptr : &*found;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const auto above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

// The setting whose key is nearest to an unknown one, if any is near enough to be a typo.
const Setting* closest_setting(std::string_view unknown_key) {
    const Setting* best = nullptr;
    std::size_t best_distance = 3;
    for (const auto& setting : settings) {
        if (const auto distance = edit_distance(lower(unknown_key), setting.info.key); distance < best_distance) {
            best = &setting;
            best_distance = distance;
        }
    }
    return best;
}

// " (did you mean timeout?)", written by `name` (the key, or its variable), or "".
std::string suggestion(std::string_view unknown_key, std::string (*name)(std::string_view) = nullptr) {
    const auto* best = closest_setting(unknown_key);
    if (!best) {
        return {};
    }
    return " (did you mean " + (name ? name(best->info.key) : std::string{best->info.key}) + "?)";
}

[[noreturn]] void file_error(std::string_view key, const std::string& path, std::size_t line, std::string_view what) {
    throw ConfigError(std::string{key},
                      "config file " + path + " line " + std::to_string(line) + ": " + std::string{what});
}

// `key = value` with optional matching quotes around the value; in an unquoted value, a `#` after
// whitespace starts a comment. Never echoes a value: it may be the secret.
std::pair<std::string, std::string> parse_file_line(std::string_view line, const std::string& path,
                                                    std::size_t number) {
    const auto equals = line.find('=');
    const auto key = trim(line.substr(0, equals));
    if (equals == std::string_view::npos || key.empty()) {
        file_error("", path, number, "expected key = value");
    }
    if (!find_setting(key)) {
        file_error(key, path, number, "unknown setting " + quoted_text(key) + suggestion(key));
    }
    auto value = trim(line.substr(equals + 1));
    if (value.starts_with('"') || value.starts_with('\'')) {
        const auto close = value.find(value[0], 1);
        if (close == std::string_view::npos) {
            file_error(key, path, number, "the value of " + std::string{key} + " has no closing quote");
        }
        const auto after = trim(value.substr(close + 1));
        if (!after.empty() && !after.starts_with('#')) {
            file_error(key, path, number, "unexpected text after the quoted value of " + std::string{key});
        }
        value = value.substr(1, close - 1);
    } else {
        // The value lies inside `line` after the '=', so the byte before any of its characters
        // is in `line` too (a value may start with '#': `key = # note` is an empty value).
        const auto start = static_cast<std::size_t>(value.data() - line.data());
        const auto before = [&](std::size_t index) { return line[start + index - 1]; };
        for (std::size_t hash = value.find('#'); hash != std::string_view::npos; hash = value.find('#', hash + 1)) {
            if (before(hash) == ' ' || before(hash) == '\t') {
                value = trim(value.substr(0, hash));
                break;
            }
        }
    }
    return {std::string{key}, std::string{value}};
}

RawValues read_config_file(const std::string& path) {
    std::error_code error;
    if (std::filesystem::is_directory(path, error)) {
        throw ConfigError("config", "cannot read config file " + path + ": it is a directory");
    }
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        throw ConfigError("config", "cannot read config file " + path + ": " + std::strerror(errno));
    }
    RawValues values;
    std::map<std::string, std::size_t> first_line;
    std::string line;
    for (std::size_t number = 1; std::getline(file, line); ++number) {
        std::string_view text = line;
        if (number == 1 && text.starts_with("\xEF\xBB\xBF")) {
            text.remove_prefix(3);
        }
        if (text.ends_with('\r')) {
            text.remove_suffix(1);
        }
        if (trim(text).empty() || trim(text).starts_with('#')) {
            continue;
        }
        auto [key, value] = parse_file_line(text, path, number);
        if (const auto [it, inserted] = first_line.emplace(key, number); !inserted) {
            file_error(key, path, number, key + " is already set on line " + std::to_string(it->second));
        }
        values[key] = RawValue{std::move(value), Origin::config_file, path + " line " + std::to_string(number)};
    }
    if (file.bad()) {
        throw ConfigError("config", "cannot read config file " + path + ": " + std::strerror(errno));
    }
    return values;
}

// The file to read, or "" for none.
std::string config_file_to_read(const ConfigSources& sources) {
    std::optional<std::string> named = sources.config_file;
    std::string named_by = "--config";
    if (!named) {
        if (const auto variable = sources.environment.find(std::string{config_file_variable});
            variable != sources.environment.end()) {
            named = variable->second;
            named_by = std::string{config_file_variable};
        }
    }
    if (named) {
        std::error_code error;
        if (!named->empty() && !std::filesystem::exists(*named, error)) {
            throw ConfigError("config", "config file " + *named + " (from " + named_by + ") does not exist");
        }
        return *named;
    }
    std::error_code error;
    return std::filesystem::exists(sources.default_file, error) ? sources.default_file : std::string{};
}

RawValue raw_or_built_in(const RawValues& raw, std::string_view key) {
    const auto found = raw.find(key);
    return found == raw.end() ? RawValue{"", Origin::built_in, "built-in default"} : found->second;
}

Value value_of(std::string_view key, const RawValue& raw) {
    return Value{find_setting(key)->info, raw};
}

bool readable_by_others(const std::string& path) {
    std::error_code error;
    const auto permissions = std::filesystem::status(path, error).permissions();
    return !error && (permissions & std::filesystem::perms::others_read) != std::filesystem::perms::none;
}

std::string read_secret_file(const Value& value) {
    const std::string path{value.text()};
    std::error_code error;
    if (std::filesystem::is_directory(path, error)) {
        value.reject("a file holding the secret, not a directory");
    }
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        value.reject(std::string{"a readable file holding the secret ("} + std::strerror(errno) + ")");
    }
    std::string secret(max_secret_file_size + 1, '\0');
    file.read(secret.data(), static_cast<std::streamsize>(secret.size()));
    if (file.bad()) {
        value.reject(std::string{"a readable file holding the secret ("} + std::strerror(errno) + ")");
    }
    secret.resize(static_cast<std::size_t>(file.gcount()));
    if (secret.size() > max_secret_file_size) {
        value.reject("a file of at most 64 KiB holding the secret");
    }
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) {
        secret.pop_back();
    }
    if (secret.empty()) {
        value.reject("a file holding the secret, but it is empty");
    }
    return secret;
}

bool is_loopback_host(std::string_view host) {
    return host == "localhost" || host.ends_with(".localhost") || host == "::1" ||
           (host.starts_with("127.") && std::all_of(host.begin(), host.end(), [](char c) {
                return c == '.' || (c >= '0' && c <= '9');
            }));
}

// A plain secret is the credential itself: over http:// to another machine it travels readable.
bool sends_plain_secret_in_clear(const Config& config) {
    if (config.secret.empty() || config.signature != SignatureMode::plain) return false;
    const auto url = parse_url(config.url);
    return url && !url->tls && !is_loopback_host(url->host);
}

// Rules that involve more than one setting, and the values derived from others.
void resolve(LoadedConfig& loaded, const RawValues& raw, const Environment& environment) {
    auto& config = loaded.config;
    if (config.url.empty()) {
        throw ConfigError("url", "missing setting url: set " + environment_name("url") + ", --url or url in the "
                                 "config file to the receiver's http:// or https:// URL");
    }
    const auto secret = raw_or_built_in(raw, "secret");
    const auto secret_file = raw_or_built_in(raw, "secret_file");
    if (!config.secret_file.empty()) {
        if (!config.secret.empty()) {
            value_of("secret_file", secret_file)
                .reject("only one of secret and secret_file, but secret is also set (" + secret.where + ")");
        }
        config.secret = read_secret_file(value_of("secret_file", secret_file));
        loaded.origins["secret"] = secret_file.origin;
        if (readable_by_others(config.secret_file)) {
            loaded.warnings.push_back("secret_file " + config.secret_file + " is readable by all users");
        }
    } else if (!config.secret.empty() && secret.origin == Origin::command_line) {
        loaded.warnings.push_back("--secret is visible to all users in the process list; prefer secret_file");
    } else if (!config.secret.empty() && secret.origin == Origin::config_file &&
               readable_by_others(loaded.config_file_used)) {
        loaded.warnings.push_back("config file " + loaded.config_file_used +
                                  " holds the secret and is readable by all users");
    }
    if (sends_plain_secret_in_clear(config)) {
        loaded.warnings.push_back("signature = plain sends the secret as it is over http:// to " +
                                  parse_url(config.url)->host +
                                  ", which is not loopback: anyone on the path can read it; use https:// or "
                                  "signature = hmac-sha256 or standard");
    }
    if (config.secret.empty() && config.signature != SignatureMode::plain) {
        value_of("signature", raw_or_built_in(raw, "signature")).reject("plain when no secret or secret_file is set");
    }
    // Checked against the text actually used, whichever setting supplied it.
    if (const auto problem = Signer::validate(config.signature, config.secret)) {
        value_of("secret", RawValue{config.secret, secret.origin,
                                    config.secret_file.empty() ? secret.where : "read from secret_file"})
            .fail(*problem);
    }
    for (const auto& type : config.types) {
        if (!config.allow_unknown_types && !is_known_event_type(type)) {
            value_of("types", raw_or_built_in(raw, "types"))
                .reject("known event types (" + type + " is not one; see allow_unknown_types)");
        }
    }
    if (config.retry_max_delay < config.retry_base) {
        value_of("retry_max_delay", raw_or_built_in(raw, "retry_max_delay"))
            .reject("a duration of at least retry_base (" + format_duration(config.retry_base) + ")");
    }
    if (!raw.contains("dead_letter")) {
        config.dead_letter = (std::filesystem::path(config.socket).parent_path() / "dead-letter.ndjson").string();
    }
    if (!raw.contains("spool_dir")) config.spool_dir = default_spool_dir(environment, ::geteuid() == 0);
}

// "environment WEBHOOK_TIMEOUT", "command line --timeout", "config file /etc/x.conf", "built-in".
std::string where_text(std::string_view key, Origin origin, const LoadedConfig& loaded) {
    const std::string kind{to_string(origin)};
    switch (origin) {
        case Origin::config_file: return kind + " " + loaded.config_file_used;
        case Origin::environment: return kind + " " + environment_name(key);
        case Origin::command_line: return kind + " --" + flag_name(key);
        case Origin::built_in: break;
    }
    return kind;
}

}  // namespace

std::span<const SettingInfo> all_settings() {
    return setting_infos;
}

std::string flag_name(std::string_view key) {
    std::string flag{key};
    std::replace(flag.begin(), flag.end(), '_', '-');
    return flag;
}

std::string environment_name(std::string_view key) {
    std::string name = "WEBHOOK_" + std::string{key};
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c); });
    return name;
}

Environment environment_from(char** envp) {
    Environment environment;
    for (; envp && *envp; ++envp) {
        const std::string_view entry = *envp;
        const auto equals = entry.find('=');
        if (equals != std::string_view::npos) {
            environment.emplace(entry.substr(0, equals), entry.substr(equals + 1));
        }
    }
    return environment;
}

namespace {

// Every given setting's text, by precedence: command line over environment over config file.
RawValues gather_raw_values(const ConfigSources& sources, LoadedConfig& loaded) {
    loaded.config_file_used = config_file_to_read(sources);
    RawValues raw = loaded.config_file_used.empty() ? RawValues{} : read_config_file(loaded.config_file_used);

    for (const auto& [variable, text] : sources.environment) {
        if (!variable.starts_with("WEBHOOK_") || variable == config_file_variable) {
            continue;
        }
        const auto key = lower(std::string_view{variable}.substr(8));
        if (find_setting(key) && environment_name(key) == variable) {
            raw[key] = RawValue{text, Origin::environment, variable};
        } else {
            loaded.warnings.push_back("ignoring unknown environment variable " + variable +
                                      suggestion(key, environment_name));
        }
    }
    for (const auto& [given_key, text] : sources.command_line) {
        std::string key = given_key;
        std::replace(key.begin(), key.end(), '-', '_');
        if (!find_setting(key)) {
            throw ConfigError(key, "unknown setting " + quoted_text(key) + " on the command line" + suggestion(key));
        }
        raw[key] = RawValue{text, Origin::command_line, "--" + flag_name(key)};
    }
    return raw;
}

}  // namespace

LoadedConfig load_config(const ConfigSources& sources) {
    LoadedConfig loaded;
    const RawValues raw = gather_raw_values(sources, loaded);
    for (const auto& setting : settings) {
        const auto key = std::string{setting.info.key};
        const auto given = raw.find(key);
        if (given == raw.end()) {
            loaded.origins[key] = Origin::built_in;
            continue;
        }
        setting.parse(loaded.config, Value{setting.info, given->second});
        loaded.origins[key] = given->second.origin;
    }
    resolve(loaded, raw, sources.environment);
    return loaded;
}

std::optional<std::string> find_setting_text(const ConfigSources& sources, std::string_view key) {
    const Setting* setting = find_setting(key);
    if (!setting) {
        throw ConfigError(std::string{key}, "unknown setting " + quoted_text(key));
    }
    LoadedConfig scratch;
    const RawValues raw = gather_raw_values(sources, scratch);
    const auto given = raw.find(key);
    if (given == raw.end()) {
        return std::nullopt;
    }
    setting->parse(scratch.config, Value{setting->info, given->second});
    return given->second.text;
}

std::string describe(const LoadedConfig& loaded) {
    std::string out;
    for (const auto& setting : settings) {
        const auto key = setting.info.key;
        const auto origin = loaded.origins.find(std::string{key});
        const auto where = origin == loaded.origins.end() ? std::string{"built-in"}
                           : key == "secret" && !loaded.config.secret_file.empty()
                               ? "read from secret_file"
                               : where_text(key, origin->second, loaded);
        out += std::string{key} + " = " + setting.format(loaded.config) + "  (" + where + ")\n";
    }
    return out;
}

void add_setting_options(boost::program_options::options_description& options) {
    namespace po = boost::program_options;
    const Config defaults;
    for (const auto& setting : settings) {
        auto* semantic = po::value<std::string>()->value_name(std::string{setting.value_name});
        if (setting.value_name == "BOOL") {
            semantic->implicit_value("true");
        }
        const auto default_text = setting.format(defaults);
        const auto help = std::string{setting.info.help} + " [" + environment_name(setting.info.key) +
                          (default_text == "\"\"" ? "" : ", default " + default_text) + "]";
        options.add_options()(flag_name(setting.info.key).c_str(), semantic, help.c_str());
    }
    options.add_options()("config", po::value<std::string>()->value_name("FILE"),
                          ("config file (default " + std::string{default_config_file} + " if it exists) [" +
                           std::string{config_file_variable} + "]")
                              .c_str());
}

std::map<std::string, std::string> command_line_settings(const boost::program_options::variables_map& vm) {
    std::map<std::string, std::string> given;
    for (const auto& setting : settings) {
        const auto found = vm.find(flag_name(setting.info.key));
        if (found != vm.end() && !found->second.defaulted()) {
            given.emplace(setting.info.key, found->second.as<std::string>());
        }
    }
    return given;
}

std::optional<std::string> command_line_config_file(const boost::program_options::variables_map& vm) {
    const auto found = vm.find("config");
    if (found == vm.end() || found->second.defaulted()) {
        return std::nullopt;
    }
    return found->second.as<std::string>();
}

ConfigSources config_sources(const boost::program_options::variables_map& vm, Environment environment) {
    ConfigSources sources;
    sources.command_line = command_line_settings(vm);
    sources.config_file = command_line_config_file(vm);
    sources.environment = std::move(environment);
    return sources;
}

std::string_view to_string(Origin origin) {
    switch (origin) {
        case Origin::built_in: return "built-in";
        case Origin::config_file: return "config file";
        case Origin::environment: return "environment";
        case Origin::command_line: return "command line";
    }
    return "unknown";
}

std::string_view to_string(LogLevel level) {
    switch (level) {
        case LogLevel::debug: return "debug";
        case LogLevel::info: return "info";
        case LogLevel::warn: return "warn";
        case LogLevel::error: return "error";
    }
    return "unknown";
}

std::string_view to_string(LogFormat format) {
    return format == LogFormat::json ? "json" : "text";
}

std::string_view to_string(AckMode mode) {
    return mode == AckMode::all ? "all" : "errors";
}

std::string_view to_string(SpoolSync mode) {
    return mode == SpoolSync::interval ? "interval" : "always";
}

// systemd's StateDirectory= sets STATE_DIRECTORY (several folders are separated by colons; the
// first is ours). Without it the XDG base directory rules give each user a folder of their own.
std::string default_spool_dir(const Environment& environment, bool running_as_root) {
    const auto variable = [&](const char* name) -> std::string {
        const auto found = environment.find(name);
        return found == environment.end() ? std::string{} : found->second;
    };
    if (auto state = variable("STATE_DIRECTORY"); !state.empty() && state.front() == '/')
        return state.substr(0, state.find(':'));
    if (running_as_root) return "/var/lib/avr-webhookd";
    if (auto xdg = variable("XDG_STATE_HOME"); !xdg.empty() && xdg.front() == '/')
        return (std::filesystem::path(xdg) / "avr-webhookd").string();
    if (auto home = variable("HOME"); !home.empty() && home.front() == '/')
        return (std::filesystem::path(home) / ".local/state/avr-webhookd").string();
    return "/var/lib/avr-webhookd";
}

std::string_view to_string(QueueFullPolicy policy) {
    return policy == QueueFullPolicy::reject ? "reject" : "block";
}

}  // namespace avr_webhookd
