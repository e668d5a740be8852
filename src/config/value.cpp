#include "value.hpp"

#include <avr_webhookd/common/js_json.hpp>
#include <avr_webhookd/common/url.hpp>

namespace avr_webhookd::config_detail {

namespace {
constexpr std::size_t max_quoted_value = 200;
}  // namespace

std::string quoted_text(std::string_view text) {
    std::string out;
    append_js_string(out, text.substr(0, max_quoted_value));
    return text.size() > max_quoted_value ? out + "..." : out;
}

std::string shown_value(std::string_view key, bool secret, std::string_view text) {
    if (secret) {
        return "<redacted>";
    }
    return quoted_text(key == "url" ? redact_url(text) : std::string{text});
}

void Value::fail(std::string_view problem) const {
    throw ConfigError(std::string{info.key}, "invalid setting " + std::string{info.key} + " (" + raw.where +
                                                 ") = " + shown_value(info.key, info.secret, raw.text) + ": " +
                                                 std::string{problem});
}

}  // namespace avr_webhookd::config_detail
