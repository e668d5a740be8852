#include <avr_webhookd/ops/metrics.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace avr_webhookd {

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), bucket_counts_(upper_bounds_.size() + 1, 0) {
    const bool all_finite =
        std::all_of(upper_bounds_.begin(), upper_bounds_.end(), [](double bound) { return std::isfinite(bound); });
    const bool ascending = std::adjacent_find(upper_bounds_.begin(), upper_bounds_.end(),
                                              [](double a, double b) { return a >= b; }) == upper_bounds_.end();
    if (!all_finite || !ascending)
        throw std::invalid_argument("histogram bounds must be finite and strictly ascending");
}

void Histogram::observe(double value) {
    if (std::isnan(value)) return;
    const auto bucket = std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value);
    ++bucket_counts_[static_cast<std::size_t>(bucket - upper_bounds_.begin())];
    ++count_;
    sum_ += value;
}

std::vector<double> default_latency_buckets() {
    return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600};
}

std::vector<double> spool_sync_buckets() {
    return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
}

void DeliveryMetrics::count_failed_attempt(std::string_view kind) { ++Metrics::at(delivery_attempts_failed, kind); }

DeliveryMetrics& Metrics::destination(std::string_view name) {
    auto found = destinations.find(name);
    if (found == destinations.end()) found = destinations.emplace(std::string(name), DeliveryMetrics{}).first;
    return found->second;
}

void DeliveryMetrics::observe_delivery_latency(std::chrono::nanoseconds latency) {
    const auto seconds = std::chrono::duration<double>(latency).count();
    delivery_latency.observe(std::max(seconds, 0.0));
}

std::uint64_t& Metrics::at(LabelledCounter& counter, std::string_view label) {
    auto found = counter.find(label);
    if (found == counter.end()) found = counter.emplace(std::string(label), 0).first;
    return found->second;
}

namespace {

constexpr std::string_view prefix = "avr_webhookd_";

// Go's ParseFloat spellings, which Prometheus reads.
std::string format_number(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    char text[32];
    const auto result = std::to_chars(std::begin(text), std::end(text), value);
    return std::string(text, result.ptr);
}

std::string format_number(std::uint64_t value) { return std::to_string(value); }

// In label values: backslash, double quote and line feed are escaped.
std::string escape_label_value(std::string_view value) {
    std::string escaped;
    escaped.reserve(value.size());
    for (char c : value) {
        if (c == '\\') escaped += "\\\\";
        else if (c == '"') escaped += "\\\"";
        else if (c == '\n') escaped += "\\n";
        else escaped.push_back(c);
    }
    return escaped;
}

std::string label(std::string_view name, std::string_view value) {
    std::string text;
    text.reserve(name.size() + value.size() + 3);
    text.append(name).append("=\"").append(escape_label_value(value)).append("\"");
    return text;
}

// Appends to a reserved string instead of chaining operator+, which trips GCC 12's
// -Warray-bounds false positive (GCC bug 105329).
std::string concat(std::string_view first, std::string_view second) {
    std::string text;
    text.reserve(first.size() + second.size());
    text.append(first).append(second);
    return text;
}

class Exposition {
public:
    // HELP texts here are constants without backslashes or line feeds, so need no escaping.
    void family(std::string_view name, std::string_view type, std::string_view help) {
        out_.append("# HELP ").append(prefix).append(name).append(" ").append(help).append("\n");
        out_.append("# TYPE ").append(prefix).append(name).append(" ").append(type).append("\n");
    }

    template <typename Number>
    void sample(std::string_view name, std::string_view labels, Number value) {
        out_.append(prefix).append(name);
        if (!labels.empty()) out_.append("{").append(labels).append("}");
        out_.append(" ").append(format_number(value)).append("\n");
    }

    template <typename Number>
    void single(std::string_view name, std::string_view type, std::string_view help, Number value) {
        family(name, type, help);
        sample(name, {}, value);
    }

    void labelled_counter(std::string_view name, std::string_view help, std::string_view label_name,
                          const Metrics::LabelledCounter& counter) {
        family(name, "counter", help);
        for (const auto& [label_value, count] : counter) sample(name, label(label_name, label_value), count);
    }

    void histogram(std::string_view name, std::string_view help, const Histogram& histogram) {
        family(name, "histogram", help);
        histogram_samples(name, {}, histogram);
    }

    // One histogram's samples; `labels` ("" or `a="b"`) go before le.
    void histogram_samples(std::string_view name, std::string_view labels, const Histogram& histogram) {
        const std::string first = labels.empty() ? std::string{} : concat(labels, ",");
        const std::string bucket_name = concat(name, "_bucket");
        std::uint64_t cumulative = 0;
        const auto& bounds = histogram.upper_bounds();
        const auto& counts = histogram.bucket_counts();
        for (std::size_t i = 0; i < bounds.size(); ++i) {
            cumulative += counts[i];
            sample(bucket_name, concat(first, label("le", format_number(bounds[i]))), cumulative);
        }
        sample(bucket_name, concat(first, label("le", "+Inf")), histogram.count());
        sample(concat(name, "_sum"), labels, histogram.sum());
        sample(concat(name, "_count"), labels, histogram.count());
    }

    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

// Events received and rejected by intake: the socket's share is the total less the HTTP intake's.
void render_intake_counters(Exposition& out, const Metrics& metrics) {
    constexpr std::string_view received = "intake_events_received_total";
    out.family(received, "counter", "Events received, valid or not, by intake (socket, http).");
    out.sample(received, label("intake", "socket"), metrics.events_received - metrics.http_events_received);
    out.sample(received, label("intake", "http"), metrics.http_events_received);
    constexpr std::string_view rejected = "intake_events_rejected_total";
    out.family(rejected, "counter", "Events rejected at intake, by intake (socket, http) and reason.");
    for (const auto& [reason, count] : metrics.events_rejected) {
        const auto http = metrics.http_events_rejected.find(reason);
        const std::uint64_t by_http = http == metrics.http_events_rejected.end() ? 0 : http->second;
        const std::string reason_label = label("reason", reason);
        if (count > by_http)
            out.sample(rejected, concat(label("intake", "socket") + ",", reason_label), count - by_http);
        if (by_http > 0) out.sample(rejected, concat(label("intake", "http") + ",", reason_label), by_http);
    }
    out.labelled_counter("http_intake_responses_total", "HTTP intake responses, by status code.", "status",
                         metrics.http_responses);
    out.single("http_intake_connections_refused_total", "counter",
               "HTTP intake connections closed at once: http_max_connections reached and none idle.",
               metrics.http_connections_refused);
    out.single("http_intake_connections_evicted_total", "counter",
               "Idle HTTP intake connections closed to make room for a new one at http_max_connections.",
               metrics.http_connections_evicted);
    out.single("http_intake_requests_timed_out_total", "counter",
               "HTTP intake connections closed because a request was not read within http_request_timeout.",
               metrics.http_requests_timed_out);
    constexpr std::string_view refused = "http_requests_refused_total";
    out.family(refused, "counter",
               "HTTP requests answered 400, 413 or 431 and their connection closed before they were handled, by "
               "endpoint (intake: http, admin) and reason (HttpRequestReader's bounds and framing rules).");
    for (const auto& [intake, counter] :
         {std::pair{"http", &metrics.http_requests_refused}, std::pair{"admin", &metrics.admin_requests_refused}})
        for (const auto& [reason, count] : *counter)
            out.sample(refused, concat(label("intake", intake) + ",", label("reason", reason)), count);
}

// One family with a sample per destination, labelled destination="NAME".
template <typename Value>
void per_destination(Exposition& out, const Metrics& metrics, std::string_view name, std::string_view type,
                     std::string_view help, Value DeliveryMetrics::*field) {
    out.family(name, type, help);
    for (const auto& [destination, m] : metrics.destinations)
        out.sample(name, label("destination", destination), m.*field);
}

void per_destination_labelled(Exposition& out, const Metrics& metrics, std::string_view name, std::string_view help,
                              std::string_view label_name, DeliveryMetrics::LabelledCounter DeliveryMetrics::*field) {
    out.family(name, "counter", help);
    for (const auto& [destination, m] : metrics.destinations)
        for (const auto& [value, count] : m.*field)
            out.sample(name, concat(label("destination", destination) + ",", label(label_name, value)), count);
}

void render_delivery_counters(Exposition& out, const Metrics& metrics) {
    per_destination(out, metrics, "events_filtered_total", "counter",
                    "Accepted events not forwarded to a destination because their type is not in its `types`.",
                    &DeliveryMetrics::events_filtered);
    per_destination(out, metrics, "events_delivered_total", "counter", "Events delivered, answered with a 2xx status.",
                    &DeliveryMetrics::events_delivered);
    per_destination(out, metrics, "events_dead_lettered_total", "counter",
                    "Events given up after their last attempt and dead-lettered.",
                    &DeliveryMetrics::events_dead_lettered);
    per_destination(out, metrics, "delivery_attempts_total", "counter", "HTTP delivery attempts started.",
                    &DeliveryMetrics::delivery_attempts);
    per_destination_labelled(out, metrics, "delivery_attempts_failed_total",
                             "Delivery attempts that failed, by kind of failure.", "kind",
                             &DeliveryMetrics::delivery_attempts_failed);
    per_destination(out, metrics, "delivery_retries_total", "counter",
                    "Failed delivery attempts that were scheduled to be tried again.",
                    &DeliveryMetrics::delivery_retries);
    per_destination_labelled(
        out, metrics, "queue_full_total",
        "Times a destination's queue filled up (max_queue, max_queue_bytes or the spool), by limit.", "limit",
        &DeliveryMetrics::queue_full);
    per_destination(out, metrics, "dead_letter_overflow_total", "counter",
                    "Given-up events only logged because the dead-letter file reached dead_letter_max_bytes.",
                    &DeliveryMetrics::dead_letter_overflow);
    per_destination(out, metrics, "dead_letter_write_failures_total", "counter",
                    "Given-up events only logged because writing the dead-letter file failed.",
                    &DeliveryMetrics::dead_letter_write_failures);
}

void render_delivery_gauges(Exposition& out, const Metrics& metrics) {
    per_destination(out, metrics, "events_in_flight", "gauge", "Events with a delivery attempt in progress.",
                    &DeliveryMetrics::in_flight);
    per_destination(out, metrics, "events_queued", "gauge",
                    "Accepted events waiting for an attempt, including those waiting to retry.",
                    &DeliveryMetrics::queued);
    per_destination(out, metrics, "queued_bytes", "gauge",
                    "Bytes that undelivered events (in flight included) count against max_queue_bytes.",
                    &DeliveryMetrics::queued_bytes);
    per_destination(out, metrics, "live_calls", "gauge", "Calls whose state the daemon currently holds.",
                    &DeliveryMetrics::live_calls);
    per_destination(out, metrics, "open_connections", "gauge", "Open connections to the webhook receiver.",
                    &DeliveryMetrics::open_connections);
    per_destination(out, metrics, "oldest_undelivered_event_age_seconds", "gauge",
                    "Age of the oldest accepted event not yet delivered or given up.",
                    &DeliveryMetrics::oldest_undelivered_age_seconds);
    constexpr std::string_view latency = "delivery_latency_seconds";
    out.family(latency, "histogram", "Time from an event's acceptance to its 2xx response, retries included.");
    for (const auto& [destination, m] : metrics.destinations)
        out.histogram_samples(latency, label("destination", destination), m.delivery_latency);
}

}  // namespace

std::string render_prometheus(const Metrics& metrics, std::string_view build_version) {
    Exposition out;
    out.family("build_info", "gauge", "Version of the running avr-webhookd; the value is always 1.");
    out.sample("build_info", label("version", build_version), std::uint64_t{1});

    out.single("events_received_total", "counter", "Event lines read from producers, valid or not.",
               metrics.events_received);
    out.labelled_counter("events_rejected_total", "Event lines rejected at intake, by reason.", "reason",
                         metrics.events_rejected);
    render_intake_counters(out, metrics);
    render_delivery_counters(out, metrics);
    out.single("producer_connections_refused_total", "counter",
               "Producer connections refused because max_connections was reached.",
               metrics.producer_connections_refused);
    out.single("admin_connections_evicted_total", "counter",
               "Admin connections waiting for a request closed to make room for a new one (admin limit).",
               metrics.admin_connections_evicted);
    out.single("admin_connections_refused_total", "counter",
               "Admin connections closed at once: the limit was reached and none could be evicted.",
               metrics.admin_connections_refused);
    out.single("admin_requests_timed_out_total", "counter",
               "Admin connections closed because a request was not read within the request deadline.",
               metrics.admin_requests_timed_out);
    out.single("producer_connections_evicted_total", "counter",
               "Idle producer connections closed to make room for a new one at max_connections.",
               metrics.producer_connections_evicted);
    out.single("producer_connections_denied_total", "counter",
               "Producer connections refused because the peer is not in producer_uids or producer_gids.",
               metrics.producer_connections_denied);
    out.single("producer_connection_errors_total", "counter",
               "Producer connections closed because of an internal error while serving them.",
               metrics.producer_connection_errors);
    out.single("producer_replies_dropped_total", "counter",
               "Rejection replies dropped because their producer did not read them (ack = errors, "
               "max_reply_backlog full).",
               metrics.producer_replies_dropped);
    out.single("producer_reads_paused_total", "counter",
               "Times a producer's lines stopped being read because it had not read max_reply_backlog bytes of "
               "replies it was promised (ack = all, routing answers).",
               metrics.producer_reads_paused);
    out.single("respond_answered_total", "counter",
               "Events of respond_types whose producer got the receiver's answer (status and body).",
               metrics.respond_answered);
    out.single("respond_unanswered_total", "counter",
               "Events of respond_types whose producer got no answer: none within respond_timeout, or given up "
               "without a response.",
               metrics.respond_unanswered);

    out.single("spool_recovered_total", "counter",
               "Undelivered events found in the spool at start, to be delivered again.", metrics.spool_recovered);
    out.single("spool_corrupt_records_total", "counter",
               "Damaged spool ranges found at start: skipped, or cut when at the end of a segment.",
               metrics.spool_corrupt_records);
    out.single("spool_unreadable_events_total", "counter",
               "Queued events whose spool record could not be read back for delivery (damaged or I/O error).",
               metrics.spool_unreadable_events);
    out.single("spool_write_failures_total", "counter",
               "Spool writes that failed (disk full, I/O error); the lines were rejected.",
               metrics.spool_write_failures);
    out.single("spool_sync_failures_total", "counter", "Spool fdatasync calls that failed.",
               metrics.spool_sync_failures);

    render_delivery_gauges(out, metrics);
    out.single("producer_connections", "gauge", "Producers connected to the event socket.",
               metrics.producer_connections);
    out.single("producer_connections_paused", "gauge",
               "Producer connections whose lines wait until their replies are read or released by the spool's "
               "fdatasync (max_reply_backlog).",
               metrics.producer_connections_paused);
    out.single("http_intake_connections", "gauge", "Open connections to the HTTP intake.", metrics.http_connections);

    out.single("spool_bytes", "gauge", "Bytes of the spool's segment files.", metrics.spool_bytes);
    out.single("spool_records", "gauge", "Events in the spool not yet delivered or dead-lettered.",
               metrics.spool_records);
    out.single("spool_segments", "gauge", "Segment files of the spool.", metrics.spool_segments);
    out.single("spool_disk_full", "gauge",
               "1 while spool writes fail for want of space (ENOSPC, EDQUOT or spool_max_bytes), else 0.",
               metrics.spool_disk_full);

    out.histogram("spool_sync_seconds", "Time one fdatasync of the spool took (one covers many events).",
                  metrics.spool_sync_latency);
    return out.take();
}

}  // namespace avr_webhookd
