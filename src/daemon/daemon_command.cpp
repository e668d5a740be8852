#include <avr_webhookd/daemon/daemon_command.hpp>

#include <avr_webhookd/config/command_line.hpp>
#include <avr_webhookd/daemon/daemon.hpp>
#include <avr_webhookd/ops/logger.hpp>

#include <csignal>
#include <ostream>

namespace avr_webhookd {

int run_daemon_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err) {
    auto parsed = parse_settings_command_line(args, env, out, err);
    if (const int* done = std::get_if<int>(&parsed)) return *done;
    ConfigSources sources = std::move(std::get<ConfigSources>(parsed));

    LoadedConfig loaded;
    try {
        loaded = load_config(sources);
    } catch (const ConfigError& error) {
        report_config_error(error, env, err);
        return exit_code::config;
    }

    Logger logger({loaded.config.log_level, loaded.config.log_format, stderr_is_journal(env)});
    // A file size limit (LimitFSIZE=, ulimit -f) must fail a dead-letter write with EFBIG, which
    // is rolled back and logged, instead of killing the daemon with SIGXFSZ.
    std::signal(SIGXFSZ, SIG_IGN);
    try {
        Daemon daemon(std::move(sources), std::move(loaded), logger);
        return daemon.run();
    } catch (const std::runtime_error& error) {
        logger.error(std::string("cannot start: ") + error.what());
        return exit_code::failure;
    }
}

}  // namespace avr_webhookd
