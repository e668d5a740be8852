#include <avr_webhookd/common/host_port.hpp>

#include <arpa/inet.h>

#include <algorithm>

namespace avr_webhookd {
namespace {

using Kind = HostPortError::Kind;

constexpr std::size_t max_host_name_length = 253;
constexpr std::size_t max_label_length = 63;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_name_character(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

std::optional<HostPort> fail(HostPortError* error, Kind kind, std::string message) {
    if (error) *error = HostPortError{kind, std::move(message)};
    return std::nullopt;
}

std::optional<std::string> host_name_problem(std::string_view host) {
    if (host.size() > max_host_name_length) return "host name is longer than 253 characters";
    if (std::all_of(host.begin(), host.end(), [](char c) { return is_digit(c) || c == '.'; })) {
        in_addr address{};
        if (inet_pton(AF_INET, std::string(host).c_str(), &address) != 1)
            return "invalid IPv4 address '" + std::string(host) + "'";
        return std::nullopt;
    }
    std::size_t label_start = 0;
    while (true) {
        const auto dot = host.find('.', label_start);
        const auto label =
            host.substr(label_start, dot == std::string_view::npos ? std::string_view::npos : dot - label_start);
        if (label.empty()) return "host name '" + std::string(host) + "' has an empty label";
        if (label.size() > max_label_length) return "host name label longer than 63 characters";
        for (const char c : label)
            if (!is_name_character(c)) return "invalid character '" + std::string(1, c) + "' in host name";
        if (dot == std::string_view::npos) return std::nullopt;
        label_start = dot + 1;
    }
}

std::optional<std::string> ipv6_literal_problem(std::string_view literal) {
    if (literal.find('%') != std::string_view::npos) return "IPv6 zone ids are not supported";
    in6_addr address{};
    if (inet_pton(AF_INET6, std::string(literal).c_str(), &address) != 1)
        return "invalid IPv6 address '" + std::string(literal) + "'";
    return std::nullopt;
}

// The port's value, or the error. The message never repeats a port that is not all digits: in a
// URL it may be part of a password holding a '/' (user:pa/ss@h).
std::optional<std::uint16_t> parse_port(std::string_view text, PortRule rule, HostPortError* error) {
    if (text.empty()) {
        fail(error, Kind::empty_port, "port is empty");
        return std::nullopt;
    }
    if (!std::all_of(text.begin(), text.end(), is_digit)) {
        fail(error, Kind::port_not_number, "the port is not a number");
        return std::nullopt;
    }
    unsigned long value = 0;
    for (const char c : text) {
        value = value * 10 + static_cast<unsigned long>(c - '0');
        if (value > 65535) break;
    }
    const bool zero_allowed = rule == PortRule::required_or_zero && text == "0";
    if ((value == 0 && !zero_allowed) || value > 65535) {
        fail(error, Kind::port_out_of_range,
             "port '" + std::string(text) + "' is outside " + (rule == PortRule::required_or_zero ? "0" : "1") +
                 "..65535");
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(value);
}

}  // namespace

std::optional<HostPort> parse_host_port(std::string_view text, PortRule rule, HostPortError* error) {
    HostPort result;
    std::string_view host;
    std::optional<std::string_view> port_text;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return fail(error, Kind::unclosed_bracket, "IPv6 address lacks its ']'");
        host = text.substr(1, close - 1);
        result.ipv6 = true;
        const auto after = text.substr(close + 1);
        if (!after.empty() && !after.starts_with(':'))
            return fail(error, Kind::text_after_bracket, "unexpected characters after the IPv6 address");
        if (!after.empty()) port_text = after.substr(1);
    } else {
        const auto colon = text.find(':');
        host = text.substr(0, colon);
        if (colon != std::string_view::npos) port_text = text.substr(colon + 1);
    }
    if (host.empty()) return fail(error, Kind::no_host, "no host");
    if (const auto problem = result.ipv6 ? ipv6_literal_problem(host) : host_name_problem(host))
        return fail(error, Kind::invalid_host, *problem);
    result.host = host;
    if (!port_text) {
        if (rule != PortRule::optional) return fail(error, Kind::missing_port, "no port (expected HOST:PORT)");
        return result;
    }
    result.port = parse_port(*port_text, rule, error);
    if (!result.port) return std::nullopt;
    return result;
}

std::string format_host_port(std::string_view host, std::uint16_t port) {
    const bool bracketed = host.find(':') != std::string_view::npos;
    return (bracketed ? "[" + std::string(host) + "]" : std::string(host)) + ":" + std::to_string(port);
}

}  // namespace avr_webhookd
