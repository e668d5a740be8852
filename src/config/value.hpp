#pragma once
// Internal to src/config/: a setting's text on its way to a typed value.

#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/config/settings.hpp>

#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace avr_webhookd::config_detail {

// A setting's text as given, with where it was given for origins and error messages.
struct RawValue {
    std::string text;
    Origin origin = Origin::built_in;
    std::string where;  // "WEBHOOK_TIMEOUT", "--timeout", "/etc/x.conf line 12"
};

using RawValues = std::map<std::string, RawValue, std::less<>>;

// Quoted and escaped as a JSON string, long text cut, so an error stays on one line.
std::string quoted_text(std::string_view text);

// The value as it may appear in an error message: secrets as <redacted>, the url redacted.
std::string shown_value(std::string_view key, bool secret, std::string_view text);

// The value being applied to one setting; reject() throws the one-line error for it.
struct Value {
    const SettingInfo& info;
    const RawValue& raw;

    std::string_view text() const { return raw.text; }

    [[noreturn]] void reject(std::string_view expected) const { fail("expected " + std::string{expected}); }
    [[noreturn]] void fail(std::string_view problem) const;
};

}  // namespace avr_webhookd::config_detail
