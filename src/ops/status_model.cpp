#include <avr_webhookd/ops/status_model.hpp>

#include <algorithm>
#include <cmath>

// The status model's history, windows and judgements; status_document.cpp renders the JSON.
namespace avr_webhookd {

namespace {

std::uint64_t increase(std::uint64_t now, std::uint64_t before) { return now > before ? now - before : 0; }

std::string count_text(std::uint64_t count, std::string_view one, std::string_view many) {
    return std::to_string(count) + " " + std::string(count == 1 ? one : many);
}

// "; last: HTTP 503 Service Unavailable" from the newest failure, or "".
std::string last_failure(const DestinationReading& reading) {
    if (reading.failures.empty()) return {};
    const auto& last = reading.failures.back();
    std::string text = "; last: " + last.code;
    if (!last.message.empty() && last.message != last.code) text += " " + last.message;
    return text;
}

}  // namespace

std::string_view to_string(DestinationState state) {
    switch (state) {
    case DestinationState::idle:
        return "idle";
    case DestinationState::delivering:
        return "delivering";
    case DestinationState::retrying:
        return "retrying";
    case DestinationState::failing:
        return "failing";
    }
    return "idle";
}

DestinationVerdict judge_destination(const WindowCounts& last_minute, const DestinationReading& now) {
    const auto waiting = now.waiting + now.in_flight;
    if (now.unhealthy) return {DestinationState::failing, *now.unhealthy};
    if (last_minute.given_up > 0 && last_minute.delivered == 0)
        return {DestinationState::failing, count_text(last_minute.given_up, "event", "events") +
                                               " given up in the last minute and none delivered" + last_failure(now)};
    if (last_minute.retried > 0 && waiting > 0)
        return {DestinationState::retrying, count_text(last_minute.retried, "failed attempt", "failed attempts") +
                                                " in the last minute, " + count_text(waiting, "event", "events") +
                                                " waiting to be tried (again)" + last_failure(now)};
    if (last_minute.delivered > 0 || waiting > 0) {
        std::string reason = std::to_string(last_minute.delivered) + " delivered in the last minute";
        if (waiting > 0) reason += ", " + std::to_string(waiting) + " waiting";
        if (last_minute.given_up > 0) reason += ", " + std::to_string(last_minute.given_up) + " given up";
        return {DestinationState::delivering, reason};
    }
    return {DestinationState::idle, now.delivered + now.given_up == 0 ? "nothing to deliver yet"
                                                                      : "nothing waiting, nothing in the last minute"};
}

std::optional<double> histogram_quantile(double q, const std::vector<double>& bounds,
                                         const std::vector<std::uint64_t>& buckets) {
    std::uint64_t total = 0;
    for (const auto count : buckets) total += count;
    if (total == 0 || buckets.size() != bounds.size() + 1) return std::nullopt;
    const double rank = q * static_cast<double>(total);
    std::uint64_t below = 0;
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        if (static_cast<double>(below + buckets[i]) >= rank && buckets[i] > 0) {
            const double lower = i == 0 ? 0.0 : bounds[i - 1];
            const double within = (rank - static_cast<double>(below)) / static_cast<double>(buckets[i]);
            return lower + (bounds[i] - lower) * std::clamp(within, 0.0, 1.0);
        }
        below += buckets[i];
    }
    return bounds.empty() ? std::nullopt : std::optional<double>(bounds.back());  // in the +Inf bucket
}

StatusModel::StatusModel(StatusInfo info, Clock::time_point started, Options options)
    : info_(std::move(info)), started_(started), options_(options) {
    start_.at = started;
    options_.history = std::max<std::size_t>(options_.history, 2);
}

StatusModel::Point StatusModel::point_of(Clock::time_point at, const StatusReading& reading) {
    Point point;
    point.at = at;
    point.socket_received = reading.socket_received;
    point.http_received = reading.http_received;
    point.destinations.reserve(reading.destinations.size());
    for (const auto& destination : reading.destinations)
        point.destinations.push_back(DestinationPoint{destination.name, destination.delivered, destination.retried,
                                                      destination.given_up, destination.waiting + destination.in_flight,
                                                      destination.latency_buckets});
    return point;
}

bool StatusModel::record(Clock::time_point now, const StatusReading& reading) {
    if (!history_.empty() && now - history_.back().at < options_.interval) return false;
    history_.push_back(point_of(now, reading));
    while (history_.size() > options_.history) history_.pop_front();
    return true;
}

const StatusModel::DestinationPoint* StatusModel::find(const Point& point, std::string_view name) {
    const auto found = std::find_if(point.destinations.begin(), point.destinations.end(),
                                    [&](const DestinationPoint& destination) { return destination.name == name; });
    return found == point.destinations.end() ? nullptr : &*found;
}

const StatusModel::Point& StatusModel::baseline(Clock::time_point now, Clock::duration span) const {
    const Point* chosen = &start_;        // the daemon runs for less than `span`: since the start
    for (const auto& point : history_) {  // oldest first: the newest one old enough wins
        if (now - point.at < span) break;
        chosen = &point;
    }
    return *chosen;
}

WindowCounts StatusModel::window(Clock::time_point now, const DestinationReading& current, Clock::duration span) const {
    const Point& base = baseline(now, span);
    const DestinationPoint* before = find(base, current.name);  // absent: added since, counted from zero
    WindowCounts counts;
    counts.seconds = std::chrono::duration<double>(now - base.at).count();
    counts.delivered = increase(current.delivered, before ? before->delivered : 0);
    counts.retried = increase(current.retried, before ? before->retried : 0);
    counts.given_up = increase(current.given_up, before ? before->given_up : 0);
    counts.latency_buckets.resize(current.latency_buckets.size());
    for (std::size_t i = 0; i < current.latency_buckets.size(); ++i) {
        const bool known = before && i < before->latency_buckets.size();
        counts.latency_buckets[i] = increase(current.latency_buckets[i], known ? before->latency_buckets[i] : 0);
    }
    return counts;
}

}  // namespace avr_webhookd
