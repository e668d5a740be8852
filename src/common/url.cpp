#include <avr_webhookd/common/url.hpp>

#include <avr_webhookd/common/host_port.hpp>
#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/delivery/signature.hpp>

#include <algorithm>

namespace avr_webhookd {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Bytes that must never reach a request line or a Host header.
std::optional<std::string> find_forbidden_byte(std::string_view text) {
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte == ' ') return "contains a space at offset " + std::to_string(i);
        if (byte < 0x20 || byte == 0x7f) return "contains a control character at offset " + std::to_string(i);
        if (byte >= 0x80) return "contains a non-ASCII byte at offset " + std::to_string(i) + " (percent-encode it)";
    }
    return std::nullopt;
}

// The reason an authority's host:port was refused, in the words of a URL.
std::string authority_problem(const HostPortError& error) {
    switch (error.kind) {
    case HostPortError::Kind::no_host:
        return "URL has no host";
    case HostPortError::Kind::port_not_number:
        // The text is not repeated: it may be part of a password that holds a '/' (user:pa/ss@h).
        return "the port is not a number (a password with '/', '?' or '#' must be percent-encoded)";
    default:
        return error.message;
    }
}

std::optional<Url> fail(std::string* error, std::string reason) {
    if (error) *error = std::move(reason);
    return std::nullopt;
}

std::optional<NatsUrl> fail_nats(std::string* error, std::string reason) {
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

// "user:password" or "user" (the part before the last '@'), each part percent-decoded; the
// password is empty without a ':'. The error never quotes the credentials.
struct Userinfo {
    std::string user, password;
    bool has_colon = false;
};

std::optional<Userinfo> decoded_userinfo(std::string_view userinfo, std::string& error) {
    const auto colon = userinfo.find(':');
    auto user = percent_decoded(userinfo.substr(0, colon));
    auto password = percent_decoded(colon == std::string_view::npos ? std::string_view{} : userinfo.substr(colon + 1));
    if (!user || !password) {
        error = "the user:password@ part of the URL has a '%' not followed by two hex digits";
        return std::nullopt;
    }
    return Userinfo{std::move(*user), std::move(*password), colon != std::string_view::npos};
}

// The value of an Authorization header, as AVR Core's axios sends it.
std::optional<std::string> basic_authorization(std::string_view userinfo, std::string& error) {
    const auto decoded = decoded_userinfo(userinfo, error);
    if (!decoded) return std::nullopt;
    return "Basic " + base64_encode(decoded->user + ":" + decoded->password);
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

    HostPortError address_error;
    const auto address = parse_host_port(authority, PortRule::optional, &address_error);
    if (!address) return fail(error, authority_problem(address_error));
    url.host = ascii_lower(address->host);
    url.port = std::to_string(address->port.value_or(url.tls ? 443 : 80));
    const std::string default_port = url.tls ? "443" : "80";

    const auto fragment = rest.find('#');
    const auto path_and_query = rest.substr(0, fragment);
    if (path_and_query.empty() || path_and_query.front() == '?') url.target = "/";
    url.target += path_and_query;

    url.host_header = address->ipv6 ? "[" + url.host + "]" : url.host;
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

namespace {

// A URL's text as redaction sees it; works on any text, valid URL or not.
struct UrlText {
    std::string_view scheme;   // "https://", or "" when there is no "://"
    bool credentials = false;  // a user[:password]@ part was there
    // A port that is not a number is what a password holding a '/' looks like (user:pa/ss@h):
    // none of the authority may be shown then.
    bool hidden_authority = false;
    std::string_view authority;  // host[:port], without the credentials
    std::string_view rest;       // from the first '/', '?' or '#' after the authority
};

UrlText split_url_text(std::string_view url) {
    UrlText parts;
    const auto scheme_end = url.find("://");
    const auto authority_begin = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
    parts.scheme = url.substr(0, authority_begin);
    const std::string_view rest = url.substr(authority_begin);
    const auto authority_end = std::min(rest.find_first_of("/?#"), rest.size());
    auto authority = rest.substr(0, authority_end);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        parts.credentials = true;
        authority.remove_prefix(at + 1);
    }
    const auto bracket = authority.rfind(']');
    const auto colon = authority.rfind(':');
    parts.hidden_authority =
        colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket) &&
        !std::all_of(authority.begin() + static_cast<std::ptrdiff_t>(colon) + 1, authority.end(), is_digit);
    parts.authority = authority;
    parts.rest = rest.substr(authority_end);
    return parts;
}

std::string redact_one_url(std::string_view url) {
    const auto parts = split_url_text(url);
    std::string out;
    out.reserve(url.size() + 24);
    out.append(parts.scheme);
    if (parts.credentials) out.append("<redacted>@");
    if (parts.hidden_authority) {
        out.append("<redacted>");
        if (!parts.rest.empty()) out.append("/<redacted>");
        return out;
    }
    out.append(parts.authority);
    const auto rest = parts.rest;
    const auto path_end = std::min(rest.find_first_of("?#"), rest.size());
    if (path_end > 0) append_redacted_path(out, rest.substr(0, path_end));
    if (path_end < rest.size() && rest[path_end] == '?') out.append("?<redacted>");
    return out;
}

}  // namespace

std::string redact_url(std::string_view url) {
    if (!is_nats_url(url)) return redact_one_url(url);
    // A password may hold commas and '@' ("nats://u:12,34@h"): with any '@', everything before the
    // last one is hidden, whichever entries it spans, before the rest is split at commas.
    std::string hidden;
    if (const auto at = url.rfind('@'); at != std::string_view::npos) {
        hidden = std::string(url.substr(0, url.find("://") + 3)) + "x@" + std::string(url.substr(at + 1));
        url = hidden;
    }
    std::string out;
    for (;;) {  // a server list: each entry on its own (a comma never belongs to an entry's host)
        const auto comma = url.find(',');
        out.append(redact_one_url(url.substr(0, comma)));
        if (comma == std::string_view::npos) return out;
        out.push_back(',');
        url.remove_prefix(comma + 1);
    }
}

bool is_nats_url(std::string_view text) {
    return starts_with_ignoring_case(text, "nats://") || starts_with_ignoring_case(text, "tls://");
}

namespace {

constexpr std::size_t max_nats_servers = 64;
constexpr std::uint16_t default_nats_port = 4222;

// One entry's credentials, as NatsUrl holds them.
struct NatsCredentials {
    std::string user, password, token;
    bool operator==(const NatsCredentials&) const = default;
};

// "user:password" gives a user and password, a lone "token" a token (as libnats reads a URL).
std::optional<NatsCredentials> nats_credentials(std::string_view userinfo, std::string& error) {
    auto decoded = decoded_userinfo(userinfo, error);
    if (!decoded) return std::nullopt;
    if (decoded->user.empty()) {
        error = "the credentials@ part of the URL is empty before the ':' (user:password@ or token@)";
        return std::nullopt;
    }
    if (!decoded->has_colon) return NatsCredentials{{}, {}, std::move(decoded->user)};
    return NatsCredentials{std::move(decoded->user), std::move(decoded->password), {}};
}

// One entry of the list: "nats://[credentials@]host[:port]".
std::optional<std::string> parse_nats_entry(std::string_view entry, bool& tls, bool first,
                                            std::optional<NatsCredentials>& credentials, std::string& error) {
    if (entry.empty()) {
        error = "the NATS url lists an empty server (a ',' too many)";
        return std::nullopt;
    }
    const bool entry_tls = starts_with_ignoring_case(entry, "tls://");
    if (!entry_tls && !starts_with_ignoring_case(entry, "nats://")) {
        error = "every server of a NATS url must start with nats:// or tls://";
        return std::nullopt;
    }
    if (!first && entry_tls != tls) {
        error = "the servers of a NATS url must all use the same scheme (nats:// or tls://)";
        return std::nullopt;
    }
    tls = entry_tls;
    auto authority = entry.substr(entry_tls ? 6 : 7);
    if (authority.find_first_of("/?#") != std::string_view::npos) {
        error = "a NATS server is HOST[:PORT] without a path, query or fragment";
        return std::nullopt;
    }
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        auto given = nats_credentials(authority.substr(0, at), error);
        if (!given) return std::nullopt;
        if (credentials && *credentials != *given) {
            error = "the servers of a NATS url carry different credentials (give them once, or the same on each)";
            return std::nullopt;
        }
        credentials = std::move(*given);
        authority.remove_prefix(at + 1);
    }
    HostPortError address_error;
    const auto address = parse_host_port(authority, PortRule::optional, &address_error);
    if (!address) {
        error = authority_problem(address_error);
        return std::nullopt;
    }
    const auto host = ascii_lower(address->host);
    return "nats://" + format_host_port(host, address->port.value_or(default_nats_port));
}

}  // namespace

std::optional<NatsUrl> parse_nats_url(std::string_view text, std::string* error) {
    if (text.empty()) return fail_nats(error, "URL is empty");
    if (auto bad = find_forbidden_byte(text)) return fail_nats(error, "URL " + *bad);
    NatsUrl url;
    std::optional<NatsCredentials> credentials;
    std::string problem;
    for (bool first = true;; first = false) {
        const auto comma = text.find(',');
        auto server = parse_nats_entry(text.substr(0, comma), url.tls, first, credentials, problem);
        if (!server) return fail_nats(error, problem);
        if (url.servers.size() == max_nats_servers)
            return fail_nats(error, "a NATS url lists at most " + std::to_string(max_nats_servers) + " servers");
        url.servers.push_back(std::move(*server));
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
    }
    if (credentials) {
        url.user = std::move(credentials->user);
        url.password = std::move(credentials->password);
        url.token = std::move(credentials->token);
    }
    return url;
}

std::string url_origin(std::string_view url) {
    if (is_nats_url(url)) return redact_url(url);  // a server list has no path to drop
    const auto parts = split_url_text(url);
    std::string out(parts.scheme);
    out.append(parts.hidden_authority ? std::string_view("<redacted>") : parts.authority);
    return out;
}

}  // namespace avr_webhookd
