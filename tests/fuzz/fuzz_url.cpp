// URL parsing and the redaction every logged URL goes through: never crash, and the redacted
// text never shows credentials or a query, whatever the input.
//
// Input: the URL text itself.
#include <avr_webhookd/common/url.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace avr_webhookd;

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

constexpr std::string_view marker = "<redacted>";

// The authority of redacted text shows '@' only as "<redacted>@", and a query only as "?<redacted>".
void check_redacted(std::string_view redacted) {
    const auto scheme_end = redacted.find("://");
    const auto authority_begin = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
    const auto rest = redacted.substr(authority_begin);
    const auto authority = rest.substr(0, rest.find_first_of("/?#"));
    if (const auto at = authority.find('@'); at != std::string_view::npos) {
        check(authority.starts_with("<redacted>@"));
        check(authority.find('@', at + 1) == std::string_view::npos);
    }
    const auto after_authority = rest.substr(authority.size());
    if (const auto query = after_authority.find('?'); query != std::string_view::npos)
        check(after_authority.substr(query) == "?<redacted>");
    check(after_authority.find('#') == std::string_view::npos);  // fragments are dropped
    const auto path = after_authority.substr(0, after_authority.find('?'));
    check(path.empty() || path == "/" || path == "/<redacted>");  // no path segment is ever shown
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const std::string redacted = redact_url(text);
    check_redacted(redacted);
    check(redact_url(redacted) == redacted);  // redacting twice changes nothing more

    std::string error;
    const auto url = parse_url(text, &error);
    check(url.has_value() == error.empty());
    if (!url) return 0;
    check(!url->host.empty() && !url->port.empty() && url->target.starts_with('/'));
    for (const std::string_view field : {std::string_view(url->target), std::string_view(url->host_header)})
        for (const char c : field) check(static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f);
    check(url->authorization.empty() || url->authorization.starts_with("Basic "));
    const std::string_view after_scheme = std::string_view(redacted).substr(url->tls ? 8 : 7);
    check(url->authorization.empty() != after_scheme.starts_with("<redacted>@"));

    // What the logs show of a valid URL still names the same endpoint.
    const auto shown = parse_url(redacted);
    check(shown.has_value());
    check(shown->tls == url->tls && shown->host == url->host && shown->port == url->port);
    check(shown->target.find('?') == std::string::npos || shown->target.ends_with("?" + std::string(marker)));
    return 0;
}
