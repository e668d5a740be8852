#pragma once
// Internal to src/config/: the settings' texts gathered from every source by precedence.

#include "value.hpp"

#include <avr_webhookd/config/config.hpp>

namespace avr_webhookd::config_detail {

// A global setting's key or a destination's (destination_NAME_KEY).
bool is_setting_key(std::string_view key);

// Every given setting's text, by precedence: command line over environment over config file.
// Sets loaded.config_file_used and adds a warning for each unknown WEBHOOK_* variable. Throws
// ConfigError for an unknown key on the command line and for config file errors.
RawValues gather_raw_values(const ConfigSources& sources, LoadedConfig& loaded);

}  // namespace avr_webhookd::config_detail
