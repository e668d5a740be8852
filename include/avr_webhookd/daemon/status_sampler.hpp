#pragma once

#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/delivery/destinations.hpp>
#include <avr_webhookd/ops/metrics.hpp>
#include <avr_webhookd/ops/status_model.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <string>

namespace avr_webhookd {

// What GET /status shows of the configuration: addresses, spool and dead-letter settings.
// `http_address` is the HTTP intake's bound address ("" when it is off).
StatusInfo status_info(const Config& config, std::string http_address, std::chrono::system_clock::time_point started);

// The counters of `metrics` and each active destination's health; the caller adds what the
// intakes and the daemon know (connections, accepting, unhealthy). Call after update_gauges().
StatusReading status_reading(const Metrics& metrics, const Destinations& destinations);

// The Asio shell of the StatusModel: a reading every interval into the model's bounded history
// (from start() until stop()), and a fresh reading for each GET /status. `read` runs on the
// io_context's thread.
class StatusSampler {
public:
    StatusSampler(boost::asio::io_context& io, StatusInfo info, std::function<StatusReading()> read);
    StatusSampler(const StatusSampler&) = delete;
    StatusSampler& operator=(const StatusSampler&) = delete;

    void start();  // the first reading now, then one every interval
    void stop();
    std::string render();  // the /status document, from a reading taken now

private:
    boost::asio::awaitable<void> run();

    boost::asio::steady_timer timer_;
    std::function<StatusReading()> read_;
    StatusModel model_;
    bool running_ = false;
};

}  // namespace avr_webhookd
