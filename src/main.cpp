// avr-webhookd: picks the subcommand and runs it. Every subcommand has the one shape of
// common/command.hpp and returns an exit code of common/exit_codes.hpp; everything else lives in
// the avr_webhookd and avr_webhookd_tools libraries.
#include <avr_webhookd/common/command.hpp>
#include <avr_webhookd/daemon/daemon_command.hpp>
#include <avr_webhookd/tools/check_config.hpp>
#include <avr_webhookd/tools/dead_letters_command.hpp>
#include <avr_webhookd/tools/healthcheck.hpp>
#include <avr_webhookd/tools/receive_command.hpp>
#include <avr_webhookd/tools/send_command.hpp>
#include <avr_webhookd/tools/spool_status.hpp>
#include <avr_webhookd/tools/status_command.hpp>

#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace {

using namespace avr_webhookd;

struct Subcommand {
    std::string_view name;
    Command run;
};

constexpr Subcommand subcommands[] = {
    {"run", run_daemon_command},
    {"check-config", run_check_config_command},
    {"send", run_send_command},
    {"receive", run_receive_command},
    {"healthcheck", run_healthcheck_command},
    {"spool-status", run_spool_status_command},
    {"status", run_status_command},
    {"dead-letters", run_dead_letters_command},
};

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::string name = "run";  // without a subcommand (or with only options) the daemon runs
    if (!args.empty() && !args.front().empty() && args.front()[0] != '-') {
        name = args.front();
        args.erase(args.begin());
    }
    try {
        for (const auto& subcommand : subcommands)
            if (subcommand.name == name) return subcommand.run(args, environment_from(environ), std::cout, std::cerr);
        std::cerr << "avr-webhookd: unknown command '" << name << "' (see avr-webhookd --help)\n";
        return exit_code::usage;
    } catch (const std::exception& error) {
        std::cerr << "avr-webhookd: internal error: " << error.what() << "\n";
        return exit_code::software;
    }
}
