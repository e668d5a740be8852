#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

// A webhook endpoint, split into what a connection and a request need.
struct Url {
    bool tls = false;         // https
    std::string host;         // lower-cased name, IPv4 literal, or IPv6 literal without brackets
    std::string port;         // always set: the explicit port (canonical decimal) or 80/443
    std::string target;       // path and query exactly as written, "/" when the path is empty
    std::string host_header;  // host, plus ":port" when not the scheme's default; IPv6 in brackets
};

// Parses an absolute http:// or https:// URL. Accepts a host name, an IPv4 literal or a
// bracketed IPv6 literal, and an optional port 1..65535. The path and query are kept byte-exact,
// a fragment is dropped. Rejected: other schemes, user:password@ (the secret belongs in the
// `secret` setting, not in a URL that ends up in logs), whitespace, control characters and
// non-ASCII bytes anywhere (they must be percent-encoded), IPv6 zone ids.
// On failure returns nullopt and, when `error` is given, stores a one-line reason in it.
std::optional<Url> parse_url(std::string_view text, std::string* error = nullptr);

}  // namespace avr_webhookd
