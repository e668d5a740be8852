#include <avr_webhookd/config/config.hpp>

#include <algorithm>
#include <array>

// Destinations: the one place that knows which settings are per receiver, how a destination's
// key is spelled, and how a destination's settings become the Config its delivery runs with.
namespace avr_webhookd {

namespace {

constexpr std::string_view destination_prefix = "destination_";
constexpr std::size_t max_destination_name = 32;

constexpr std::array<std::string_view, 22> receiver_settings{
    "url",       "secret",        "secret_file",     "signature",      "timeout",
    "retry",     "retry_base",    "retry_max_delay", "max_age",        "agent_id",
    "ca_file",   "tls_verify",    "concurrency",     "types",          "subject",
    "user",      "password_file", "token_file",      "nkey_seed_file", "creds_file",
    "cert_file", "key_file"};

Destination receiver_of(const Config& c, std::string name) {
    return Destination{std::move(name), c.url,         c.secret,          c.secret_file, c.signature, c.timeout,
                       c.retry,         c.retry_base,  c.retry_max_delay, c.max_age,     c.agent_id,  c.ca_file,
                       c.tls_verify,    c.concurrency, c.types,           c.nats};
}

void apply(Config& c, const Destination& d) {
    c.url = d.url;
    c.secret = d.secret;
    c.secret_file = d.secret_file;
    c.signature = d.signature;
    c.timeout = d.timeout;
    c.retry = d.retry;
    c.retry_base = d.retry_base;
    c.retry_max_delay = d.retry_max_delay;
    c.max_age = d.max_age;
    c.agent_id = d.agent_id;
    c.ca_file = d.ca_file;
    c.tls_verify = d.tls_verify;
    c.concurrency = d.concurrency;
    c.types = d.types;
    c.nats = d.nats;
}

}  // namespace

bool is_receiver_setting(std::string_view key) {
    return std::find(receiver_settings.begin(), receiver_settings.end(), key) != receiver_settings.end();
}

bool valid_destination_name(std::string_view name) {
    if (name.empty() || name.size() > max_destination_name || name == default_destination_name) return false;
    if (name.front() < 'a' || name.front() > 'z') return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

// destination_crm_retry_base -> {crm, retry_base}: the name ends at the first '_' after the
// prefix (names have none), so a key reads one way only and no global setting starts like it.
std::optional<DestinationKey> split_destination_key(std::string_view key) {
    if (!key.starts_with(destination_prefix)) return std::nullopt;
    key.remove_prefix(destination_prefix.size());
    const auto end = key.find('_');
    if (end == std::string_view::npos) return std::nullopt;
    const auto name = key.substr(0, end);
    const auto setting = key.substr(end + 1);
    if (!valid_destination_name(name) || !is_receiver_setting(setting)) return std::nullopt;
    return DestinationKey{std::string{name}, std::string{setting}};
}

std::vector<Destination> all_destinations(const Config& config) {
    std::vector<Destination> all;
    all.reserve(config.destinations.size() + 1);
    all.push_back(receiver_of(config, std::string{default_destination_name}));
    all.insert(all.end(), config.destinations.begin(), config.destinations.end());
    return all;
}

Config config_for(const Config& config, const Destination& destination) {
    Config result = config;
    result.destinations.clear();
    apply(result, destination);
    return result;
}

Destination destination_from(const Config& receiver, std::string name) {
    return receiver_of(receiver, std::move(name));
}

}  // namespace avr_webhookd
