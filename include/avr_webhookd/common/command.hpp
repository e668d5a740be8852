#pragma once

#include <avr_webhookd/common/environment.hpp>
#include <avr_webhookd/common/exit_codes.hpp>

#include <iosfwd>
#include <span>
#include <string>

namespace avr_webhookd {

// The one shape of every subcommand (run, check-config, send, receive, healthcheck): the
// arguments after the subcommand's name, the environment, where to print results and where to
// print problems. Returns an exit code from common/exit_codes.hpp.
using CommandArguments = std::span<const std::string>;
using Command = int (*)(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err);

}  // namespace avr_webhookd
