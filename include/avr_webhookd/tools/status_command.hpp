#pragma once

#include <avr_webhookd/common/command.hpp>

#include <boost/json/value.hpp>

#include <string>

namespace avr_webhookd {

// The terminal view of the admin endpoint's GET /status document (sans-io): the daemon's line,
// the intakes, the spool, a table of the destinations (state, rates over the last minute, queue,
// oldest waiting event, latency, dead letters), each destination's reason, and the newest failure
// block of each destination that has one. Every text from the document is made printable
// (control characters cannot reach the terminal). With `color`, states are coloured.
std::string render_status_text(const boost::json::value& status, bool color);

// `avr-webhookd status [--admin ADDR] [--config FILE] [--json] [--watch] [--interval 2s]
// [--timeout 2s]`: asks GET /status and prints it as render_status_text() does, or as the JSON
// itself with --json. --watch redraws it in place every interval, like top, until interrupted
// (SIGINT/SIGTERM end it with exit status 0); an unreachable daemon is shown and asked again.
// The admin address comes as for healthcheck. Returns exit_code::ok, or failure when the
// endpoint cannot be reached or does not answer 200 (and for usage errors).
int run_status_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err);

}  // namespace avr_webhookd
