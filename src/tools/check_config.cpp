#include <avr_webhookd/tools/check_config.hpp>

#include <avr_webhookd/config/command_line.hpp>
#include <avr_webhookd/config/describe.hpp>

#include <ostream>

namespace avr_webhookd {

int run_check_config_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err) {
    auto parsed = parse_settings_command_line(args, env, out, err);
    if (const int* done = std::get_if<int>(&parsed)) return *done;
    LoadedConfig loaded;
    try {
        loaded = load_config(std::get<ConfigSources>(parsed));
    } catch (const ConfigError& error) {
        report_config_error(error, env, err);
        return exit_code::config;
    }
    out << describe(loaded);
    for (const auto& warning : loaded.warnings) err << "warning: " << warning << "\n";
    return exit_code::ok;
}

}  // namespace avr_webhookd
