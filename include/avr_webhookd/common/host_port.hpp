#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

// "host:port" and "[IPv6]:port", the one parser of them: the webhook URL's authority, the
// `admin` setting and `receive --listen` all use it.
struct HostPort {
    std::string host;                   // as written; an IPv6 literal without its brackets
    std::optional<std::uint16_t> port;  // nullopt when the text names none (PortRule::optional)
    bool ipv6 = false;                  // the host was a bracketed IPv6 literal
};

enum class PortRule {
    required,          // "host:port"; port 1..65535
    required_or_zero,  // "host:port"; port 1..65535, or exactly "0" for any free port
    optional,          // "host" or "host:port"; port 1..65535
};

struct HostPortError {
    enum class Kind {
        no_host,             // "", ":80", "[]:80"
        unclosed_bracket,    // "[::1"
        text_after_bracket,  // "[::1]x"
        invalid_host,        // "a..b", "256.1.1.1", "[::g]", "[fe80::1%eth0]", "host name"
        missing_port,        // "host" where a port is required
        empty_port,          // "host:"
        port_not_number,     // "host:http", "host:+80", "host:80x"
        port_out_of_range,   // "host:65536", "host:0" unless PortRule::required_or_zero
    };
    Kind kind = Kind::no_host;
    std::string message;  // one line; quotes at most the host or the port's digits
};

// Parses "host", "host:port", "[v6]" or "[v6]:port". The host is a DNS name (labels of letters,
// digits, '-' and '_', each 1..63 bytes, 253 in all), a dotted IPv4 address or, in brackets, an
// IPv6 address without a zone id. The port is decimal digits (leading zeros allowed). On failure
// returns nullopt and, when `error` is given, says why there.
std::optional<HostPort> parse_host_port(std::string_view text, PortRule rule, HostPortError* error = nullptr);

// "host:port", with brackets around an IPv6 literal (a host holding ':').
std::string format_host_port(std::string_view host, std::uint16_t port);

}  // namespace avr_webhookd
