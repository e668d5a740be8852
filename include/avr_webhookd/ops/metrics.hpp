#pragma once

#include <avr_webhookd/ops/recent_failures.hpp>
#include <avr_webhookd/version.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd {

// A Prometheus histogram with fixed bucket upper bounds (inclusive, as Prometheus' "le").
class Histogram {
public:
    // Bounds must be finite and strictly ascending; the +Inf bucket is implicit.
    explicit Histogram(std::vector<double> upper_bounds);

    void observe(double value);  // NaN is ignored

    const std::vector<double>& upper_bounds() const { return upper_bounds_; }
    // Observations per bucket, not cumulative; one more entry than upper_bounds() (the +Inf one).
    const std::vector<std::uint64_t>& bucket_counts() const { return bucket_counts_; }
    std::uint64_t count() const { return count_; }
    double sum() const { return sum_; }

private:
    std::vector<double> upper_bounds_;
    std::vector<std::uint64_t> bucket_counts_;
    std::uint64_t count_ = 0;
    double sum_ = 0;
};

// Seconds from acceptance to 2xx. Reaches past five minutes because the latency includes retry
// backoff, which can last up to max_age.
std::vector<double> default_latency_buckets();
// Seconds one fdatasync of the spool takes: from 50 us (a fast SSD) to 2.5 s (a failing disk).
std::vector<double> spool_sync_buckets();

// One destination's delivery counters and gauges (/metrics labels them destination="NAME").
struct DeliveryMetrics {
    using LabelledCounter = std::map<std::string, std::uint64_t, std::less<>>;

    // Counters.
    std::uint64_t events_filtered = 0;  // accepted but not forwarded because of its `types`
    std::uint64_t events_delivered = 0;
    std::uint64_t events_dead_lettered = 0;
    std::uint64_t delivery_attempts = 0;
    LabelledCounter delivery_attempts_failed;      // by to_string(FailureKind): timeout, tls ...
    std::uint64_t delivery_retries = 0;            // failed attempts that were scheduled again
    LabelledCounter queue_full;                    // times its queue filled up, by limit: events, bytes
    std::uint64_t dead_letter_overflow = 0;        // dead letters only logged: the file reached dead_letter_max_bytes
    std::uint64_t dead_letter_write_failures = 0;  // dead letters only logged: the write or sync failed

    // Gauges.
    std::uint64_t in_flight = 0;     // events with an attempt in progress
    std::uint64_t queued = 0;        // events waiting for an attempt (first or retry), not in flight
    std::uint64_t queued_bytes = 0;  // what all undelivered events count against max_queue_bytes
    std::uint64_t live_calls = 0;
    std::uint64_t open_connections = 0;
    double oldest_undelivered_age_seconds = 0;

    Histogram delivery_latency{default_latency_buckets()};
    // Not a metric: the last failed attempts and given-up events, for /status.
    RecentFailures recent_failures;

    void count_failed_attempt(std::string_view kind);
    void observe_delivery_latency(std::chrono::nanoseconds latency);
};

// The daemon's counters and gauges. Updated on the io_context thread only, hence plain integers.
// Counters only grow; gauges are set by the daemon right before rendering.
struct Metrics {
    using LabelledCounter = std::map<std::string, std::uint64_t, std::less<>>;

    // Counters.
    std::uint64_t events_received = 0;               // event lines read from producers, valid or not
    LabelledCounter events_rejected;                 // by reason: invalid_json, line_too_long, queue_full ...
    std::uint64_t producer_connections_refused = 0;  // over max_connections
    std::uint64_t admin_connections_evicted = 0;     // oldest waiting admin connection closed for a new one
    std::uint64_t admin_connections_refused = 0;     // admin limit reached and every connection busy answering
    std::uint64_t admin_requests_timed_out = 0;      // admin request not read within its deadline
    std::uint64_t producer_connections_evicted = 0;  // idle ones closed to make room at max_connections
    std::uint64_t producer_connections_denied = 0;   // peers not in producer_uids / producer_gids
    std::uint64_t producer_connection_errors = 0;    // connections ended by an internal error
    std::uint64_t producer_replies_dropped = 0;      // replies a producer did not read (backlog full)
    std::uint64_t producer_reads_paused = 0;         // pauses of a producer's lines for its unread replies
    std::uint64_t respond_answered = 0;              // respond_types events whose producer got the receiver's answer
    std::uint64_t respond_unanswered = 0;            // ... got no answer (none within respond_timeout, or given up)
    // The HTTP intake (http_listen). events_received and events_rejected count both intakes; these
    // count its share, and /metrics labels the two by intake (socket = total - http).
    std::uint64_t http_events_received = 0;      // POST requests taken as events, valid or not
    LabelledCounter http_events_rejected;        // by reason, also counted in events_rejected
    LabelledCounter http_responses;              // HTTP intake responses by status code
    std::uint64_t http_connections_refused = 0;  // at http_max_connections with none idle
    std::uint64_t http_connections_evicted = 0;  // idle keep-alive ones closed for a new one
    std::uint64_t http_requests_timed_out = 0;   // no complete request within http_request_timeout
    // Requests refused before they were handled (a bound or a framing rule of HttpRequestReader),
    // by reason: the HTTP intake's and the admin endpoint's.
    LabelledCounter http_requests_refused;
    LabelledCounter admin_requests_refused;
    // The crash-safe spool (all zero when spool_dir is empty).
    std::uint64_t spool_recovered = 0;          // events found undelivered in the spool at start
    std::uint64_t spool_corrupt_records = 0;    // damaged ranges skipped or torn tails cut at start
    std::uint64_t spool_write_failures = 0;     // writes that failed (ENOSPC, EIO ...): lines rejected
    std::uint64_t spool_sync_failures = 0;      // fdatasync calls that failed
    std::uint64_t spool_unreadable_events = 0;  // parked events whose record could not be read back

    // Gauges.
    std::uint64_t producer_connections = 0;
    std::uint64_t producer_connections_paused = 0;  // lines not read until their replies are (max_reply_backlog)
    std::uint64_t http_connections = 0;             // open HTTP intake connections
    std::uint64_t spool_bytes = 0;                  // bytes of the spool's segment files
    std::uint64_t spool_records = 0;                // events in the spool not yet delivered or dead-lettered
    std::uint64_t spool_segments = 0;
    std::uint64_t spool_disk_full = 0;  // 1 while writes fail for want of space (ENOSPC, EDQUOT, spool_max_bytes)

    Histogram spool_sync_latency{spool_sync_buckets()};

    // Each destination's delivery metrics, by name; an entry stays after its destination is
    // removed (counters never go back).
    std::map<std::string, DeliveryMetrics, std::less<>> destinations;
    DeliveryMetrics& destination(std::string_view name);

    void count_rejected(std::string_view reason) { ++at(events_rejected, reason); }
    void count_http_rejected(std::string_view reason) {
        ++at(events_rejected, reason);
        ++at(http_events_rejected, reason);
    }
    void count_http_response(unsigned status) { ++at(http_responses, std::to_string(status)); }

    static std::uint64_t& at(LabelledCounter& counter, std::string_view label);
};

// The Prometheus text exposition format 0.0.4 (Content-Type "text/plain; version=0.0.4"):
// HELP and TYPE for every family, counters ending in _total, base units (seconds), label values
// escaped, plus avr_webhookd_build_info{version="..."} 1.
std::string render_prometheus(const Metrics& metrics, std::string_view build_version = avr_webhookd::version);

}  // namespace avr_webhookd
