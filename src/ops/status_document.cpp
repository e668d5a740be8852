#include <avr_webhookd/ops/status_model.hpp>

#include <avr_webhookd/common/timestamp.hpp>
#include <avr_webhookd/common/utf8.hpp>

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cmath>

// The /status document (README, Operations: "Status page and `status`" describes each member).
namespace avr_webhookd {

namespace json = boost::json;

namespace {

constexpr auto one_minute = std::chrono::minutes(1);
constexpr auto five_minutes = std::chrono::minutes(5);

double seconds_of(std::chrono::steady_clock::duration duration) {
    return std::chrono::duration<double>(duration).count();
}

double rounded(double value, double unit = 1000) { return std::round(value * unit) / unit; }

// Events per second, or null when the window is too short to say (right after the start).
json::value per_second(std::uint64_t count, double seconds) {
    if (seconds < 1) return nullptr;
    return rounded(static_cast<double>(count) / seconds);
}

json::value number_or_null(std::optional<double> value) {
    if (!value || !std::isfinite(*value)) return nullptr;
    return rounded(*value, 1e6);
}

json::value text_or_null(const std::optional<std::string>& text) {
    if (!text) return nullptr;
    return json::string(*text);
}

std::uint64_t increase(std::uint64_t now, std::uint64_t before) { return now > before ? now - before : 0; }

json::object rates(const WindowCounts& counts) {
    return {{"window_seconds", rounded(counts.seconds, 10)},
            {"delivered", per_second(counts.delivered, counts.seconds)},
            {"retried", per_second(counts.retried, counts.seconds)},
            {"given_up", per_second(counts.given_up, counts.seconds)}};
}

json::object failure(const FailureRecord& record) {
    return {{"time", format_utc_millis(record.time)},
            {"type", record.event_type},
            {"event_id", record.event_id},
            {"call", record.call},
            {"attempt", record.attempt},
            {"code", record.code},
            {"status", record.status != 0 ? json::value(record.status) : json::value(nullptr)},
            {"message", record.message},
            {"given_up", record.given_up.empty() ? json::value(nullptr) : json::value(record.given_up)},
            {"block", record.block}};
}

}  // namespace

json::object StatusModel::intakes(Clock::time_point now, const StatusReading& reading) const {
    const Point& minute = baseline(now, one_minute);
    const Point& five = baseline(now, five_minutes);
    const double minute_seconds = seconds_of(now - minute.at);
    const double five_seconds = seconds_of(now - five.at);
    json::object socket{
        {"address", info_.socket},
        {"connections", reading.producer_connections},
        {"received", reading.socket_received},
        {"rate_1m", per_second(increase(reading.socket_received, minute.socket_received), minute_seconds)},
        {"rate_5m", per_second(increase(reading.socket_received, five.socket_received), five_seconds)}};
    json::object http{{"enabled", !info_.http_listen.empty()},
                      {"address", info_.http_listen},
                      {"connections", reading.http_connections},
                      {"received", reading.http_received},
                      {"rate_1m", per_second(increase(reading.http_received, minute.http_received), minute_seconds)},
                      {"rate_5m", per_second(increase(reading.http_received, five.http_received), five_seconds)}};
    return {{"socket", std::move(socket)}, {"http", std::move(http)}};
}

// Column-wise, oldest first: seconds before now, the rates between two kept readings, and the
// queue at each (the last point is the live reading).
json::object StatusModel::history(Clock::time_point now, const DestinationReading& reading) const {
    json::array t, delivered, retried, given_up, queued;
    const DestinationPoint* previous = nullptr;
    Clock::time_point previous_at{};
    const auto add = [&](Clock::time_point at, const DestinationPoint* point) {
        const double seconds = seconds_of(at - previous_at);
        if (previous && point && seconds >= 1) {
            t.push_back(rounded(seconds_of(at - now), 10));
            delivered.push_back(per_second(increase(point->delivered, previous->delivered), seconds));
            retried.push_back(per_second(increase(point->retried, previous->retried), seconds));
            given_up.push_back(per_second(increase(point->given_up, previous->given_up), seconds));
            queued.push_back(point->queued);
        }
        if (point && (!previous || seconds >= 1)) {
            previous = point;
            previous_at = at;
        }
    };
    for (const auto& point : history_) add(point.at, find(point, reading.name));
    const DestinationPoint live{
        reading.name, reading.delivered, reading.retried, reading.given_up, reading.waiting + reading.in_flight, {}};
    add(now, &live);
    return {{"t", std::move(t)},
            {"delivered", std::move(delivered)},
            {"retried", std::move(retried)},
            {"given_up", std::move(given_up)},
            {"queue", std::move(queued)}};
}

json::object StatusModel::destination(Clock::time_point now, const DestinationReading& reading) const {
    const auto minute = window(now, reading, one_minute);
    const auto five = window(now, reading, five_minutes);
    const auto verdict = judge_destination(minute, reading);
    json::array failures;
    for (auto it = reading.failures.rbegin(); it != reading.failures.rend(); ++it) failures.push_back(failure(*it));
    std::uint64_t latency_count = 0;
    for (const auto count : five.latency_buckets) latency_count += count;
    return {
        {"name", reading.name},
        {"url", reading.url},
        {"state", to_string(verdict.state)},
        {"reason", verdict.reason},
        {"totals",
         {{"delivered", reading.delivered},
          {"retried", reading.retried},
          {"given_up", reading.given_up},
          {"attempts", reading.attempts}}},
        {"rates", {{"1m", rates(minute)}, {"5m", rates(five)}}},
        {"queue",
         {{"waiting", reading.waiting},
          {"in_flight", reading.in_flight},
          {"bytes", reading.queued_bytes},
          {"live_calls", reading.live_calls},
          {"oldest_age_seconds", rounded(reading.oldest_age_seconds, 10)}}},
        {"connections", reading.open_connections},
        {"latency",
         {{"window_seconds", rounded(five.seconds, 10)},
          {"count", latency_count},
          {"p50_seconds", number_or_null(histogram_quantile(0.5, reading.latency_bounds, five.latency_buckets))},
          {"p99_seconds", number_or_null(histogram_quantile(0.99, reading.latency_bounds, five.latency_buckets))}}},
        {"dead_letters", {{"total", reading.given_up}, {"only_logged", reading.only_logged}}},
        {"recent_failures", std::move(failures)},
        {"history", history(now, reading)},
    };
}

json::object StatusModel::document(Clock::time_point now, std::chrono::system_clock::time_point wall,
                                   const StatusReading& reading) const {
    double oldest = 0;
    json::array destinations;
    for (const auto& each : reading.destinations) {
        oldest = std::max(oldest, each.oldest_age_seconds);
        destinations.push_back(destination(now, each));
    }
    json::object spool{{"enabled", !info_.spool_dir.empty()},
                       {"dir", info_.spool_dir},
                       {"sync", info_.spool_sync},
                       {"bytes", reading.spool_bytes},
                       {"max_bytes", info_.spool_max_bytes},
                       {"waiting", reading.spool_records},
                       {"segments", reading.spool_segments},
                       {"oldest_age_seconds", rounded(oldest, 10)},
                       {"disk_full", reading.spool_disk_full}};
    return {{"version", info_.version},
            {"now", format_utc_millis(wall)},
            {"started", format_utc_millis(info_.started)},
            {"uptime_seconds", rounded(seconds_of(now - started_), 10)},
            {"sample_interval_seconds", seconds_of(options_.interval)},
            {"accepting", reading.accepting},
            {"healthy", !reading.unhealthy},
            {"unhealthy_reason", text_or_null(reading.unhealthy)},
            {"intakes", intakes(now, reading)},
            {"rejected", reading.rejected},
            {"spool", std::move(spool)},
            {"dead_letter", {{"enabled", !info_.dead_letter.empty()}, {"file", info_.dead_letter}}},
            {"destinations", std::move(destinations)}};
}

std::string StatusModel::render(Clock::time_point now, std::chrono::system_clock::time_point wall,
                                const StatusReading& reading) const {
    auto text = json::serialize(document(now, wall, reading));
    // A path or a reason may hold any bytes; they occur only inside strings, so this keeps it JSON.
    return find_invalid_utf8(text) ? repaired_utf8(text) : text;
}

}  // namespace avr_webhookd
