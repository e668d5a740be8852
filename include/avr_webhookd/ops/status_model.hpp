#pragma once

#include <avr_webhookd/ops/recent_failures.hpp>

#include <boost/json/object.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd {

// One destination's counters and gauges at one moment: its DeliveryMetrics with the gauges just
// updated, plus what its Deliverer says of its health.
struct DestinationReading {
    std::string name;
    std::string url;  // as /status shows it: origin only (url_origin)
    // Counters since the daemon started.
    std::uint64_t delivered = 0;
    std::uint64_t retried = 0;   // failed attempts scheduled to be tried again
    std::uint64_t given_up = 0;  // dead-lettered (or only logged when the file could not take them)
    std::uint64_t attempts = 0;
    std::uint64_t only_logged = 0;  // given up but not in the dead-letter file (full, write failed)
    // Gauges.
    std::uint64_t waiting = 0;  // queued, not in flight
    std::uint64_t in_flight = 0;
    std::uint64_t queued_bytes = 0;
    std::uint64_t live_calls = 0;
    std::uint64_t open_connections = 0;
    double oldest_age_seconds = 0;
    // The delivery latency histogram: upper bounds and per-bucket counts (one more, +Inf).
    std::vector<double> latency_bounds;
    std::vector<std::uint64_t> latency_buckets;
    std::optional<std::string> unhealthy;  // why /healthz fails because of it
    std::vector<FailureRecord> failures;   // the last few, oldest first
};

// The daemon's counters and gauges at one moment.
struct StatusReading {
    bool accepting = true;
    std::optional<std::string> unhealthy;  // what /healthz says when it fails
    std::uint64_t socket_received = 0;     // event lines read, valid or not
    std::uint64_t http_received = 0;
    std::uint64_t rejected = 0;  // both intakes
    std::uint64_t producer_connections = 0;
    std::uint64_t http_connections = 0;
    std::uint64_t spool_bytes = 0;
    std::uint64_t spool_records = 0;
    std::uint64_t spool_segments = 0;
    bool spool_disk_full = false;
    std::vector<DestinationReading> destinations;
};

// What changes only with a restart or a reload.
struct StatusInfo {
    std::string version;
    std::chrono::system_clock::time_point started{};
    std::string socket;
    std::string http_listen;  // "" = off
    std::string spool_dir;    // "" = memory only
    std::string spool_sync;   // "always", "interval 100ms"
    std::uint64_t spool_max_bytes = 0;
    std::string dead_letter;  // "" = off
};

// What a destination is doing, judged from its counters over the last minute and its queue.
enum class DestinationState {
    idle,        // nothing waiting, nothing delivered in the last minute
    delivering,  // events go through (or wait for their first attempt)
    retrying,    // attempts failed in the last minute and events wait to be tried again
    failing,     // events are given up and none delivered, or /healthz names it
};
std::string_view to_string(DestinationState state);

// Counter increases over a window that ends now.
struct WindowCounts {
    double seconds = 0;  // how long the window really is (shorter right after the start)
    std::uint64_t delivered = 0;
    std::uint64_t retried = 0;
    std::uint64_t given_up = 0;
    std::vector<std::uint64_t> latency_buckets;  // per bucket, like DestinationReading's
};

struct DestinationVerdict {
    DestinationState state = DestinationState::idle;
    std::string reason;
};

// The rule, in order: failing when /healthz names the destination, or when events were given up
// in the last minute and none delivered; retrying when attempts failed in the last minute and
// events still wait; delivering when events were delivered or wait; else idle.
DestinationVerdict judge_destination(const WindowCounts& last_minute, const DestinationReading& now);

// A latency quantile (0 < q < 1) from per-bucket counts as histogram_quantile() computes it:
// linear within the bucket, the largest finite bound for the +Inf bucket; nullopt when empty.
std::optional<double> histogram_quantile(double q, const std::vector<double>& bounds,
                                         const std::vector<std::uint64_t>& buckets);

// The status model behind GET /status (sans-io): readings come in with the time they were taken;
// it keeps a bounded history (one reading per `interval`, at most `history` of them: 15 minutes
// by default), derives rates over the last minute and five minutes, each destination's state
// with its reason, and renders the JSON document. The Asio shell (daemon/status_sampler) takes a
// reading on a timer and another for each request.
class StatusModel {
public:
    using Clock = std::chrono::steady_clock;
    struct Options {
        Clock::duration interval = std::chrono::seconds(5);
        std::size_t history = 180;
    };

    StatusModel(StatusInfo info, Clock::time_point started, Options options);
    StatusModel(StatusInfo info, Clock::time_point started) : StatusModel(std::move(info), started, Options{}) {}

    void set_info(StatusInfo info) { info_ = std::move(info); }
    const Options& options() const { return options_; }

    // Keeps the reading in the history when `interval` has passed since the last one kept (the
    // first is always kept); the oldest goes beyond `history`. Returns whether it was kept.
    bool record(Clock::time_point now, const StatusReading& reading);
    std::size_t history_size() const { return history_.size(); }

    // The destination's counter increases over the `span` that ends at `now`, from the newest kept
    // reading at least `span` old, else from the start (zero counters).
    WindowCounts window(Clock::time_point now, const DestinationReading& current, Clock::duration span) const;

    // The /status document for the live reading taken at `now` (`wall` on the system clock).
    boost::json::object document(Clock::time_point now, std::chrono::system_clock::time_point wall,
                                 const StatusReading& reading) const;
    std::string render(Clock::time_point now, std::chrono::system_clock::time_point wall,
                       const StatusReading& reading) const;

private:
    struct DestinationPoint {
        std::string name;
        std::uint64_t delivered = 0;
        std::uint64_t retried = 0;
        std::uint64_t given_up = 0;
        std::uint64_t queued = 0;  // waiting + in flight
        std::vector<std::uint64_t> latency_buckets;
    };
    struct Point {
        Clock::time_point at;
        std::uint64_t socket_received = 0;
        std::uint64_t http_received = 0;
        std::vector<DestinationPoint> destinations;
    };
    static Point point_of(Clock::time_point at, const StatusReading& reading);
    static const DestinationPoint* find(const Point& point, std::string_view name);
    const Point& baseline(Clock::time_point now, Clock::duration span) const;
    boost::json::object intakes(Clock::time_point now, const StatusReading& reading) const;
    boost::json::object destination(Clock::time_point now, const DestinationReading& reading) const;
    boost::json::object history(Clock::time_point now, const DestinationReading& reading) const;

    StatusInfo info_;
    Clock::time_point started_;
    Options options_;
    Point start_;  // zero counters at the start: the baseline before anything is kept
    std::deque<Point> history_;
};

}  // namespace avr_webhookd
