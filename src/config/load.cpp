#include "layering.hpp"
#include "setting_table.hpp"
#include "value.hpp"

#include <avr_webhookd/common/duration.hpp>
#include <avr_webhookd/common/host_port.hpp>
#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/common/url.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/config/settings.hpp>
#include <avr_webhookd/delivery/nkey.hpp>
#include <avr_webhookd/delivery/signature.hpp>
#include <avr_webhookd/intake/event_parser.hpp>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

namespace avr_webhookd {

namespace {

using namespace config_detail;

constexpr std::size_t max_secret_file_size = 64 * 1024;

RawValue raw_or_built_in(const RawValues& raw, std::string_view key) {
    const auto found = raw.find(key);
    return found == raw.end() ? RawValue{"", Origin::built_in, "built-in default"} : found->second;
}

Value value_of(std::string_view key, const RawValue& raw) { return Value{find_setting(key)->info, raw}; }

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
           (host.starts_with("127.") &&
            std::all_of(host.begin(), host.end(), [](char c) { return c == '.' || (c >= '0' && c <= '9'); }));
}

// A plain secret is the credential itself: over http:// to another machine it travels readable.
bool sends_plain_secret_in_clear(const Config& config) {
    if (config.secret.empty() || config.signature != SignatureMode::plain) return false;
    const auto url = parse_url(config.url);
    return url && !url->tls && !is_loopback_host(url->host);
}

// The HTTP intake's secret: from intake_secret or intake_secret_file (not both); a listener on an
// address other than loopback must have one, or anyone who reaches the port could queue events.
void resolve_http_intake(LoadedConfig& loaded, const RawValues& raw) {
    auto& config = loaded.config;
    const auto secret = raw_or_built_in(raw, "intake_secret");
    const auto secret_file = raw_or_built_in(raw, "intake_secret_file");
    if (!config.intake_secret_file.empty()) {
        if (!config.intake_secret.empty()) {
            value_of("intake_secret_file", secret_file)
                .reject("only one of intake_secret and intake_secret_file, but intake_secret is also set (" +
                        secret.where + ")");
        }
        config.intake_secret = read_secret_file(value_of("intake_secret_file", secret_file));
        loaded.origins["intake_secret"] = secret_file.origin;
        if (readable_by_others(config.intake_secret_file)) {
            loaded.warnings.push_back("intake_secret_file " + config.intake_secret_file + " is readable by all users");
        }
    }
    if (config.http_listen.empty() || !config.intake_secret.empty()) return;
    const auto listen = parse_host_port(config.http_listen, PortRule::required_or_zero);
    if (listen && !is_loopback_host(listen->host)) {
        value_of("http_listen", raw_or_built_in(raw, "http_listen"))
            .fail("listening on " + config.http_listen +
                  ", which is not a loopback address, needs intake_secret or intake_secret_file: without it "
                  "anyone who reaches the port can queue events");
    }
}

// One receiver's setting as a Value: the default destination's (`secret`) or a named one's
// (`destination_crm_secret`), so that an error names the key the user wrote.
class ReceiverValue {
public:
    ReceiverValue(const RawValues& raw, const std::string& prefix, std::string_view setting)
        : key_(prefix + std::string{setting}), info_(find_setting(setting)->info), raw_(raw_or_built_in(raw, key_)) {}
    Value get() {
        info_.key = key_;
        return Value{info_, raw_};
    }
    const RawValue& raw() const { return raw_; }

private:
    std::string key_;
    SettingInfo info_;
    RawValue raw_;
};

// The secret from secret or secret_file (not both), with warnings where it may be read by others.
void resolve_secret(Config& config, const RawValues& raw, const std::string& prefix, LoadedConfig& loaded) {
    ReceiverValue secret(raw, prefix, "secret");
    ReceiverValue secret_file(raw, prefix, "secret_file");
    if (!config.secret_file.empty()) {
        if (!config.secret.empty()) {
            secret_file.get().reject("only one of " + prefix + "secret and " + prefix + "secret_file, but " + prefix +
                                     "secret is also set (" + secret.raw().where + ")");
        }
        config.secret = read_secret_file(secret_file.get());
        loaded.origins[prefix + "secret"] = secret_file.raw().origin;
        if (readable_by_others(config.secret_file)) {
            loaded.warnings.push_back(prefix + "secret_file " + config.secret_file + " is readable by all users");
        }
    } else if (!config.secret.empty() && secret.raw().origin == Origin::command_line) {
        loaded.warnings.push_back("--" + flag_name(prefix + "secret") +
                                  " is visible to all users in the process list; prefer " + prefix + "secret_file");
    } else if (!config.secret.empty() && secret.raw().origin == Origin::config_file &&
               readable_by_others(loaded.config_file_used)) {
        loaded.warnings.push_back("config file " + loaded.config_file_used + " holds the secret" +
                                  (prefix.empty() ? "" : " of " + prefix + "secret") + " and is readable by all users");
    }
}

// The settings only NATS destinations have, as their keys and whether each is set.
std::vector<std::pair<std::string_view, bool>> nats_only_settings(const Config& config) {
    const auto& nats = config.nats;
    return {{"subject", nats.subject != default_nats_subject},
            {"user", !nats.user.empty()},
            {"password_file", !nats.password_file.empty()},
            {"token_file", !nats.token_file.empty()},
            {"nkey_seed_file", !nats.nkey_seed_file.empty()},
            {"creds_file", !nats.creds_file.empty()},
            {"cert_file", !nats.cert_file.empty()},
            {"key_file", !nats.key_file.empty()}};
}

// A file holding a credential for NATS (password_file, token_file): read like secret_file.
std::string read_credential_file(const RawValues& raw, const std::string& prefix, std::string_view setting,
                                 LoadedConfig& loaded) {
    ReceiverValue file(raw, prefix, setting);
    auto text = read_secret_file(file.get());
    if (readable_by_others(std::string{file.raw().text}))
        loaded.warnings.push_back(prefix + std::string{setting} + " " + file.raw().text + " is readable by all users");
    return text;
}

// One way to authenticate at most; each complete.
void resolve_nats_credentials(Config& config, const RawValues& raw, const std::string& prefix, LoadedConfig& loaded) {
    auto& nats = config.nats;
    const auto url = parse_nats_url(config.url);
    if (!nats.password_file.empty()) nats.password = read_credential_file(raw, prefix, "password_file", loaded);
    if (!nats.token_file.empty()) nats.token = read_credential_file(raw, prefix, "token_file", loaded);
    if (nats.user.empty() != nats.password_file.empty())
        ReceiverValue(raw, prefix, nats.user.empty() ? "password_file" : "user")
            .get()
            .fail("user and password_file go together: set both, or neither");
    const std::vector<std::pair<std::string_view, bool>> ways{
        {"user:password@ or token@ in url", url && (!url->user.empty() || !url->token.empty())},
        {"user and password_file", !nats.user.empty()},
        {"token_file", !nats.token_file.empty()},
        {"nkey_seed_file", !nats.nkey_seed_file.empty()},
        {"creds_file", !nats.creds_file.empty()}};
    std::vector<std::string> given;
    for (const auto& [way, set] : ways)
        if (set) given.emplace_back(way);
    if (given.size() > 1)
        throw ConfigError(prefix + "url", "more than one way to authenticate to NATS for " + prefix + "url (" +
                                              join(given, ", ") + "): keep one");
    if (!nats.nkey_seed_file.empty()) {
        ReceiverValue seed(raw, prefix, "nkey_seed_file");
        std::string problem;
        if (!nkey_user_public_key_from_file_text(read_secret_file(seed.get()), &problem)) seed.get().fail(problem);
        if (readable_by_others(nats.nkey_seed_file))
            loaded.warnings.push_back(prefix + "nkey_seed_file " + nats.nkey_seed_file + " is readable by all users");
    }
    if (nats.cert_file.empty() != nats.key_file.empty())
        ReceiverValue(raw, prefix, nats.cert_file.empty() ? "key_file" : "cert_file")
            .get()
            .fail("cert_file and key_file go together: set both, or neither");
}

// A destination's url chooses its kind; the settings of the other kind are errors, not silently
// ignored: a secret must not travel in messages every consumer of a stream reads, and NATS
// credentials on a webhook would be a setting that does nothing.
void resolve_destination_kind(Config& config, const RawValues& raw, const std::string& prefix, LoadedConfig& loaded) {
    if (!is_nats_url(config.url)) {
        for (const auto& [setting, set] : nats_only_settings(config))
            if (set)
                ReceiverValue(raw, prefix, setting)
                    .get()
                    .fail("this setting is for NATS destinations (url nats:// or tls://), and " + prefix +
                          "url is an http(s) URL");
        return;
    }
    for (const std::string_view setting : {"secret", "secret_file"})
        if (!raw_or_built_in(raw, prefix + std::string{setting}).text.empty())
            ReceiverValue(raw, prefix, setting)
                .get()
                .fail(
                    "a NATS destination takes no secret: every consumer of the stream would read it; authenticate "
                    "with user and password_file, token_file, nkey_seed_file or creds_file");
    resolve_nats_credentials(config, raw, prefix, loaded);
}

// The rules of one receiver's settings (the default destination's, prefix "", or a named one's,
// prefix "destination_NAME_"): the same for every destination.
void resolve_receiver(Config& config, const RawValues& raw, const std::string& prefix, LoadedConfig& loaded) {
    if (config.url.empty()) {
        throw ConfigError(prefix + "url",
                          "missing setting " + prefix + "url: set " + environment_name(prefix + "url") + ", --" +
                              flag_name(prefix + "url") + " or " +
                              (prefix.empty() ? "url in the config file" : "url in its [destination] section") +
                              " to the receiver's http:// or https:// URL (or nats:// servers)");
    }
    resolve_destination_kind(config, raw, prefix, loaded);
    resolve_secret(config, raw, prefix, loaded);
    if (sends_plain_secret_in_clear(config)) {
        loaded.warnings.push_back(prefix + "signature = plain sends the secret as it is over http:// to " +
                                  parse_url(config.url)->host +
                                  ", which is not loopback: anyone on the path can read it; use https:// or "
                                  "signature = hmac-sha256 or standard");
    }
    if (config.secret.empty() && config.signature != SignatureMode::plain) {
        ReceiverValue(raw, prefix, "signature").get().reject("plain when no secret or secret_file is set");
    }
    // Checked against the text actually used, whichever setting supplied it.
    if (const auto problem = Signer::validate(config.signature, config.secret)) {
        ReceiverValue secret(raw, prefix, "secret");
        RawValue used{config.secret, secret.raw().origin,
                      config.secret_file.empty() ? secret.raw().where : "read from secret_file"};
        SettingInfo info = find_setting("secret")->info;
        const std::string key = prefix + "secret";
        info.key = key;
        Value{info, used}.fail(*problem);
    }
    for (const auto& type : config.types) {
        if (!config.allow_unknown_types && !is_known_event_type(type)) {
            ReceiverValue(raw, prefix, "types")
                .get()
                .reject("known event types (" + type + " is not one; see allow_unknown_types)");
        }
    }
    if (config.retry_max_delay < config.retry_base) {
        ReceiverValue(raw, prefix, "retry_max_delay")
            .get()
            .reject("a duration of at least " + prefix + "retry_base (" + format_duration(config.retry_base) + ")");
    }
}

// The named destinations: each parsed from built-in defaults (a destination never inherits the
// default's secret or URL) with the same parsers and rules as the default one.
void load_destinations(LoadedConfig& loaded, const RawValues& raw) {
    std::map<std::string, Config> named;
    for (const auto& [key, given] : raw) {
        const auto split = split_destination_key(key);
        if (!split) continue;
        auto [slot, created] = named.try_emplace(split->name);
        if (created) slot->second.allow_unknown_types = loaded.config.allow_unknown_types;
        ReceiverValue value(raw, "destination_" + split->name + "_", split->setting);
        find_setting(split->setting)->parse(slot->second, value.get());
        loaded.origins[key] = given.origin;
    }
    for (auto& [name, receiver] : named) {
        resolve_receiver(receiver, raw, "destination_" + name + "_", loaded);
        loaded.config.destinations.push_back(destination_from(receiver, name));
    }
    const auto& answering = loaded.config.respond_destination;
    if (answering != default_destination_name && !named.contains(answering)) {
        value_of("respond_destination", raw_or_built_in(raw, "respond_destination"))
            .reject("\"default\" or the name of a configured destination");
    }
    const auto& types = answering == default_destination_name ? loaded.config.types : named.at(answering).types;
    for (const auto& type : loaded.config.respond_types)
        if (!types.empty() && std::find(types.begin(), types.end(), type) == types.end())
            loaded.warnings.push_back("respond_destination " + answering + " does not take " + type +
                                      " (its types): producers of " + type + " get no answer");
    const auto& answering_url = answering == default_destination_name ? loaded.config.url : named.at(answering).url;
    if (!loaded.config.respond_types.empty() && is_nats_url(answering_url))
        loaded.warnings.push_back("respond_destination " + answering +
                                  " publishes to NATS JetStream, where no receiver answers: producers of " +
                                  join(loaded.config.respond_types, ", ") +
                                  " get the stream's acknowledgement ({\"stream\":...,\"seq\":...}); set "
                                  "respond_types = \"\" or point respond_destination at an http(s) destination");
}

// Rules that involve more than one setting, and the values derived from others.
void resolve(LoadedConfig& loaded, const RawValues& raw, const Environment& environment) {
    auto& config = loaded.config;
    resolve_receiver(config, raw, "", loaded);
    load_destinations(loaded, raw);
    if (!raw.contains("dead_letter")) {
        config.dead_letter = default_dead_letter(config.socket);
    }
    resolve_http_intake(loaded, raw);
    if (!raw.contains("spool_dir")) config.spool_dir = default_spool_dir(environment, ::geteuid() == 0);
    // Each destination's backlog is bounded by max_queue_bytes; if they do not all fit in the spool
    // together, one that is down can fill it and new events for the others are refused too.
    const auto all = config.destinations.size() + 1;
    if (all > 1 && !config.spool_dir.empty() && config.max_queue_bytes * all > config.spool_max_bytes)
        loaded.warnings.push_back(std::to_string(all) + " destinations x max_queue_bytes (" +
                                  std::to_string(config.max_queue_bytes) + ") exceed spool_max_bytes (" +
                                  std::to_string(config.spool_max_bytes) +
                                  "): a destination that is down can fill the spool for the others");
}

}  // namespace

LoadedConfig load_config(const ConfigSources& sources) {
    LoadedConfig loaded;
    const RawValues raw = gather_raw_values(sources, loaded);
    for (const auto& setting : setting_table()) {
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

}  // namespace avr_webhookd
