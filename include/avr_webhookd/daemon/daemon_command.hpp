#pragma once

#include <avr_webhookd/common/command.hpp>

namespace avr_webhookd {

// `avr-webhookd [run] [--config FILE] [--SETTING VALUE ...]`: loads the configuration and runs
// the Daemon until SIGTERM/SIGINT. Returns exit_code::ok after a signal, config for an invalid
// setting, usage for a bad command line, failure when the daemon cannot start. Logs go to
// stderr (fd 2) through the Logger; `out` gets --help and --version.
int run_daemon_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err);

}  // namespace avr_webhookd
