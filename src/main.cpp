// avr-webhookd: parses the command line, runs the daemon or a subcommand, maps errors to exit
// statuses. Everything else lives in the avr_webhookd library.
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/daemon/daemon.hpp>
#include <avr_webhookd/tools/healthcheck.hpp>
#include <avr_webhookd/ops/logger.hpp>
#include <avr_webhookd/tools/receiver.hpp>
#include <avr_webhookd/tools/send_command.hpp>
#include <avr_webhookd/tools/spool_status.hpp>
#include <avr_webhookd/version.hpp>

#include <boost/program_options.hpp>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace {

namespace po = boost::program_options;
using namespace avr_webhookd;

constexpr std::string_view usage_text =
    "Usage: avr-webhookd [run] [--config FILE] [--SETTING VALUE ...]\n"
    "       avr-webhookd check-config [--config FILE] [--SETTING VALUE ...]\n"
    "       avr-webhookd send [--socket PATH] [FILE ...]\n"
    "       avr-webhookd receive --listen HOST:PORT [--secret S] [--signature MODE] [--tls-cert C --tls-key K]\n"
    "       avr-webhookd healthcheck [--admin ADDRESS] [--config FILE]\n"
    "       avr-webhookd spool-status [--spool-dir DIR] [--config FILE]\n"
    "\n"
    "Relays AVR call events from a Unix socket (newline-delimited JSON) to a webhook URL.\n"
    "Every setting can be given as --foo-bar, as WEBHOOK_FOO_BAR in the environment, or as\n"
    "foo_bar in the config file (precedence in that order). Settings:\n";

int run_daemon_or_check(bool check_only, const std::vector<std::string>& args) {
    po::options_description options("Options");
    options.add_options()("help,h", "show this help")("version", "print the version");
    add_setting_options(options);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(options).run(), vm);
        po::notify(vm);
    } catch (const po::error& error) {
        std::cerr << "avr-webhookd: " << error.what() << " (see avr-webhookd --help)\n";
        return exit_status::usage;
    }
    if (vm.count("help")) {
        std::cout << usage_text << options;
        return exit_status::ok;
    }
    if (vm.count("version")) {
        std::cout << "avr-webhookd " << version << "\n";
        return exit_status::ok;
    }

    const bool journald = Logger::stream_is_journal(2, std::getenv("JOURNAL_STREAM"));
    ConfigSources sources = config_sources(vm, environment_from(environ));
    LoadedConfig loaded;
    try {
        loaded = load_config(sources);
    } catch (const ConfigError& error) {
        if (journald) std::cerr << "<3>";
        std::cerr << "avr-webhookd: " << error.what() << "\n";
        return exit_status::config;
    }
    if (check_only) {
        std::cout << describe(loaded);
        for (const auto& warning : loaded.warnings) std::cerr << "warning: " << warning << "\n";
        return exit_status::ok;
    }

    Logger logger({loaded.config.log_level, loaded.config.log_format, journald});
    // A file size limit (LimitFSIZE=, ulimit -f) must fail a dead-letter write with EFBIG, which
    // is rolled back and logged, instead of killing the daemon with SIGXFSZ.
    std::signal(SIGXFSZ, SIG_IGN);
    try {
        Daemon daemon(std::move(sources), std::move(loaded), logger);
        return daemon.run();
    } catch (const std::runtime_error& error) {
        logger.error(std::string("cannot start: ") + error.what());
        return exit_status::failure;
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::string command = "run";
    if (!args.empty() && !args.front().empty() && args.front()[0] != '-') {
        command = args.front();
        args.erase(args.begin());
    }
    try {
        if (command == "run") return run_daemon_or_check(false, args);
        if (command == "check-config") return run_daemon_or_check(true, args);
        if (command == "send") return run_send_command(args, environment_from(environ), std::cout, std::cerr);
        if (command == "healthcheck") return run_healthcheck_command(args, environment_from(environ));
        if (command == "receive") return run_receive_command(argc - 1, argv + 1);
        if (command == "spool-status")
            return run_spool_status_command(args, environment_from(environ), std::cout, std::cerr);
        std::cerr << "avr-webhookd: unknown command '" << command << "' (see avr-webhookd --help)\n";
        return exit_status::usage;
    } catch (const std::exception& error) {
        std::cerr << "avr-webhookd: internal error: " << error.what() << "\n";
        return exit_status::software;
    }
}
