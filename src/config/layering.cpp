#include "layering.hpp"
#include "setting_table.hpp"
#include "suggestion.hpp"

#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/config/config_file.hpp>
#include <avr_webhookd/config/settings.hpp>

#include <algorithm>
#include <filesystem>

namespace avr_webhookd::config_detail {

namespace {

constexpr std::string_view variable_prefix = "WEBHOOK_";

// The file to read, or "" for none.
std::string config_file_to_read(const ConfigSources& sources) {
    std::optional<std::string> named = sources.config_file;
    std::string named_by = "--config";
    if (!named) {
        if (const auto variable = sources.environment.find(std::string{config_file_variable});
            variable != sources.environment.end()) {
            named = variable->second;
            named_by = std::string{config_file_variable};
        }
    }
    if (named) {
        std::error_code error;
        if (!named->empty() && !std::filesystem::exists(*named, error)) {
            throw ConfigError("config", "config file " + *named + " (from " + named_by + ") does not exist");
        }
        return *named;
    }
    std::error_code error;
    return std::filesystem::exists(sources.default_file, error) ? sources.default_file : std::string{};
}

RawValues from_config_file(const std::string& path) {
    RawValues raw;
    for (auto& entry : read_config_file(path)) {
        raw[entry.key] =
            RawValue{std::move(entry.value), Origin::config_file, path + " line " + std::to_string(entry.line)};
    }
    return raw;
}

}  // namespace

bool is_setting_key(std::string_view key) { return find_setting(key) || split_destination_key(key); }

RawValues gather_raw_values(const ConfigSources& sources, LoadedConfig& loaded) {
    loaded.config_file_used = config_file_to_read(sources);
    RawValues raw = loaded.config_file_used.empty() ? RawValues{} : from_config_file(loaded.config_file_used);

    for (const auto& [variable, text] : sources.environment) {
        if (!variable.starts_with(variable_prefix) || variable == config_file_variable) {
            continue;
        }
        const auto key = ascii_lower(std::string_view{variable}.substr(variable_prefix.size()));
        if (is_setting_key(key) && environment_name(key) == variable) {
            raw[key] = RawValue{text, Origin::environment, variable};
        } else {
            loaded.warnings.push_back("ignoring unknown environment variable " + variable +
                                      suggestion(key, environment_name));
        }
    }
    for (const auto& [given_key, text] : sources.command_line) {
        std::string key = given_key;
        std::replace(key.begin(), key.end(), '-', '_');
        if (!is_setting_key(key)) {
            throw ConfigError(key, "unknown setting " + quoted_text(key) + " on the command line" + suggestion(key));
        }
        raw[key] = RawValue{text, Origin::command_line, "--" + flag_name(key)};
    }
    return raw;
}

}  // namespace avr_webhookd::config_detail
