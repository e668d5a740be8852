#pragma once

#include <avr_webhookd/common/command.hpp>

namespace avr_webhookd {

// `avr-webhookd receive [--listen HOST:PORT] [--secret S] [--signature MODE] [--tls-cert C
// --tls-key K] [failure switches]`: runs the Receiver (tools/receiver.hpp), printing each
// delivery to `out`, until SIGINT/SIGTERM. Returns exit_code::ok after a signal, failure when it
// cannot start (bad address, busy port, unreadable TLS files), trouble for bad options.
int run_receive_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err);

}  // namespace avr_webhookd
