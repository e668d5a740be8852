#pragma once
// Internal to src/config/: the settings table with what each setting does, not only what it is
// (config/settings.hpp shows the public part, SettingInfo).

#include "value.hpp"

#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/config/settings.hpp>

#include <span>
#include <string>
#include <string_view>

namespace avr_webhookd::config_detail {

using Parser = void (*)(Config&, const Value&);    // validates and stores; throws ConfigError
using Formatter = std::string (*)(const Config&);  // the value as describe() and --help show it

// The Config member a setting fills, for a reload's restart-only rule.
struct Field {
    bool (*same)(const Config&, const Config&);
    void (*copy)(Config& to, const Config& from);
};

template <auto member>
inline constexpr Field field_of{[](const Config& a, const Config& b) { return a.*member == b.*member; },
                                [](Config& to, const Config& from) { to.*member = from.*member; }};

// The same for a member of Config::nats (the settings of NATS destinations).
template <auto member>
inline constexpr Field nats_field_of{[](const Config& a, const Config& b) { return a.nats.*member == b.nats.*member; },
                                     [](Config& to, const Config& from) { to.nats.*member = from.nats.*member; }};

struct Setting {
    SettingInfo info;
    std::string_view value_name;  // for --help; "BOOL" flags mean true when given alone
    Parser parse;
    Formatter format;
    Field field;
};

std::span<const Setting> setting_table();
const Setting* find_setting(std::string_view key);  // nullptr for an unknown key

}  // namespace avr_webhookd::config_detail
