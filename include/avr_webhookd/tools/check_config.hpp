#pragma once

#include <avr_webhookd/common/command.hpp>

namespace avr_webhookd {

// `avr-webhookd check-config [--config FILE] [--SETTING VALUE ...]`: validates the configuration
// exactly as the daemon does at start and at reload (load_config) and prints the effective
// settings with where each value came from (config/describe.hpp) to `out`, warnings to `err`.
// Returns exit_code::ok, config for an invalid setting, usage for a bad command line.
int run_check_config_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err);

}  // namespace avr_webhookd
