#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd {

// A webhook endpoint, split into what a connection and a request need.
struct Url {
    bool tls = false;           // https
    std::string host;           // lower-cased name, IPv4 literal, or IPv6 literal without brackets
    std::string port;           // always set: the explicit port (canonical decimal) or 80/443
    std::string target;         // path and query exactly as written, "/" when the path is empty
    std::string host_header;    // host, plus ":port" when not the scheme's default; IPv6 in brackets
    std::string authorization;  // "Basic <base64>" from user:password@ (as axios sends it), else empty
};

// Parses an absolute http:// or https:// URL. Accepts a host name, an IPv4 literal or a
// bracketed IPv6 literal, and an optional port 1..65535. The path and query are kept byte-exact,
// a fragment is dropped. `user:password@` becomes an `Authorization: Basic` value, as AVR Core's
// axios sends it (both parts percent-decoded first). Rejected: other schemes, whitespace, control
// characters and non-ASCII bytes anywhere (they must be percent-encoded), bad percent-encoding in
// the credentials, IPv6 zone ids. This is the one validation of `url`: check-config and the
// daemon both call it. On failure returns nullopt and, when `error` is given, stores a one-line
// reason in it.
std::optional<Url> parse_url(std::string_view text, std::string* error = nullptr);

// A destination that publishes to NATS JetStream: `url` is one or more comma-separated
// nats://[CREDENTIALS@]HOST[:PORT] (or tls:// for TLS) entries, the servers of one cluster.
struct NatsUrl {
    bool tls = false;                  // tls://: TLS from the start (nats:// upgrades when a server demands it)
    std::vector<std::string> servers;  // "nats://host:port" each, credentials removed, port filled in (4222)
    // From CREDENTIALS@ (percent-decoded): "user:password" gives user and password, a lone
    // "token" gives token. Every entry that carries them must carry the same.
    std::string user;
    std::string password;
    std::string token;
    bool operator==(const NatsUrl&) const = default;
};

// True when `text` starts with nats:// or tls:// (any case): a JetStream destination.
bool is_nats_url(std::string_view text);

// Parses a NATS server list. Each entry: scheme nats:// or tls:// (all entries alike), an optional
// user:password@ or token@, a host (name, IPv4 or [IPv6]) and an optional port (default 4222); no
// path, query or fragment. At most 64 entries. Rejected like parse_url: spaces, control and
// non-ASCII bytes, bad percent-encoding; entries whose credentials differ. The error never quotes
// credentials.
std::optional<NatsUrl> parse_nats_url(std::string_view text, std::string* error = nullptr);

// The URL as logs, check-config and dead-letter blocks show it. Webhook URLs often carry their
// token in the path (Slack: /services/T000/B000/XXXX), so only scheme, host, port and the first
// path segment are kept: credentials become `<redacted>@`, the rest of the path `/<redacted>`,
// the query `?<redacted>`, and a fragment is dropped.
//   https://u:p@hooks.slack.com/services/T0/B0/XYZ?a=1  ->
//   https://<redacted>@hooks.slack.com/services/<redacted>?<redacted>
// Works on any text, valid URL or not, so error messages about a bad URL are redacted the same way.
// A NATS server list (is_nats_url) is redacted entry by entry:
//   nats://u:p@n1:4222,nats://u:p@n2:4222  ->  nats://<redacted>@n1:4222,nats://<redacted>@n2:4222
std::string redact_url(std::string_view url);

// Less than redact_url: scheme, host and port only, no credentials, path or query, for what
// the status page and `status` show of a destination and in its failure blocks:
//   https://u:p@hooks.slack.com/services/T0/B0/XYZ?a=1  ->  https://hooks.slack.com
// Works on any text like redact_url (a host it cannot tell from a password is <redacted>).
std::string url_origin(std::string_view url);

}  // namespace avr_webhookd
