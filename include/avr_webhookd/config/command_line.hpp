#pragma once

#include <avr_webhookd/config/config.hpp>

#include <iosfwd>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <variant>

namespace boost::program_options {
class options_description;
class variables_map;
}  // namespace boost::program_options

namespace avr_webhookd {

// Registers --foo-bar for every setting plus --config. Boolean flags given alone mean true.
void add_setting_options(boost::program_options::options_description& options);
// The settings given on the command line, key -> raw text.
std::map<std::string, std::string> command_line_settings(const boost::program_options::variables_map& vm);
// --config's value, if given.
std::optional<std::string> command_line_config_file(const boost::program_options::variables_map& vm);
// All three sources at once.
ConfigSources config_sources(const boost::program_options::variables_map& vm, Environment environment);

// The command line of `run` and `check-config`: every setting as --foo-bar, --config, --help and
// --version. Returns the sources to load, or the exit code when there is nothing more to do:
// --help and --version print to `out` (exit_code::ok), a bad command line says so on `err`
// (exit_code::usage).
std::variant<ConfigSources, int> parse_settings_command_line(std::span<const std::string> args, const Environment& env,
                                                             std::ostream& out, std::ostream& err);

// True when stderr is connected to the journal (JOURNAL_STREAM in `env` names fd 2).
bool stderr_is_journal(const Environment& env);

// An invalid configuration as run and check-config report it: one line on `err`, after the
// journald priority prefix <3> when stderr is the journal.
void report_config_error(const ConfigError& error, const Environment& env, std::ostream& err);

}  // namespace avr_webhookd
