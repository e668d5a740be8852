#include "setting_table.hpp"
#include "validators.hpp"

#include <avr_webhookd/common/duration.hpp>
#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/common/url.hpp>
#include <avr_webhookd/intake/producer_access.hpp>

#include <algorithm>
#include <array>
#include <cstdint>

namespace avr_webhookd {

namespace config_detail {
namespace {

using namespace std::chrono_literals;

// Every setting, in documentation order: key, help, secret, reloadable; the value's name in
// --help; how a value is parsed and validated; how it is shown; the Config member it fills.
constexpr std::array settings{
    Setting{{"url",
             "where events go: an http:// or https:// URL (POSTed), or nats:// or tls:// servers, comma-separated "
             "(published to NATS JetStream); required",
             false, true},
            "URL",
            [](Config& c, const Value& v) { c.url = url_setting(v); },
            [](const Config& c) { return shown_text(redact_url(c.url)); },
            field_of<&Config::url>},
    Setting{{"secret", "shared secret sent to the receiver; empty for none", true, true},
            "SECRET",
            [](Config& c, const Value& v) { c.secret = std::string{v.text()}; },
            [](const Config& c) { return c.secret.empty() ? std::string{"\"\""} : std::string{"<redacted>"}; },
            field_of<&Config::secret>},
    Setting{{"secret_file", "read the secret from this file instead (trailing newline removed)", false, true},
            "PATH",
            [](Config& c, const Value& v) { c.secret_file = std::string{v.text()}; },
            [](const Config& c) { return shown_text(c.secret_file); },
            field_of<&Config::secret_file>},
    Setting{{"signature", "how the secret is presented: plain, hmac-sha256 or standard", false, true},
            "MODE",
            [](Config& c, const Value& v) {
                c.signature = choice(v, {SignatureMode::plain, SignatureMode::hmac_sha256, SignatureMode::standard});
            },
            [](const Config& c) { return std::string{to_string(c.signature)}; },
            field_of<&Config::signature>},
    Setting{{"timeout", "time allowed for one delivery attempt", false, true},
            "DURATION",
            [](Config& c, const Value& v) { c.timeout = duration_in(v, 1ms, 1h); },
            [](const Config& c) { return format_duration(c.timeout); },
            field_of<&Config::timeout>},
    Setting{{"retry", "extra attempts after a failed one; -1 = until max_age", false, true},
            "N",
            [](Config& c, const Value& v) {
                c.retry = static_cast<int>(integer_in(v, -1, 1'000'000, " (-1 = until max_age)"));
            },
            [](const Config& c) { return std::to_string(c.retry); },
            field_of<&Config::retry>},
    Setting{{"retry_base", "first retry delay; later ones grow exponentially with jitter", false, true},
            "DURATION",
            [](Config& c, const Value& v) { c.retry_base = duration_in(v, 1ms, 1h); },
            [](const Config& c) { return format_duration(c.retry_base); },
            field_of<&Config::retry_base>},
    Setting{{"retry_max_delay", "longest delay between two attempts", false, true},
            "DURATION",
            [](Config& c, const Value& v) { c.retry_max_delay = duration_in(v, 1ms, 24h); },
            [](const Config& c) { return format_duration(c.retry_max_delay); },
            field_of<&Config::retry_max_delay>},
    Setting{{"max_age", "give an event up when it is this old", false, true},
            "DURATION",
            [](Config& c, const Value& v) { c.max_age = duration_in(v, 1ms, 720h); },
            [](const Config& c) { return format_duration(c.max_age); },
            field_of<&Config::max_age>},
    Setting{{"agent_id", "sent as X-AVR-AGENT-ID when set (printable ASCII)", false, true},
            "ID",
            [](Config& c, const Value& v) { c.agent_id = agent_id_setting(v); },
            [](const Config& c) { return shown_text(c.agent_id); },
            field_of<&Config::agent_id>},
    Setting{{"ca_file", "extra CA bundle (PEM) trusted for https (and tls:// NATS servers)", false, true},
            "PATH",
            [](Config& c, const Value& v) { c.ca_file = existing_file(v); },
            [](const Config& c) { return shown_text(c.ca_file); },
            field_of<&Config::ca_file>},
    Setting{{"tls_verify", "verify the receiver's certificate and host name", false, true},
            "BOOL",
            [](Config& c, const Value& v) { c.tls_verify = boolean(v); },
            [](const Config& c) { return std::string{c.tls_verify ? "true" : "false"}; },
            field_of<&Config::tls_verify>},
    Setting{{"concurrency", "most requests in flight at once (1..4096)", false, true},
            "N",
            [](Config& c, const Value& v) { c.concurrency = static_cast<unsigned>(integer_in(v, 1, 4096)); },
            [](const Config& c) { return std::to_string(c.concurrency); },
            field_of<&Config::concurrency>},
    Setting{{"types", "forward only these event types, comma-separated; empty = all", false, true},
            "LIST",
            [](Config& c, const Value& v) { c.types = type_list(v, "all types"); },
            [](const Config& c) { return shown_text(join(c.types, ",")); },
            field_of<&Config::types>},
    Setting{
        {"subject", "nats:// url: the subject each event is published to; placeholders {type}, {uuid}, {destination}",
         false, true},
        "TEMPLATE",
        [](Config& c, const Value& v) { c.nats.subject = subject_setting(v); },
        [](const Config& c) { return shown_text(c.nats.subject); },
        nats_field_of<&NatsSettings::subject>},
    Setting{{"user", "nats:// url: the user name, with password_file", false, true},
            "NAME",
            [](Config& c, const Value& v) { c.nats.user = nats_user_setting(v); },
            [](const Config& c) { return shown_text(c.nats.user); },
            nats_field_of<&NatsSettings::user>},
    Setting{{"password_file", "nats:// url: read the user's password from this file (trailing newline removed)", false,
             true},
            "PATH",
            [](Config& c, const Value& v) { c.nats.password_file = std::string{v.text()}; },
            [](const Config& c) { return shown_text(c.nats.password_file); },
            nats_field_of<&NatsSettings::password_file>},
    Setting{{"token_file", "nats:// url: read an authentication token from this file (trailing newline removed)", false,
             true},
            "PATH",
            [](Config& c, const Value& v) { c.nats.token_file = std::string{v.text()}; },
            [](const Config& c) { return shown_text(c.nats.token_file); },
            nats_field_of<&NatsSettings::token_file>},
    Setting{{"nkey_seed_file", "nats:// url: authenticate with the NKey user seed (SU...) in this file", false, true},
            "PATH",
            [](Config& c, const Value& v) { c.nats.nkey_seed_file = existing_file(v); },
            [](const Config& c) { return shown_text(c.nats.nkey_seed_file); },
            nats_field_of<&NatsSettings::nkey_seed_file>},
    Setting{
        {"creds_file", "nats:// url: authenticate with this credentials file (user JWT and NKey seed)", false, true},
        "PATH",
        [](Config& c, const Value& v) { c.nats.creds_file = existing_file(v); },
        [](const Config& c) { return shown_text(c.nats.creds_file); },
        nats_field_of<&NatsSettings::creds_file>},
    Setting{{"cert_file", "nats:// url: client certificate (PEM) for TLS, with key_file", false, true},
            "PATH",
            [](Config& c, const Value& v) { c.nats.cert_file = existing_file(v); },
            [](const Config& c) { return shown_text(c.nats.cert_file); },
            nats_field_of<&NatsSettings::cert_file>},
    Setting{{"key_file", "nats:// url: the client certificate's private key (PEM)", false, true},
            "PATH",
            [](Config& c, const Value& v) { c.nats.key_file = existing_file(v); },
            [](const Config& c) { return shown_text(c.nats.key_file); },
            nats_field_of<&NatsSettings::key_file>},
    Setting{{"respond_types",
             "event types whose receiver answer goes back to the producer (routing answers), comma-separated; "
             "empty = none",
             false, true},
            "LIST",
            [](Config& c, const Value& v) { c.respond_types = type_list(v, "none"); },
            [](const Config& c) { return shown_text(join(c.respond_types, ",")); },
            field_of<&Config::respond_types>},
    Setting{{"respond_timeout", "how long a producer waits for the answer to a respond-type event", false, true},
            "DURATION",
            [](Config& c, const Value& v) { c.respond_timeout = duration_in(v, 10ms, 5min); },
            [](const Config& c) { return format_duration(c.respond_timeout); },
            field_of<&Config::respond_timeout>},
    Setting{{"respond_destination", "the destination whose answer goes back to the producer (default or a name)", false,
             true},
            "NAME",
            [](Config& c, const Value& v) {
                if (v.text() != default_destination_name && !valid_destination_name(v.text()))
                    v.reject("\"default\" or a destination name (lower-case letters and digits)");
                c.respond_destination = std::string{v.text()};
            },
            [](const Config& c) { return c.respond_destination; },
            field_of<&Config::respond_destination>},
    Setting{{"socket", "Unix socket that producers write events to", false, false},
            "PATH",
            [](Config& c, const Value& v) { c.socket = socket_path_setting(v); },
            [](const Config& c) { return c.socket; },
            field_of<&Config::socket>},
    Setting{{"socket_mode", "permissions of the socket file (octal, never world-writable)", false, false},
            "MODE",
            [](Config& c, const Value& v) { c.socket_mode = socket_mode_setting(v); },
            [](const Config& c) { return octal(c.socket_mode); },
            field_of<&Config::socket_mode>},
    Setting{{"max_line", "longest accepted event line in bytes (256..16777216)", false, true},
            "BYTES",
            [](Config& c, const Value& v) { c.max_line = static_cast<std::size_t>(integer_in(v, 256, 16 << 20)); },
            [](const Config& c) { return std::to_string(c.max_line); },
            field_of<&Config::max_line>},
    Setting{{"max_connections", "most producers connected at once (1..65535)", false, true},
            "N",
            [](Config& c, const Value& v) { c.max_connections = static_cast<unsigned>(integer_in(v, 1, 65535)); },
            [](const Config& c) { return std::to_string(c.max_connections); },
            field_of<&Config::max_connections>},
    Setting{{"partial_line_timeout",
             "a producer silent this long in the middle of a line may be closed for a new one at max_connections",
             false, true},
            "DURATION",
            [](Config& c, const Value& v) { c.partial_line_timeout = duration_in(v, 1s, 24h); },
            [](const Config& c) { return format_duration(c.partial_line_timeout); },
            field_of<&Config::partial_line_timeout>},
    Setting{{"max_reply_backlog",
             "reply bytes kept per producer connection: with ack = all its lines wait beyond it, with ack = errors "
             "rejection replies are dropped (4096..67108864)",
             false, true},
            "BYTES",
            [](Config& c, const Value& v) {
                c.max_reply_backlog = static_cast<std::size_t>(integer_in(v, 4096, 64 << 20));
            },
            [](const Config& c) { return std::to_string(c.max_reply_backlog); },
            field_of<&Config::max_reply_backlog>},
    Setting{{"producer_uids", "serve only producers with these uids, comma-separated; empty = anyone", false, true},
            "LIST",
            [](Config& c, const Value& v) { c.producer_uids = id_list(v); },
            [](const Config& c) { return shown_text(format_id_list(c.producer_uids)); },
            field_of<&Config::producer_uids>},
    Setting{{"producer_gids", "serve only producers in these groups, comma-separated; empty = anyone", false, true},
            "LIST",
            [](Config& c, const Value& v) { c.producer_gids = id_list(v); },
            [](const Config& c) { return shown_text(format_id_list(c.producer_gids)); },
            field_of<&Config::producer_gids>},
    Setting{{"max_queue", "most events waiting in memory (1..10000000)", false, true},
            "N",
            [](Config& c, const Value& v) { c.max_queue = static_cast<std::size_t>(integer_in(v, 1, 10'000'000)); },
            [](const Config& c) { return std::to_string(c.max_queue); },
            field_of<&Config::max_queue>},
    Setting{{"max_queue_bytes", "most bytes of events waiting in memory (65536..68719476736)", false, true},
            "BYTES",
            [](Config& c, const Value& v) {
                c.max_queue_bytes = static_cast<std::uint64_t>(integer_in(v, 64 << 10, 64ll << 30));
            },
            [](const Config& c) { return std::to_string(c.max_queue_bytes); },
            field_of<&Config::max_queue_bytes>},
    Setting{{"queue_full", "when the queue is full: block (stop reading) or reject the line", false, true},
            "POLICY",
            [](Config& c, const Value& v) {
                c.queue_full = choice(v, {QueueFullPolicy::block, QueueFullPolicy::reject});
            },
            [](const Config& c) { return std::string{to_string(c.queue_full)}; },
            field_of<&Config::queue_full>},
    Setting{{"ack", "reply to errors only, or to all lines", false, true},
            "MODE",
            [](Config& c, const Value& v) {
                c.ack = choice(v, {AckMode::errors, AckMode::all});
            },
            [](const Config& c) { return std::string{to_string(c.ack)}; },
            field_of<&Config::ack>},
    Setting{{"allow_unknown_types", "accept event types beyond the specification's seven", false, true},
            "BOOL",
            [](Config& c, const Value& v) { c.allow_unknown_types = boolean(v); },
            [](const Config& c) { return std::string{c.allow_unknown_types ? "true" : "false"}; },
            field_of<&Config::allow_unknown_types>},
    Setting{{"http_listen", "HTTP intake for AVR Core's own webhook requests: HOST:PORT; empty = off", false, false},
            "ADDRESS",
            [](Config& c, const Value& v) { c.http_listen = http_listen_setting(v); },
            [](const Config& c) { return shown_text(c.http_listen); },
            field_of<&Config::http_listen>},
    Setting{
        {"intake_secret", "X-AVR-WEBHOOK-SECRET the HTTP intake requires; empty for none (loopback only)", true, true},
        "SECRET",
        [](Config& c, const Value& v) { c.intake_secret = std::string{v.text()}; },
        [](const Config& c) { return c.intake_secret.empty() ? std::string{"\"\""} : std::string{"<redacted>"}; },
        field_of<&Config::intake_secret>},
    Setting{{"intake_secret_file", "read intake_secret from this file instead (trailing newline removed)", false, true},
            "PATH",
            [](Config& c, const Value& v) { c.intake_secret_file = std::string{v.text()}; },
            [](const Config& c) { return shown_text(c.intake_secret_file); },
            field_of<&Config::intake_secret_file>},
    Setting{{"http_max_connections", "most HTTP intake connections at once (1..65535)", false, true},
            "N",
            [](Config& c, const Value& v) { c.http_max_connections = static_cast<unsigned>(integer_in(v, 1, 65535)); },
            [](const Config& c) { return std::to_string(c.http_max_connections); },
            field_of<&Config::http_max_connections>},
    Setting{{"http_request_timeout", "time allowed for one HTTP intake request, idle keep-alive included", false, true},
            "DURATION",
            [](Config& c, const Value& v) { c.http_request_timeout = duration_in(v, 100ms, 1h); },
            [](const Config& c) { return format_duration(c.http_request_timeout); },
            field_of<&Config::http_request_timeout>},
    Setting{{"http_max_request_bytes",
             "most bytes of one HTTP intake request: head, chunk framing, trailers and body; 0 = max_line + 32768",
             false, true},
            "BYTES",
            [](Config& c, const Value& v) {
                const auto bytes = integer_in(v, 0, 64 << 20, " (0 = max_line + 32768)");
                if (bytes != 0 && bytes < 4096)
                    v.reject("0 (= max_line + 32768) or a whole number from 4096 to 67108864");
                c.http_max_request_bytes = static_cast<std::size_t>(bytes);
            },
            [](const Config& c) { return std::to_string(c.http_max_request_bytes); },
            field_of<&Config::http_max_request_bytes>},
    Setting{
        {"http_max_header_fields", "most header fields in one HTTP intake request (8..10000)", false, true},
        "N",
        [](Config& c, const Value& v) { c.http_max_header_fields = static_cast<unsigned>(integer_in(v, 8, 10000)); },
        [](const Config& c) { return std::to_string(c.http_max_header_fields); },
        field_of<&Config::http_max_header_fields>},
    Setting{{"dead_letter", "file for events given up; default next to the socket; empty = off", false, false},
            "PATH",
            [](Config& c, const Value& v) {
                c.dead_letter = v.text().empty() ? std::string{} : absolute_path(v, SIZE_MAX, ", or empty for off");
            },
            [](const Config& c) { return shown_text(c.dead_letter); },
            field_of<&Config::dead_letter>},
    Setting{{"dead_letter_max_bytes", "dead-letter file size beyond which events are only logged; 0 = no bound", false,
             true},
            "BYTES",
            [](Config& c, const Value& v) {
                c.dead_letter_max_bytes = static_cast<std::uint64_t>(integer_in(v, 0, 1ll << 50, " (0 = no bound)"));
            },
            [](const Config& c) { return std::to_string(c.dead_letter_max_bytes); },
            field_of<&Config::dead_letter_max_bytes>},
    Setting{{"spool_dir", "folder of the crash-safe spool; default a state folder; empty = memory only", false, false},
            "PATH",
            [](Config& c, const Value& v) {
                c.spool_dir = v.text().empty() ? std::string{} : absolute_path(v, SIZE_MAX, ", or empty for off");
            },
            [](const Config& c) { return shown_text(c.spool_dir); },
            field_of<&Config::spool_dir>},
    Setting{{"spool_sync", "acknowledge after fdatasync (always) or after the write (interval)", false, false},
            "MODE",
            [](Config& c, const Value& v) {
                c.spool_sync = choice(v, {SpoolSync::always, SpoolSync::interval});
            },
            [](const Config& c) { return std::string{to_string(c.spool_sync)}; },
            field_of<&Config::spool_sync>},
    Setting{{"spool_sync_interval", "spool_sync = interval: fdatasync this often", false, false},
            "DURATION",
            [](Config& c, const Value& v) { c.spool_sync_interval = duration_in(v, 1ms, 60s); },
            [](const Config& c) { return format_duration(c.spool_sync_interval); },
            field_of<&Config::spool_sync_interval>},
    Setting{{"spool_max_bytes", "most bytes of spool files; beyond it queue_full applies (1048576..1125899906842624)",
             false, false},
            "BYTES",
            [](Config& c, const Value& v) {
                c.spool_max_bytes = static_cast<std::uint64_t>(integer_in(v, 1ll << 20, 1ll << 50));
            },
            [](const Config& c) { return std::to_string(c.spool_max_bytes); },
            field_of<&Config::spool_max_bytes>},
    Setting{{"spool_resident_bytes",
             "with the spool, bytes of events kept whole in memory before new ones wait on disk only "
             "(0..68719476736; at most half of max_queue_bytes applies)",
             false, true},
            "BYTES",
            [](Config& c, const Value& v) {
                c.spool_resident_bytes = static_cast<std::uint64_t>(integer_in(v, 0, 64ll << 30));
            },
            [](const Config& c) { return std::to_string(c.spool_resident_bytes); },
            field_of<&Config::spool_resident_bytes>},
    Setting{{"shutdown_timeout", "on stop, time allowed to finish deliveries in flight", false, true},
            "DURATION",
            [](Config& c, const Value& v) { c.shutdown_timeout = duration_in(v, 0ms, 1h); },
            [](const Config& c) { return format_duration(c.shutdown_timeout); },
            field_of<&Config::shutdown_timeout>},
    Setting{{"call_idle_timeout", "forget a call's state after this long without events", false, false},
            "DURATION",
            [](Config& c, const Value& v) { c.call_idle_timeout = duration_in(v, 1s, 24h); },
            [](const Config& c) { return format_duration(c.call_idle_timeout); },
            field_of<&Config::call_idle_timeout>},
    Setting{{"log_level", "least severe level logged: debug, info, warn or error", false, true},
            "LEVEL",
            [](Config& c, const Value& v) {
                c.log_level = choice(v, {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error});
            },
            [](const Config& c) { return std::string{to_string(c.log_level)}; },
            field_of<&Config::log_level>},
    Setting{{"log_format", "log lines as text or json", false, true},
            "FORMAT",
            [](Config& c, const Value& v) {
                c.log_format = choice(v, {LogFormat::text, LogFormat::json});
            },
            [](const Config& c) { return std::string{to_string(c.log_format)}; },
            field_of<&Config::log_format>},
    Setting{{"admin", "health, metrics and status page endpoint: HOST:PORT or a Unix socket path; empty = off", false,
             false},
            "ADDRESS",
            [](Config& c, const Value& v) { c.admin = admin_setting(v); },
            [](const Config& c) { return shown_text(c.admin); },
            field_of<&Config::admin>},
};

constexpr auto setting_infos = [] {
    std::array<SettingInfo, settings.size()> infos{};
    for (std::size_t i = 0; i < settings.size(); ++i) {
        infos[i] = settings[i].info;
    }
    return infos;
}();

}  // namespace

std::span<const Setting> setting_table() { return settings; }

const Setting* find_setting(std::string_view key) {
    const auto found =
        std::find_if(settings.begin(), settings.end(), [&](const Setting& s) { return s.info.key == key; });
    return found == settings.end() ? nullptr : &*found;
}

}  // namespace config_detail

std::span<const SettingInfo> all_settings() { return config_detail::setting_infos; }

std::string flag_name(std::string_view key) {
    std::string flag{key};
    std::replace(flag.begin(), flag.end(), '_', '-');
    return flag;
}

std::string environment_name(std::string_view key) { return "WEBHOOK_" + ascii_upper(key); }

std::vector<std::string_view> keep_restart_only_settings(Config& fresh, const Config& running) {
    std::vector<std::string_view> changed;
    for (const auto& setting : config_detail::settings) {
        if (setting.info.reloadable) continue;
        if (!setting.field.same(fresh, running)) changed.push_back(setting.info.key);
        setting.field.copy(fresh, running);
    }
    return changed;
}

}  // namespace avr_webhookd
