#pragma once
// Shared by the config unit tests: what load_config says about a configuration.

#include <avr_webhookd/config/config.hpp>

#include <string>

namespace avr_webhookd::test {

// "<setting>: <message>" of the ConfigError load_config throws, or "accepted".
inline std::string config_error_of(const ConfigSources& sources) {
    try {
        load_config(sources);
    } catch (const ConfigError& error) {
        return error.setting + ": " + error.what();
    }
    return "accepted";
}

}  // namespace avr_webhookd::test
