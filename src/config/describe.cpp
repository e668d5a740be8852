#include <avr_webhookd/config/describe.hpp>

#include "setting_table.hpp"

#include <avr_webhookd/config/settings.hpp>

namespace avr_webhookd {

namespace {

// "environment WEBHOOK_TIMEOUT", "command line --timeout", "config file /etc/x.conf", "built-in".
std::string where_text(std::string_view key, Origin origin, const LoadedConfig& loaded) {
    const std::string kind{to_string(origin)};
    switch (origin) {
    case Origin::config_file:
        return kind + " " + loaded.config_file_used;
    case Origin::environment:
        return kind + " " + environment_name(key);
    case Origin::command_line:
        return kind + " --" + flag_name(key);
    case Origin::built_in:
        break;
    }
    return kind;
}

// A named destination as the config file section that sets it, each value with its origin.
std::string describe_destination(const LoadedConfig& loaded, const Destination& destination) {
    const Config config = config_for(loaded.config, destination);
    const std::string prefix = "destination_" + destination.name + "_";
    std::string out = "[destination " + destination.name + "]\n";
    for (const auto& setting : config_detail::setting_table()) {
        const auto key = setting.info.key;
        if (!is_receiver_setting(key)) continue;
        const std::string full_key = prefix + std::string{key};
        const auto origin = loaded.origins.find(full_key);
        const auto where = origin == loaded.origins.end() ? std::string{"built-in"}
                           : key == "secret" && !destination.secret_file.empty()
                               ? "read from secret_file"
                               : where_text(full_key, origin->second, loaded);
        out += std::string{key} + " = " + setting.format(config) + "  (" + where + ")\n";
    }
    return out;
}

}  // namespace

std::string describe(const LoadedConfig& loaded) {
    std::string out;
    for (const auto& setting : config_detail::setting_table()) {
        const auto key = setting.info.key;
        const auto origin = loaded.origins.find(std::string{key});
        const auto where = origin == loaded.origins.end() ? std::string{"built-in"}
                           : key == "secret" && !loaded.config.secret_file.empty()
                               ? "read from secret_file"
                               : where_text(key, origin->second, loaded);
        out += std::string{key} + " = " + setting.format(loaded.config) + "  (" + where + ")\n";
    }
    for (const auto& destination : loaded.config.destinations) out += describe_destination(loaded, destination);
    return out;
}

}  // namespace avr_webhookd
