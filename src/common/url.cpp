#include <avr_webhookd/common/url.hpp>

#include <avr_webhookd/delivery/signature.hpp>

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

namespace avr_webhookd {
namespace {

constexpr std::size_t max_host_name_length = 253;
constexpr std::size_t max_label_length = 63;

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() &&
           std::equal(prefix.begin(), prefix.end(), text.begin(), [](char expected, char actual) {
               return std::tolower(static_cast<unsigned char>(actual)) == expected;
           });
}

std::string to_lower(std::string_view text) {
    std::string lowered(text);
    for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return lowered;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Bytes that must never reach a request line or a Host header.
std::optional<std::string> find_forbidden_byte(std::string_view text) {
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte == ' ') return "contains a space at offset " + std::to_string(i);
        if (byte < 0x20 || byte == 0x7f)
            return "contains a control character at offset " + std::to_string(i);
        if (byte >= 0x80)
            return "contains a non-ASCII byte at offset " + std::to_string(i) +
                   " (percent-encode it)";
    }
    return std::nullopt;
}

std::optional<std::string> check_host_name(std::string_view host) {
    if (host.size() > max_host_name_length) return "host name is longer than 253 characters";
    const bool looks_numeric = std::all_of(host.begin(), host.end(),
                                           [](char c) { return is_digit(c) || c == '.'; });
    if (looks_numeric) {
        in_addr address{};
        if (inet_pton(AF_INET, std::string(host).c_str(), &address) != 1)
            return "invalid IPv4 address '" + std::string(host) + "'";
        return std::nullopt;
    }
    std::size_t label_start = 0;
    while (true) {
        const auto dot = host.find('.', label_start);
        const auto label = host.substr(label_start, dot == std::string_view::npos
                                                        ? std::string_view::npos
                                                        : dot - label_start);
        if (label.empty()) return "host name '" + std::string(host) + "' has an empty label";
        if (label.size() > max_label_length)
            return "host name label longer than 63 characters";
        for (char c : label) {
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
                return "invalid character '" + std::string(1, c) + "' in host name";
        }
        if (dot == std::string_view::npos) return std::nullopt;
        label_start = dot + 1;
    }
}

std::optional<std::string> check_ipv6_literal(std::string_view literal) {
    if (literal.find('%') != std::string_view::npos)
        return "IPv6 zone ids are not supported";
    in6_addr address{};
    if (inet_pton(AF_INET6, std::string(literal).c_str(), &address) != 1)
        return "invalid IPv6 address '" + std::string(literal) + "'";
    return std::nullopt;
}

// Returns the canonical decimal port, or an error.
std::optional<std::string> parse_port(std::string_view text, std::string& error) {
    if (text.empty()) {
        error = "port is empty";
        return std::nullopt;
    }
    unsigned long value = 0;
    for (char c : text) {
        if (!is_digit(c)) {
            // The text is not repeated: it may be part of a password that holds a '/' (user:pa/ss@h).
            error = "the port is not a number (a password with '/', '?' or '#' must be percent-encoded)";
            return std::nullopt;
        }
        value = value * 10 + static_cast<unsigned long>(c - '0');
        if (value > 65535) break;
    }
    if (value < 1 || value > 65535) {
        error = "port '" + std::string(text) + "' is outside 1..65535";
        return std::nullopt;
    }
    return std::to_string(value);
}

std::optional<Url> fail(std::string* error, std::string reason) {
    if (error) *error = std::move(reason);
    return std::nullopt;
}

int hex_value(char c) {
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// %XX sequences decoded; nullopt on a '%' not followed by two hex digits.
std::optional<std::string> percent_decoded(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out.push_back(text[i]);
            continue;
        }
        if (text.size() - i < 3) return std::nullopt;
        const int high = hex_value(text[i + 1]);
        const int low = hex_value(text[i + 2]);
        if (high < 0 || low < 0) return std::nullopt;
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
    }
    return out;
}

// "user:password" (the part before the last '@') as the value of an Authorization header. The
// error never quotes the credentials.
std::optional<std::string> basic_authorization(std::string_view userinfo, std::string& error) {
    const auto colon = userinfo.find(':');
    const auto user = percent_decoded(userinfo.substr(0, colon));
    const auto password = percent_decoded(colon == std::string_view::npos ? std::string_view{} : userinfo.substr(colon + 1));
    if (!user || !password) {
        error = "the user:password@ part of the URL has a '%' not followed by two hex digits";
        return std::nullopt;
    }
    return "Basic " + base64_encode(*user + ":" + *password);
}

}  // namespace

std::optional<Url> parse_url(std::string_view text, std::string* error) {
    if (text.empty()) return fail(error, "URL is empty");
    if (auto bad = find_forbidden_byte(text)) return fail(error, "URL " + *bad);

    Url url;
    std::string_view rest;
    if (starts_with_ignoring_case(text, "https://")) {
        url.tls = true;
        rest = text.substr(8);
    } else if (starts_with_ignoring_case(text, "http://")) {
        rest = text.substr(7);
    } else {
        return fail(error, "URL must start with http:// or https://");
    }

    const auto authority_end = rest.find_first_of("/?#");
    const auto whole_authority = rest.substr(0, authority_end);
    rest = authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);

    std::string_view authority = whole_authority;
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        std::string credentials_error;
        auto authorization = basic_authorization(authority.substr(0, at), credentials_error);
        if (!authorization) return fail(error, credentials_error);
        url.authorization = std::move(*authorization);
        authority.remove_prefix(at + 1);
    }

    std::string_view host;
    std::string_view port_text;
    bool has_port = false;
    bool is_ipv6 = false;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return fail(error, "IPv6 address lacks its ']'");
        host = authority.substr(1, close - 1);
        is_ipv6 = true;
        const auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                return fail(error, "unexpected characters after the IPv6 address");
            has_port = true;
            port_text = after.substr(1);
        }
    } else {
        const auto colon = authority.find(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            has_port = true;
            port_text = authority.substr(colon + 1);
        }
    }

    if (host.empty()) return fail(error, "URL has no host");
    const auto host_problem = is_ipv6 ? check_ipv6_literal(host) : check_host_name(host);
    if (host_problem) return fail(error, *host_problem);
    url.host = to_lower(host);

    const std::string default_port = url.tls ? "443" : "80";
    if (has_port) {
        std::string port_error;
        auto port = parse_port(port_text, port_error);
        if (!port) return fail(error, port_error);
        url.port = std::move(*port);
    } else {
        url.port = default_port;
    }

    const auto fragment = rest.find('#');
    const auto path_and_query = rest.substr(0, fragment);
    if (path_and_query.empty() || path_and_query.front() == '?')
        url.target = "/";
    url.target += path_and_query;

    url.host_header = is_ipv6 ? "[" + url.host + "]" : url.host;
    if (url.port != default_port) url.host_header += ":" + url.port;
    return url;
}

namespace {

// Appends the path as "/<redacted>" ("/" stays "/"). No segment is kept: services put the token
// anywhere in the path, the first segment included (https://webhook.site/<token>).
void append_redacted_path(std::string& out, std::string_view path) {
    out.append(path.size() <= 1 ? path : std::string_view("/<redacted>"));
}

}  // namespace

std::string redact_url(std::string_view url) {
    std::string out;
    out.reserve(url.size() + 24);
    const auto scheme_end = url.find("://");
    const auto authority_begin = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
    out.append(url.substr(0, authority_begin));
    std::string_view rest = url.substr(authority_begin);

    const auto authority_end = std::min(rest.find_first_of("/?#"), rest.size());
    auto authority = rest.substr(0, authority_end);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        out.append("<redacted>@");
        authority.remove_prefix(at + 1);
    }
    // A port that is not a number is what a password holding a '/' looks like (user:pa/ss@h):
    // the authority is then shown as <redacted> and so is everything after it.
    const auto bracket = authority.rfind(']');
    const auto colon = authority.rfind(':');
    if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket) &&
        !std::all_of(authority.begin() + static_cast<std::ptrdiff_t>(colon) + 1, authority.end(), is_digit)) {
        out.append("<redacted>");
        if (!rest.substr(authority_end).empty()) out.append("/<redacted>");
        return out;
    }
    out.append(authority);
    rest.remove_prefix(authority_end);

    const auto path_end = std::min(rest.find_first_of("?#"), rest.size());
    if (path_end > 0) append_redacted_path(out, rest.substr(0, path_end));
    if (path_end < rest.size() && rest[path_end] == '?') out.append("?<redacted>");
    return out;
}

}  // namespace avr_webhookd
