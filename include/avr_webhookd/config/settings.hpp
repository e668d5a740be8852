#pragma once

#include <avr_webhookd/config/config.hpp>

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd {

// One row of the settings table, the one list of settings: it drives the command-line flags,
// the environment variables, the config-file keys, check-config's output and what a reload may
// change.
struct SettingInfo {
    std::string_view key;   // foo_bar
    std::string_view help;  // one line
    bool secret;            // value never printed
    bool reloadable;        // a reload (SIGHUP) applies it; false: only a restart does
};

// Every setting, in documentation order.
std::span<const SettingInfo> all_settings();

std::string flag_name(std::string_view key);         // max_line -> max-line (the flag without its "--")
std::string environment_name(std::string_view key);  // max_line -> WEBHOOK_MAX_LINE

// For a reload: puts the running value of every setting that is not reloadable back into
// `fresh`, so the next reload compares against what actually runs. Returns the keys of those
// whose value the reload asked to change, in table order, for a warning each.
std::vector<std::string_view> keep_restart_only_settings(Config& fresh, const Config& running);

}  // namespace avr_webhookd
