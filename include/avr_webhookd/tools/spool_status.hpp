#pragma once

#include <avr_webhookd/common/command.hpp>

namespace avr_webhookd {

// `avr-webhookd spool-status [--spool-dir DIR] [--config FILE]`: how many events wait in the
// spool, for how many calls, and the oldest, read from the files alone (no lock, no change), so
// it works whether the daemon runs or not. Returns exit_code::ok, or failure when the folder or a file
// in it cannot be read (also for usage errors and when the spool is off).
int run_spool_status_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err);

}  // namespace avr_webhookd
