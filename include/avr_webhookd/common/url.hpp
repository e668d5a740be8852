#pragma once

#include <optional>
#include <string>
#include <string_view>

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

// The URL as logs, check-config and dead-letter blocks show it. Webhook URLs often carry their
// token in the path (Slack: /services/T000/B000/XXXX), so only scheme, host, port and the first
// path segment are kept: credentials become `<redacted>@`, the rest of the path `/<redacted>`,
// the query `?<redacted>`, and a fragment is dropped.
//   https://u:p@hooks.slack.com/services/T0/B0/XYZ?a=1  ->
//   https://<redacted>@hooks.slack.com/services/<redacted>?<redacted>
// Works on any text, valid URL or not, so error messages about a bad URL are redacted the same way.
std::string redact_url(std::string_view url);

// Less than redact_url: scheme, host and port only, no credentials, path or query, for what
// the status page and `status` show of a destination and in its failure blocks:
//   https://u:p@hooks.slack.com/services/T0/B0/XYZ?a=1  ->  https://hooks.slack.com
// Works on any text like redact_url (a host it cannot tell from a password is <redacted>).
std::string url_origin(std::string_view url);

}  // namespace avr_webhookd
