#pragma once

namespace avr_webhookd {

// Exit statuses of the daemon and every subcommand, the one list of them (sysexits.h where one
// fits). README's "Commands and exit statuses" and the tests rely on these numbers.
namespace exit_code {
inline constexpr int ok = 0;
// The command ran and the answer is no: lines rejected (send), unhealthy or unreachable
// (healthcheck, which also uses it for every other problem, as container health checks expect),
// or the daemon / receiver could not start (socket in use, cannot bind, ...).
inline constexpr int failure = 1;
// A tool could not do its job at all, as grep and diff use 2: bad options (receive), the socket
// or an input unusable, the daemon refused the connection (send).
inline constexpr int trouble = 2;
inline constexpr int usage = 64;          // EX_USAGE: bad command line of the daemon or check-config
inline constexpr int software = 70;       // EX_SOFTWARE: an internal error
inline constexpr int cannot_create = 73;  // EX_CANTCREAT: a file or directory could not be created
inline constexpr int config = 78;         // EX_CONFIG: an invalid setting
}  // namespace exit_code

}  // namespace avr_webhookd
