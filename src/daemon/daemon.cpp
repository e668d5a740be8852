#include <avr_webhookd/daemon/daemon.hpp>
#include <avr_webhookd/common/rethrow.hpp>

#include <avr_webhookd/common/exit_codes.hpp>
#include <avr_webhookd/config/settings.hpp>

#include <avr_webhookd/ops/admin_server.hpp>
#include <avr_webhookd/daemon/status_sampler.hpp>
#include <avr_webhookd/delivery/destinations.hpp>
#include <avr_webhookd/common/duration.hpp>
#include <avr_webhookd/intake/http_intake_server.hpp>
#include <avr_webhookd/intake/intake_server.hpp>
#include <avr_webhookd/ops/metrics.hpp>
#include <avr_webhookd/ops/sd_notify.hpp>
#include <avr_webhookd/spool/spool.hpp>
#include <avr_webhookd/spool/spool_error.hpp>
#include <avr_webhookd/version.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <memory>
#include <optional>

namespace avr_webhookd {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;

namespace {

constexpr auto intake_close_budget = std::chrono::seconds(3);  // producers' last lines at shutdown
// After the second signal: time for lines already read from producers (held while the queue was
// full) to reach the dead-letter file before the loop stops.
constexpr auto intake_abort_budget = std::chrono::seconds(3);

Logger::Options logger_options(const Config& config, const Logger& logger) {
    return Logger::Options{config.log_level, config.log_format, logger.options().journald};
}

std::unique_ptr<spool::Spool> open_spool(asio::io_context& io, const Config& config, Logger& logger, Metrics& metrics) {
    if (config.spool_dir.empty()) {
        logger.warn(
            "spool_dir is empty: events are kept in memory only, so an acknowledged event that is not "
            "delivered yet is lost if the daemon crashes or is killed");
        return nullptr;
    }
    return std::make_unique<spool::Spool>(io, spool::spool_settings(config), logger, metrics);
}

// ", and to destination crm (https://crm.example/...)" for each named destination.
std::string other_destinations(const Config& config) {
    std::string text;
    for (const auto& destination : config.destinations)
        text += ", and to destination " + destination.name + " (" + url_for_log(destination.url) + ")";
    return text;
}

}  // namespace

struct Daemon::State {
    State(const Config& config, Logger& logger)
        : spool(open_spool(io, config, logger, metrics)),
          destinations(io, config, logger, metrics, spool.get()),
          intake(io, intake_options(config), destinations, logger, metrics),
          signals(io, SIGINT, SIGTERM, SIGHUP),
          notifier(SystemdNotifier::from_environment()) {}

    asio::io_context io{1};
    Metrics metrics;
    std::unique_ptr<spool::Spool> spool;  // before the destinations, which use it until their end
    Destinations destinations;
    IntakeServer intake;
    std::unique_ptr<HttpIntakeServer> http_intake;  // with http_listen
    std::unique_ptr<StatusSampler> status;          // with admin: GET /status and the page
    std::unique_ptr<AdminServer> admin;
    asio::signal_set signals;
    SystemdNotifier notifier;
    bool shutting_down = false;
};

Daemon::Daemon(ConfigSources sources, LoadedConfig loaded, Logger& logger)
    : sources_(std::move(sources)), loaded_(std::move(loaded)), logger_(logger) {}

Daemon::~Daemon() = default;

int Daemon::run() {
    const Config& config = loaded_.config;
    for (const auto& warning : loaded_.warnings) logger_.warn("config: " + warning);
    if (!config.tls_verify)
        logger_.warn("tls_verify = false: the receiver's TLS certificate is NOT checked; use this only for tests");

    std::unique_ptr<State> created;
    try {
        created = std::make_unique<State>(config, logger_);
        // Recovered events go first, ahead of anything a producer sends after the start.
        created->destinations.restore_from_spool();
    } catch (const spool::SpoolOpenError& error) {
        logger_.error(error.what());
        return exit_code::cannot_create;
    }
    State& state = *created;
    if (state.spool) {
        state.spool->on_durable([&state](std::uint64_t ticket) {
            state.intake.durable_through(ticket);
            if (state.http_intake) state.http_intake->durable_through(ticket);
        });
        state.spool->start();
    }

    std::string activation_error;
    if (auto fd = listen_fd_from_environment(&activation_error)) {
        state.intake.adopt(*fd);
        logger_.info("intake: using the socket passed by systemd socket activation");
    } else if (!activation_error.empty()) {
        throw std::runtime_error("socket activation: " + activation_error);
    } else {
        state.intake.bind();
    }
    if (!config.http_listen.empty()) {
        state.http_intake = std::make_unique<HttpIntakeServer>(state.io, http_intake_server_options(config),
                                                               state.destinations, logger_, state.metrics);
        state.http_intake->bind();
        logger_.info("http intake: accepting AVR Core's webhook requests on http://" +
                     state.http_intake->local_address() +
                     (config.intake_secret.empty() ? " (no intake_secret: loopback only)" : ""));
    }

    auto update_gauges = [&state] {
        state.destinations.update_gauges();
        state.metrics.producer_connections = state.intake.connection_count();
        state.metrics.producer_connections_paused = state.intake.connections_paused_for_replies();
        state.metrics.http_connections = state.http_intake ? state.http_intake->connection_count() : 0;
    };
    auto metrics_text = [&state, update_gauges] {
        update_gauges();
        return render_prometheus(state.metrics);
    };
    if (!config.admin.empty()) {
        auto status = [&state] {
            AdminStatus result;
            result.accepting = state.intake.accepting() && !state.shutting_down;
            result.unhealthy = state.shutting_down ? std::optional<std::string>("shutting down")
                                                   : state.destinations.unhealthy_reason();
            if (!state.intake.accepting() && !result.unhealthy) result.unhealthy = "not accepting events";
            return result;
        };
        start_status(state, status, update_gauges);
        state.admin = std::make_unique<AdminServer>(state.io, config.admin, status, metrics_text, logger_,
                                                    AdminLimits{}, &state.metrics);
        state.admin->serve_status([&state] { return state.status->render(); });
        state.admin->start();
        logger_.info("admin: serving /healthz, /readyz and /metrics on " + state.admin->local_address());
        if (!parse_admin_address(config.admin)->is_unix())
            logger_.info("admin: status page on http://" + state.admin->local_address() + "/ (its JSON: /status)");
    }

    state.destinations.start();
    if (state.status) state.status->start();
    state.intake.start();
    if (state.http_intake) state.http_intake->start();

    asio::co_spawn(state.io, handle_signals(state), detail::rethrow_exceptions);
    if (const auto interval = state.notifier.watchdog_interval())
        asio::co_spawn(state.io, keep_watchdog_fed(state, *interval), detail::rethrow_exceptions);

    logger_.info(std::string("avr-webhookd ") + version + " accepting events on " + config.socket + ", delivering to " +
                 url_for_log(config.url) + " (concurrency " + std::to_string(config.concurrency) + ", timeout " +
                 format_duration(config.timeout) + ", retry " + std::to_string(config.retry) + ")" +
                 other_destinations(config));
    state.notifier.ready("accepting events on " + config.socket);

    state.io.run();
    logger_.info("stopped");
    return exit_code::ok;
}

// Shutdown on the first SIGTERM/SIGINT, at once on the second; reload on SIGHUP.
awaitable<void> Daemon::handle_signals(State& state) {
    for (;;) {
        auto [ec, signal_number] = co_await state.signals.async_wait(as_tuple(use_awaitable));
        if (ec) co_return;
        if (signal_number == SIGHUP) {
            if (!state.shutting_down) reload_configuration(state);
            continue;
        }
        if (!state.shutting_down) {
            state.shutting_down = true;
            asio::co_spawn(state.io, shut_down(state), detail::rethrow_exceptions);
            continue;
        }
        logger_.warn(state.spool ? "second signal: stopping at once; undelivered events stay in the spool"
                                 : "second signal: stopping at once; undelivered events go to the dead-letter file");
        state.destinations.abort();
        state.intake.stop();
        if (state.http_intake) state.http_intake->stop();
        stop_admin(state);
        asio::co_spawn(state.io, finish_intake(state, intake_abort_budget), detail::rethrow_exceptions);
        co_return;
    }
}

awaitable<void> Daemon::shut_down(State& state) {
    state.notifier.stopping();
    logger_.info("shutting down: no new events accepted");
    state.intake.stop();
    if (state.http_intake) state.http_intake->stop();
    co_await state.intake.wait_until_closed(std::chrono::steady_clock::now() + intake_close_budget);
    if (state.http_intake)
        co_await state.http_intake->wait_until_closed(std::chrono::steady_clock::now() + intake_close_budget);
    co_await state.destinations.shut_down(loaded_.config.shutdown_timeout);
    stop_admin(state);
    co_await finish_intake(state, intake_close_budget);
}

// Lines producers wrote before the stop, some of them held while the queue was full, are handed
// to the sink, which now dead-letters them; only then does the loop stop (issue 7, item 9).
awaitable<void> Daemon::finish_intake(State& state, std::chrono::steady_clock::duration budget) {
    co_await state.intake.wait_until_closed(std::chrono::steady_clock::now() + budget);
    if (const auto left = state.intake.connection_count())
        logger_.error("shutdown: " + std::to_string(left) + " producer connections still open after " +
                      format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(budget)) + " (" +
                      std::to_string(state.intake.connections_waiting_for_room()) +
                      " holding a line for a full queue); lines they had not handed over are lost");
    if (state.spool) state.spool->close();
    state.signals.cancel();
    state.io.stop();
}

// The status model's readings: the metrics with fresh gauges, each destination's health, and what
// /healthz says.
void Daemon::start_status(State& state, std::function<AdminStatus()> status, std::function<void()> update_gauges) {
    const auto http_address = state.http_intake ? state.http_intake->local_address() : std::string();
    auto read = [&state, status = std::move(status), update_gauges = std::move(update_gauges)] {
        update_gauges();
        auto reading = status_reading(state.metrics, state.destinations);
        const auto health = status();
        reading.accepting = health.accepting;
        reading.unhealthy = health.unhealthy;
        reading.producer_connections = state.metrics.producer_connections;
        reading.http_connections = state.metrics.http_connections;
        return reading;
    };
    state.status = std::make_unique<StatusSampler>(
        state.io, status_info(loaded_.config, http_address, std::chrono::system_clock::now()), std::move(read));
}

void Daemon::stop_admin(State& state) {
    if (state.admin) state.admin->stop();
    if (state.status) state.status->stop();
}

// Sent from the event loop itself, so systemd restarts a daemon whose loop is stuck.
awaitable<void> Daemon::keep_watchdog_fed(State& state, std::chrono::microseconds interval) {
    asio::steady_timer timer(state.io);
    for (;;) {
        state.notifier.watchdog();
        timer.expires_after(interval);
        auto [ec] = co_await timer.async_wait(as_tuple(use_awaitable));
        if (ec) co_return;
    }
}

void Daemon::reload_configuration(State& state) {
    state.notifier.reloading();
    try {
        LoadedConfig fresh = load_config(sources_);
        // The settings table says which settings only a restart applies (SettingInfo::reloadable).
        for (const auto key : keep_restart_only_settings(fresh.config, loaded_.config))
            logger_.warn("reload: setting " + std::string(key) + " changed; it takes effect after a restart");
        for (const auto& warning : fresh.warnings) logger_.warn("config: " + warning);
        state.destinations.reconfigure(fresh.config);
        state.intake.update(intake_options(fresh.config));
        if (state.http_intake) state.http_intake->update(http_intake_server_options(fresh.config));
        logger_.set_options(logger_options(fresh.config, logger_));
        if (!fresh.config.tls_verify && loaded_.config.tls_verify)
            logger_.warn("tls_verify = false: the receiver's TLS certificate is NOT checked; use this only for tests");
        loaded_ = std::move(fresh);
        logger_.info("reload: configuration applied" +
                     (loaded_.config_file_used.empty() ? std::string() : " from " + loaded_.config_file_used) +
                     "; delivering to " + url_for_log(loaded_.config.url) + other_destinations(loaded_.config));
    } catch (const std::runtime_error& error) {  // ConfigError, or an unreadable ca_file
        logger_.error(std::string("reload refused, keeping the running configuration: ") + error.what());
    }
    state.notifier.ready("accepting events on " + loaded_.config.socket);
}

}  // namespace avr_webhookd
