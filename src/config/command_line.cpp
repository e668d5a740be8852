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

#include <algorithm>
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
    "foo_bar in the config file (precedence in that order). More receivers (destinations) take the\n"
    "per-receiver settings (url, secret, types ...) as --destination-NAME-KEY, WEBHOOK_DESTINATION_NAME_KEY\n"
    "or KEY in a [destination NAME] section of the config file. Settings:\n";

// --destination-NAME-KEY VALUE and --destination-NAME-KEY=VALUE: destinations are not known
// options (their names are the user's), so they are taken out before the options are parsed.
// Returns the arguments left; an unknown per-destination key stays in them for the parser to
// report.
std::vector<std::string> take_destination_flags(std::span<const std::string> args,
                                                std::map<std::string, std::string>& taken) {
    std::vector<std::string> rest;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view arg = args[i];
        if (!arg.starts_with("--destination-")) {
            rest.push_back(args[i]);
            continue;
        }
        const auto equals = arg.find('=');
        std::string key{arg.substr(2, equals == std::string_view::npos ? std::string_view::npos : equals - 2)};
        std::replace(key.begin(), key.end(), '-', '_');
        if (!split_destination_key(key)) {
            rest.push_back(args[i]);
            continue;
        }
        std::string value;
        if (equals != std::string_view::npos) value = arg.substr(equals + 1);
        else if (i + 1 < args.size() && !args[i + 1].starts_with("--")) value = args[++i];
        else throw ConfigError(key, "--" + flag_name(key) + " needs a value");
        if (!taken.emplace(key, std::move(value)).second)
            throw ConfigError(key, "--" + flag_name(key) + " is given more than once");
    }
    return rest;
}

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
    std::map<std::string, std::string> destination_flags;
    try {
        const std::vector<std::string> arguments = take_destination_flags(args, destination_flags);
        po::store(po::command_line_parser(arguments).options(options).run(), vm);
        po::notify(vm);
    } catch (const po::error& error) {
        err << "avr-webhookd: " << error.what() << " (see avr-webhookd --help)\n";
        return exit_code::usage;
    } catch (const ConfigError& error) {  // a --destination-NAME-KEY flag without a value, or twice
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
    auto sources = config_sources(vm, env);
    sources.command_line.merge(destination_flags);
    return sources;
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
