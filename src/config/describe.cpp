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
    return out;
}

}  // namespace avr_webhookd
