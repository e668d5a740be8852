#pragma once

#include <avr_webhookd/config/config.hpp>

#include <iosfwd>
#include <string>
#include <vector>

namespace avr_webhookd {

// `avr-webhookd spool-status [--spool-dir DIR] [--config FILE]`: how many events wait in the
// spool, for how many calls, and the oldest, read from the files alone (no lock, no change), so
// it works whether the daemon runs or not. Exit 0, or 1 when the folder cannot be read.
int run_spool_status_command(const std::vector<std::string>& args, const Environment& env, std::ostream& out,
                             std::ostream& err);

}  // namespace avr_webhookd
