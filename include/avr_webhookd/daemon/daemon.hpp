#pragma once

#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/ops/logger.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>

namespace avr_webhookd {

struct AdminStatus;

// Wires intake, delivery, the admin endpoint, signals and systemd notification together and
// runs them on one io_context until SIGTERM/SIGINT. SIGHUP reloads the configuration.
class Daemon {
public:
    // `sources` are kept so SIGHUP can reload with the same command line.
    Daemon(ConfigSources sources, LoadedConfig loaded, Logger& logger);
    ~Daemon();

    // Runs until shut down; returns exit_code::ok. Throws std::runtime_error for start-up
    // failures (socket in use, cannot bind, dead-letter file not writable).
    int run();

private:
    struct State;
    boost::asio::awaitable<void> handle_signals(State& state);
    boost::asio::awaitable<void> shut_down(State& state);
    boost::asio::awaitable<void> finish_intake(State& state, std::chrono::steady_clock::duration budget);
    boost::asio::awaitable<void> keep_watchdog_fed(State& state, std::chrono::microseconds interval);
    void reload_configuration(State& state);
    void start_status(State& state, std::function<AdminStatus()> status, std::function<void()> update_gauges);
    void stop_admin(State& state);
    ConfigSources sources_;
    LoadedConfig loaded_;
    Logger& logger_;
};

}  // namespace avr_webhookd
