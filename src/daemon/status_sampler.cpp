#include <avr_webhookd/daemon/status_sampler.hpp>

#include <avr_webhookd/common/duration.hpp>
#include <avr_webhookd/common/rethrow.hpp>
#include <avr_webhookd/common/url.hpp>
#include <avr_webhookd/version.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace avr_webhookd {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;

StatusInfo status_info(const Config& config, std::string http_address, std::chrono::system_clock::time_point started) {
    StatusInfo info;
    info.version = version;
    info.started = started;
    info.socket = config.socket;
    info.http_listen = std::move(http_address);
    info.spool_dir = config.spool_dir;
    info.spool_sync = std::string(to_string(config.spool_sync));
    if (config.spool_sync == SpoolSync::interval) info.spool_sync += " " + format_duration(config.spool_sync_interval);
    info.spool_max_bytes = config.spool_max_bytes;
    info.dead_letter = config.dead_letter;
    return info;
}

namespace {

DestinationReading destination_reading(const Deliverer& deliverer, const DeliveryMetrics& m) {
    DestinationReading reading;
    reading.name = deliverer.name();
    reading.url = url_origin(deliverer.url());
    reading.delivered = m.events_delivered;
    reading.retried = m.delivery_retries;
    reading.given_up = m.events_dead_lettered;
    reading.attempts = m.delivery_attempts;
    reading.only_logged = m.dead_letter_overflow + m.dead_letter_write_failures;
    reading.waiting = m.queued;
    reading.in_flight = m.in_flight;
    reading.queued_bytes = m.queued_bytes;
    reading.live_calls = m.live_calls;
    reading.open_connections = m.open_connections;
    reading.oldest_age_seconds = m.oldest_undelivered_age_seconds;
    reading.latency_bounds = m.delivery_latency.upper_bounds();
    reading.latency_buckets = m.delivery_latency.bucket_counts();
    reading.unhealthy = deliverer.unhealthy_reason();
    const auto& failures = m.recent_failures.records();
    reading.failures.assign(failures.begin(), failures.end());
    return reading;
}

}  // namespace

StatusReading status_reading(const Metrics& metrics, const Destinations& destinations) {
    StatusReading reading;
    reading.socket_received = metrics.events_received - metrics.http_events_received;
    reading.http_received = metrics.http_events_received;
    for (const auto& [reason, count] : metrics.events_rejected) reading.rejected += count;
    reading.spool_bytes = metrics.spool_bytes;
    reading.spool_records = metrics.spool_records;
    reading.spool_segments = metrics.spool_segments;
    reading.spool_disk_full = metrics.spool_disk_full != 0;
    for (const Deliverer* deliverer : destinations.active()) {
        const auto found = metrics.destinations.find(deliverer->name());
        if (found != metrics.destinations.end())
            reading.destinations.push_back(destination_reading(*deliverer, found->second));
    }
    return reading;
}

StatusSampler::StatusSampler(boost::asio::io_context& io, StatusInfo info, std::function<StatusReading()> read)
    : timer_(io), read_(std::move(read)), model_(std::move(info), StatusModel::Clock::now()) {}

void StatusSampler::start() {
    if (running_) return;
    running_ = true;
    asio::co_spawn(timer_.get_executor(), run(), detail::rethrow_exceptions);
}

void StatusSampler::stop() {
    running_ = false;
    timer_.cancel();
}

awaitable<void> StatusSampler::run() {
    while (running_) {
        model_.record(StatusModel::Clock::now(), read_());
        timer_.expires_after(model_.options().interval);
        auto [ec] = co_await timer_.async_wait(as_tuple(use_awaitable));
        if (ec) co_return;
    }
}

std::string StatusSampler::render() {
    return model_.render(StatusModel::Clock::now(), std::chrono::system_clock::now(), read_());
}

}  // namespace avr_webhookd
