#include <avr_webhookd/config/command_line.hpp>

#include "setting_table.hpp"

#include <avr_webhookd/common/exit_codes.hpp>
#include <avr_webhookd/config/settings.hpp>
#include <avr_webhookd/ops/logger.hpp>
#include <avr_webhookd/version.hpp>

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/parsers.hpp>
#include <boost/program_options/value_semantic.hpp>
#include <boost/program_options/variables_map.hpp>

#include <ostream>
#include <vector>

namespace avr_webhookd {

namespace {

using config_detail::setting_table;

constexpr std::string_view usage_text =
    "Usage: avr-webhookd [run] [--config FILE] [--SETTING VALUE ...]\n"
    "       avr-webhookd check-config [--config FILE] [--SETTING VALUE ...]\n"
    "       avr-webhookd send [--socket PATH] [FILE ...]\n"
    "       avr-webhookd receive --listen HOST:PORT [--secret S] [--signature MODE] [--tls-cert C --tls-key K]\n"
    "       avr-webhookd healthcheck [--admin ADDRESS] [--config FILE]\n"
    "       avr-webhookd spool-status [--spool-dir DIR] [--config FILE]\n"
    "\n"
    "Relays AVR call events from a Unix socket (newline-delimited JSON) to a webhook URL.\n"
    "Every setting can be given as --foo-bar, as WEBHOOK_FOO_BAR in the environment, or as\n"
    "foo_bar in the config file (precedence in that order). Settings:\n";

}  // namespace

void add_setting_options(boost::program_options::options_description& options) {
    namespace po = boost::program_options;
    const Config defaults;
    for (const auto& setting : setting_table()) {
        auto* semantic = po::value<std::string>()->value_name(std::string{setting.value_name});
        if (setting.value_name == "BOOL") {
            semantic->implicit_value("true");
        }
        const auto default_text = setting.format(defaults);
        const auto help = std::string{setting.info.help} + " [" + environment_name(setting.info.key) +
                          (default_text == "\"\"" ? "" : ", default " + default_text) + "]";
        options.add_options()(flag_name(setting.info.key).c_str(), semantic, help.c_str());
    }
    options.add_options()("config", po::value<std::string>()->value_name("FILE"),
                          ("config file (default " + std::string{default_config_file} + " if it exists) [" +
                           std::string{config_file_variable} + "]")
                              .c_str());
}

std::map<std::string, std::string> command_line_settings(const boost::program_options::variables_map& vm) {
    std::map<std::string, std::string> given;
    for (const auto& setting : setting_table()) {
        const auto found = vm.find(flag_name(setting.info.key));
        if (found != vm.end() && !found->second.defaulted()) {
            given.emplace(setting.info.key, found->second.as<std::string>());
        }
    }
    return given;
}

std::optional<std::string> command_line_config_file(const boost::program_options::variables_map& vm) {
    const auto found = vm.find("config");
    if (found == vm.end() || found->second.defaulted()) {
        return std::nullopt;
    }
    return found->second.as<std::string>();
}

ConfigSources config_sources(const boost::program_options::variables_map& vm, Environment environment) {
    ConfigSources sources;
    sources.command_line = command_line_settings(vm);
    sources.config_file = command_line_config_file(vm);
    sources.environment = std::move(environment);
    return sources;
}

std::variant<ConfigSources, int> parse_settings_command_line(std::span<const std::string> args, const Environment& env,
                                                             std::ostream& out, std::ostream& err) {
    namespace po = boost::program_options;
    po::options_description options("Options");
    options.add_options()("help,h", "show this help")("version", "print the version");
    add_setting_options(options);
    po::variables_map vm;
    try {
        const std::vector<std::string> arguments(args.begin(), args.end());
        po::store(po::command_line_parser(arguments).options(options).run(), vm);
        po::notify(vm);
    } catch (const po::error& error) {
        err << "avr-webhookd: " << error.what() << " (see avr-webhookd --help)\n";
        return exit_code::usage;
    }
    if (vm.count("help")) {
        out << usage_text << options;
        return exit_code::ok;
    }
    if (vm.count("version")) {
        out << "avr-webhookd " << version << "\n";
        return exit_code::ok;
    }
    return config_sources(vm, env);
}

bool stderr_is_journal(const Environment& env) {
    const auto journal_stream = env.find("JOURNAL_STREAM");
    return Logger::stream_is_journal(2, journal_stream == env.end() ? nullptr : journal_stream->second.c_str());
}

void report_config_error(const ConfigError& error, const Environment& env, std::ostream& err) {
    if (stderr_is_journal(env)) err << "<3>";
    err << "avr-webhookd: " << error.what() << "\n";
}

}  // namespace avr_webhookd
