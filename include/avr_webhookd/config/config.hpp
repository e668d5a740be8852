#pragma once

#include <avr_webhookd/common/environment.hpp>
#include <avr_webhookd/common/signature_mode.hpp>
#include <avr_webhookd/ops/logger.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace avr_webhookd {

enum class AckMode { errors, all };
enum class QueueFullPolicy { block, reject };
enum class SpoolSync { always, interval };

inline constexpr std::string_view default_nats_subject = "avr.events.{type}";

// The settings only a destination whose url is nats:// or tls:// (NATS JetStream) has.
struct NatsSettings {
    std::string subject{default_nats_subject};  // a template: {type}, {uuid}, {destination}
    std::string user;                           // with password_file
    std::string password;                       // password_file's contents; never printed
    std::string password_file;
    std::string token;  // token_file's contents; never printed
    std::string token_file;
    std::string nkey_seed_file;
    std::string creds_file;
    std::string cert_file;  // client certificate (PEM) with key_file
    std::string key_file;
    bool operator==(const NatsSettings&) const = default;
};

// One receiver's settings (a destination): the per-receiver settings of the specification. The
// top-level ones (url, secret, timeout ...) configure the destination named "default"; more are
// named sections of the config file, [destination NAME], or destination_NAME_KEY elsewhere.
struct Destination {
    std::string name;
    std::string url;
    std::string secret;  // never printed; holds the file's contents when secret_file is used
    std::string secret_file;
    SignatureMode signature = SignatureMode::plain;
    std::chrono::milliseconds timeout{3000};
    int retry = 0;
    std::chrono::milliseconds retry_base{1000};
    std::chrono::milliseconds retry_max_delay{60000};
    std::chrono::milliseconds max_age{3600000};
    std::string agent_id;
    std::string ca_file;
    bool tls_verify = true;
    unsigned concurrency = 64;
    std::vector<std::string> types;
    NatsSettings nats;
    bool operator==(const Destination&) const = default;
};

inline constexpr std::string_view default_destination_name = "default";

// The daemon's effective settings. One rule names each setting: config-file key `foo_bar`,
// command-line flag `--foo-bar`, environment variable `WEBHOOK_FOO_BAR`. The settings table
// (config/settings.hpp) lists them; load_config() fills this in and validates every value, the
// same at check-config, at start and at reload.
struct Config {
    std::string url;          // required: http:// or https://, or nats:// / tls:// servers (JetStream)
    std::string secret;       // "" = none; never printed. Holds the file's
                              // contents when secret_file is used.
    std::string secret_file;  // read secret from file (trailing newline stripped)
    SignatureMode signature = SignatureMode::plain;
    std::chrono::milliseconds timeout{3000};  // per attempt
    int retry = 0;                            // extra attempts; -1 = unlimited (bounded by max_age)
    std::chrono::milliseconds retry_base{1000};
    std::chrono::milliseconds retry_max_delay{60000};
    std::chrono::milliseconds max_age{3600000};  // give an event up after this age
    std::string agent_id;                        // X-AVR-AGENT-ID when set
    std::string ca_file;                         // extra CA bundle
    bool tls_verify = true;
    unsigned concurrency = 64;       // max requests in flight, 1..4096
    std::vector<std::string> types;  // forward only these types; empty = all
    NatsSettings nats;               // url nats:// or tls://: how to publish to JetStream
    // Events whose receiver answer (status and body) is passed back to the producer, within
    // respond_timeout: AVR Core routes a call by the answer to call_initiated.
    std::vector<std::string> respond_types{"call_initiated"};
    std::chrono::milliseconds respond_timeout{2500};
    std::string respond_destination{default_destination_name};  // whose answer goes back to the producer
    // The destinations beyond the default one, by name (never "default"), in name order.
    std::vector<Destination> destinations;
    std::string socket = "/run/avr-webhookd/events.sock";
    unsigned socket_mode = 0660;                            // never world-writable
    std::size_t max_line = 65536;                           // bytes, 256..16 MiB
    unsigned max_connections = 256;                         // producers at once, 1..65535
    std::chrono::milliseconds partial_line_timeout{30000};  // silent mid-line: evictable at max_connections
    std::size_t max_reply_backlog = 65536;                  // reply bytes kept per producer, 4 KiB..64 MiB
    std::vector<std::uint32_t> producer_uids;               // allow-list of peer uids; both empty = anyone
    std::vector<std::uint32_t> producer_gids;               // allow-list of peer groups (effective or supplementary)
    std::size_t max_queue = 100000;                         // events queued in memory, 1..10'000'000
    std::uint64_t max_queue_bytes = 256ull << 20;  // bytes of queued events (CallQueues::event_cost), 64 KiB..64 GiB
    QueueFullPolicy queue_full = QueueFullPolicy::block;
    AckMode ack = AckMode::errors;
    bool allow_unknown_types = false;
    // The drop-in HTTP intake (AVR Core's own webhook requests): "" = off, else HOST:PORT.
    std::string http_listen;
    std::string intake_secret;            // X-AVR-WEBHOOK-SECRET the HTTP intake demands; "" = none (loopback only)
    std::string intake_secret_file;       // read intake_secret from this file
    unsigned http_max_connections = 256;  // HTTP intake connections at once, 1..65535
    std::chrono::milliseconds http_request_timeout{10000};  // one request, idle keep-alive included
    // Every byte of one HTTP intake request (head, chunk framing, trailers, body); 0 = max_line + 32 KiB.
    std::size_t http_max_request_bytes = 0;
    unsigned http_max_header_fields = 100;  // header fields of one HTTP intake request, 8..10000
    std::string dead_letter;                // resolved: default <dir of socket>/dead-letter.ndjson; "" = off
    std::uint64_t dead_letter_max_bytes = 1ull
                                          << 30;  // beyond this size lines go to the error log instead; 0 = no bound
    // The crash-safe spool. Resolved: unset = $STATE_DIRECTORY (systemd), /var/lib/avr-webhookd as
    // root, else $XDG_STATE_HOME/avr-webhookd or ~/.local/state/avr-webhookd; "" = memory only.
    std::string spool_dir;
    SpoolSync spool_sync = SpoolSync::always;            // ack after fdatasync, or after the write
    std::chrono::milliseconds spool_sync_interval{100};  // spool_sync = interval: fdatasync this often
    std::uint64_t spool_max_bytes = 1ull << 30;          // spool files beyond this: queue_full applies
    // With the spool: bytes of events (CallQueues::event_cost) held whole behind their calls' next
    // ones before new ones are parked on disk; at most half of max_queue_bytes applies. 0..64 GiB
    std::uint64_t spool_resident_bytes = 80ull << 20;
    std::chrono::milliseconds shutdown_timeout{10000};
    std::chrono::milliseconds call_idle_timeout{900000};  // free a call's state after this idle time
    LogLevel log_level = LogLevel::info;
    LogFormat log_format = LogFormat::text;
    std::string admin;  // "" = off; "HOST:PORT", "[::1]:PORT" or an absolute Unix socket path
};

// The default destination (the top-level per-receiver settings) and the named ones, default first.
std::vector<Destination> all_destinations(const Config& config);
// The configuration one destination's delivery runs with: `config` with its per-receiver settings
// replaced by the destination's (and no destinations of its own).
Config config_for(const Config& config, const Destination& destination);
// The per-receiver settings of `receiver` as a destination called `name`.
Destination destination_from(const Config& receiver, std::string name);

// A destination's setting key: destination_NAME_KEY, where NAME is 1 to 32 lower-case letters and
// digits starting with a letter (not "default") and KEY one of the per-receiver settings.
struct DestinationKey {
    std::string name;
    std::string setting;
};
std::optional<DestinationKey> split_destination_key(std::string_view key);
bool valid_destination_name(std::string_view name);
bool is_receiver_setting(std::string_view key);  // url, secret, timeout ... (the keys a destination has)

// Where a setting's effective value came from (for check-config).
enum class Origin { built_in, config_file, environment, command_line };

// Thrown for any invalid setting. what() is one line naming the setting, the value and what is
// allowed; secret values appear as <redacted>. `setting` is the key ("" when not about one key).
struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
    ConfigError(std::string setting_key, const std::string& message)
        : std::runtime_error(message), setting(std::move(setting_key)) {}
    std::string setting;
};

inline constexpr std::string_view default_config_file = "/etc/avr-webhookd/avr-webhookd.conf";
inline constexpr std::string_view config_file_variable = "WEBHOOK_CONFIG";

struct ConfigSources {
    std::map<std::string, std::string> command_line;  // key (foo_bar) -> raw text
    // From --config. nullopt: WEBHOOK_CONFIG if set, else `default_file` if it exists.
    // A named file that is missing is an error; an empty name reads no file.
    std::optional<std::string> config_file;
    Environment environment;
    std::string default_file{default_config_file};  // tests point this elsewhere
};

struct LoadedConfig {
    Config config;
    std::map<std::string, Origin> origins;  // every key -> origin of its value
    std::string config_file_used;           // "" when none was read
    // Non-fatal findings for the log, e.g. an unknown WEBHOOK_* variable.
    std::vector<std::string> warnings;
};

// The one validation of a whole configuration: check-config, the daemon's start and every reload
// (SIGHUP) call it. Gathers the sources by precedence (command line > environment > config file >
// built-in), parses every given value with its setting's parser from the settings table, then
// applies the rules that involve more than one setting. Throws ConfigError.
LoadedConfig load_config(const ConfigSources& sources);

// One setting's text as given (command line, else environment, else config file), validated on
// its own, without requiring the rest of the configuration (e.g. `url`): for subcommands such as
// healthcheck and send. nullopt when the setting is not given anywhere. Throws ConfigError for an
// unknown key, an invalid value of this setting or an unreadable config file.
std::optional<std::string> find_setting_text(const ConfigSources& sources, std::string_view key);

std::string_view to_string(Origin origin);  // "built-in", "config file", ...
std::string_view to_string(AckMode mode);
std::string_view to_string(QueueFullPolicy policy);
std::string_view to_string(SpoolSync mode);

// The dead-letter file used when dead_letter is not set: dead-letter.ndjson beside the socket.
std::string default_dead_letter(std::string_view socket);

// The spool folder used when spool_dir is not set, from the environment the daemon runs in.
std::string default_spool_dir(const Environment& environment, bool running_as_root);

}  // namespace avr_webhookd
