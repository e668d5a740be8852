#include "support/prometheus_text.hpp"

#include <avr_webhookd/ops/metrics.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <set>

using namespace avr_webhookd;
using namespace avr_webhookd::test;
using namespace std::chrono_literals;

namespace {

double value_of(const MetricFamily& family, const std::map<std::string, std::string>& labels = {}) {
    const auto value = find_value(family, labels);
    if (!value) FAIL("no sample with the given labels");
    return *value;
}

// Checks the histogram's invariants and returns its cumulative bucket counts by "le".
std::vector<std::pair<double, double>> check_histogram(const MetricFamily& family, const std::string& name) {
    std::vector<std::pair<double, double>> buckets;
    double sum = std::nan(""), count = std::nan("");
    for (const auto& sample : family.samples) {
        if (sample.name == name + "_bucket") {
            REQUIRE(sample.labels.contains("le"));
            buckets.emplace_back(parse_value(sample.labels.at("le")), sample.value);
        } else if (sample.name == name + "_sum") {
            sum = sample.value;
        } else if (sample.name == name + "_count") {
            count = sample.value;
        }
    }
    REQUIRE_FALSE(std::isnan(sum));
    REQUIRE_FALSE(std::isnan(count));
    REQUIRE(buckets.size() >= 2);
    for (std::size_t i = 1; i < buckets.size(); ++i) {
        CHECK(buckets[i - 1].first < buckets[i].first);
        CHECK(buckets[i - 1].second <= buckets[i].second);
    }
    CHECK(std::isinf(buckets.back().first));
    CHECK(buckets.back().second == count);
    return buckets;
}

const std::vector<std::string> expected_families = {
    "avr_webhookd_build_info",
    "avr_webhookd_events_received_total",
    "avr_webhookd_events_rejected_total",
    "avr_webhookd_events_filtered_total",
    "avr_webhookd_events_delivered_total",
    "avr_webhookd_events_dead_lettered_total",
    "avr_webhookd_delivery_attempts_total",
    "avr_webhookd_delivery_attempts_failed_total",
    "avr_webhookd_delivery_retries_total",
    "avr_webhookd_producer_connections_refused_total",
    "avr_webhookd_producer_connections_evicted_total",
    "avr_webhookd_producer_connections_denied_total",
    "avr_webhookd_producer_connection_errors_total",
    "avr_webhookd_producer_replies_dropped_total",
    "avr_webhookd_producer_reads_paused_total",
    "avr_webhookd_respond_answered_total",
    "avr_webhookd_respond_unanswered_total",
    "avr_webhookd_admin_connections_evicted_total",
    "avr_webhookd_admin_connections_refused_total",
    "avr_webhookd_admin_requests_timed_out_total",
    "avr_webhookd_queue_full_total",
    "avr_webhookd_dead_letter_overflow_total",
    "avr_webhookd_dead_letter_write_failures_total",
    "avr_webhookd_queued_bytes",
    "avr_webhookd_events_in_flight",
    "avr_webhookd_events_queued",
    "avr_webhookd_live_calls",
    "avr_webhookd_open_connections",
    "avr_webhookd_producer_connections",
    "avr_webhookd_producer_connections_paused",
    "avr_webhookd_oldest_undelivered_event_age_seconds",
    "avr_webhookd_delivery_latency_seconds",
    "avr_webhookd_spool_recovered_total",
    "avr_webhookd_spool_corrupt_records_total",
    "avr_webhookd_spool_unreadable_events_total",
    "avr_webhookd_spool_write_failures_total",
    "avr_webhookd_spool_sync_failures_total",
    "avr_webhookd_spool_bytes",
    "avr_webhookd_spool_records",
    "avr_webhookd_spool_segments",
    "avr_webhookd_spool_disk_full",
    "avr_webhookd_spool_sync_seconds",
    "avr_webhookd_intake_events_received_total",
    "avr_webhookd_intake_events_rejected_total",
    "avr_webhookd_http_intake_responses_total",
    "avr_webhookd_http_intake_connections_refused_total",
    "avr_webhookd_http_intake_connections_evicted_total",
    "avr_webhookd_http_intake_requests_timed_out_total",
    "avr_webhookd_http_intake_connections",
    "avr_webhookd_http_requests_refused_total",
};

}  // namespace

TEST_CASE("metrics: a fresh registry renders every family", "[metrics]") {
    Metrics metrics;
    metrics.destination("default");
    const auto families = parse_exposition(render_prometheus(metrics, "1.2.3"));
    std::set<std::string> names;
    for (const auto& [name, family] : families) names.insert(name);
    CHECK(names == std::set<std::string>(expected_families.begin(), expected_families.end()));

    CHECK(families.at("avr_webhookd_build_info").type == "gauge");
    CHECK(value_of(families.at("avr_webhookd_build_info"), {{"version", "1.2.3"}}) == 1);
    CHECK(families.at("avr_webhookd_events_received_total").type == "counter");
    CHECK(value_of(families.at("avr_webhookd_events_received_total")) == 0);
    CHECK(families.at("avr_webhookd_events_rejected_total").samples.empty());
    CHECK(families.at("avr_webhookd_events_queued").type == "gauge");
    CHECK(families.at("avr_webhookd_delivery_latency_seconds").type == "histogram");
    const auto buckets =
        check_histogram(families.at("avr_webhookd_delivery_latency_seconds"), "avr_webhookd_delivery_latency_seconds");
    CHECK(buckets.size() == default_latency_buckets().size() + 1);
    CHECK(check_histogram(families.at("avr_webhookd_spool_sync_seconds"), "avr_webhookd_spool_sync_seconds").size() ==
          spool_sync_buckets().size() + 1);
}

TEST_CASE("metrics: the default version is the build's", "[metrics]") {
    const auto families = parse_exposition(render_prometheus(Metrics{}));
    CHECK(value_of(families.at("avr_webhookd_build_info"), {{"version", version}}) == 1);
}

TEST_CASE("metrics: values are rendered where they belong", "[metrics]") {
    Metrics metrics;
    metrics.events_received = 12;
    metrics.count_rejected("invalid_json");
    metrics.count_rejected("invalid_json");
    metrics.count_rejected("queue_full");
    auto& delivery = metrics.destination("default");
    delivery.events_filtered = 1;
    delivery.events_delivered = 7;
    delivery.events_dead_lettered = 2;
    delivery.delivery_attempts = 15;
    delivery.count_failed_attempt("timeout");
    delivery.delivery_retries = 6;
    delivery.in_flight = 3;
    delivery.queued = 4;
    delivery.live_calls = 5;
    delivery.open_connections = 6;
    metrics.producer_connections = 1;
    delivery.oldest_undelivered_age_seconds = 2.5;
    metrics.destination("crm").events_delivered = 3;

    const auto text = render_prometheus(metrics, "0.1.0");
    const auto families = parse_exposition(text);
    auto value = [&](const std::string& name, const std::map<std::string, std::string>& labels = {}) {
        return value_of(families.at("avr_webhookd_" + name), labels);
    };
    CHECK(value("events_received_total") == 12);
    CHECK(value("events_rejected_total", {{"reason", "invalid_json"}}) == 2);
    CHECK(value("events_rejected_total", {{"reason", "queue_full"}}) == 1);
    const std::map<std::string, std::string> by_default{{"destination", "default"}};
    CHECK(value("events_filtered_total", by_default) == 1);
    CHECK(value("events_delivered_total", by_default) == 7);
    CHECK(value("events_delivered_total", {{"destination", "crm"}}) == 3);
    CHECK(value("events_dead_lettered_total", by_default) == 2);
    CHECK(value("delivery_attempts_total", by_default) == 15);
    CHECK(value("delivery_attempts_failed_total", {{"destination", "default"}, {"kind", "timeout"}}) == 1);
    CHECK(value("delivery_retries_total", by_default) == 6);
    CHECK(value("events_in_flight", by_default) == 3);
    CHECK(value("events_queued", by_default) == 4);
    CHECK(value("live_calls", by_default) == 5);
    CHECK(value("open_connections", by_default) == 6);
    CHECK(value("producer_connections") == 1);
    CHECK(value("oldest_undelivered_event_age_seconds", by_default) == 2.5);
    CHECK_THAT(text, Catch::Contains("\navr_webhookd_events_delivered_total{destination=\"crm\"} 3\n"));
    CHECK_THAT(text, Catch::Contains("\navr_webhookd_events_received_total 12\n"));
    CHECK_THAT(text, Catch::Contains("\navr_webhookd_events_rejected_total{reason=\"invalid_json\"} 2\n"));
}

TEST_CASE("metrics: large counters are exact", "[metrics]") {
    Metrics metrics;
    metrics.events_received = std::numeric_limits<std::uint64_t>::max();
    CHECK_THAT(render_prometheus(metrics),
               Catch::Contains("\navr_webhookd_events_received_total 18446744073709551615\n"));
}

TEST_CASE("metrics: histogram buckets are cumulative", "[metrics]") {
    Metrics metrics;
    auto& delivery = metrics.destination("default");
    delivery.observe_delivery_latency(3ms);    // <= 0.005
    delivery.observe_delivery_latency(5ms);    // <= 0.005 (bounds are inclusive)
    delivery.observe_delivery_latency(120ms);  // <= 0.25
    delivery.observe_delivery_latency(2s);     // <= 2.5
    delivery.observe_delivery_latency(2h);     // +Inf only
    delivery.observe_delivery_latency(-1ms);   // clock skew: counted as 0

    const auto families = parse_exposition(render_prometheus(metrics));
    const auto& family = families.at("avr_webhookd_delivery_latency_seconds");
    const auto buckets = check_histogram(family, "avr_webhookd_delivery_latency_seconds");
    auto cumulative_at = [&](double le) {
        for (const auto& [bound, count] : buckets)
            if (bound == le) return count;
        FAIL("no bucket le=" << le);
        return -1.0;
    };
    CHECK(cumulative_at(0.005) == 3);
    CHECK(cumulative_at(0.01) == 3);
    CHECK(cumulative_at(0.1) == 3);
    CHECK(cumulative_at(0.25) == 4);
    CHECK(cumulative_at(2.5) == 5);
    CHECK(cumulative_at(3600) == 5);
    CHECK(cumulative_at(std::numeric_limits<double>::infinity()) == 6);

    double sum = 0, count = 0;
    for (const auto& sample : family.samples) {
        if (sample.name == "avr_webhookd_delivery_latency_seconds_sum") sum = sample.value;
        if (sample.name == "avr_webhookd_delivery_latency_seconds_count") count = sample.value;
    }
    CHECK(count == 6);
    CHECK(sum == Approx(0.003 + 0.005 + 0.12 + 2 + 7200));
}

TEST_CASE("metrics: histogram on its own", "[metrics]") {
    Histogram histogram({1, 2});
    histogram.observe(0.5);
    histogram.observe(2);
    histogram.observe(2.0000001);
    histogram.observe(std::nan(""));
    CHECK(histogram.bucket_counts() == std::vector<std::uint64_t>{1, 1, 1});
    CHECK(histogram.count() == 3);
    CHECK(histogram.sum() == Approx(4.5000001));

    CHECK_THROWS_AS(Histogram({2, 1}), std::invalid_argument);
    CHECK_THROWS_AS(Histogram({1, 1}), std::invalid_argument);
    CHECK_THROWS_AS(Histogram({1, std::numeric_limits<double>::infinity()}), std::invalid_argument);
}

TEST_CASE("metrics: label values are escaped", "[metrics]") {
    Metrics metrics;
    const std::string odd = "a\"b\\c\nd";
    metrics.count_rejected(odd);
    const auto text = render_prometheus(metrics, "v\"1\n");
    CHECK_THAT(text, Catch::Contains(R"(avr_webhookd_events_rejected_total{reason="a\"b\\c\nd"} 1)"));
    CHECK_THAT(text, Catch::Contains(R"(avr_webhookd_build_info{version="v\"1\n"} 1)"));

    const auto families = parse_exposition(text);
    CHECK(value_of(families.at("avr_webhookd_events_rejected_total"), {{"reason", odd}}) == 1);
    CHECK(value_of(families.at("avr_webhookd_build_info"), {{"version", "v\"1\n"}}) == 1);
}

TEST_CASE("metrics: the checker catches malformed output", "[metrics]") {
    // Guard against a checker that accepts anything.
    const std::string good = "# HELP x_total h\n# TYPE x_total counter\nx_total 1\n";
    CHECK(parse_exposition(good).at("x_total").samples.size() == 1);
    CHECK_THROWS(parse_exposition("x_total 1\n"));
    CHECK_THROWS(parse_exposition("# HELP x_total h\n# TYPE x_total counter\ny_total 1\n"));
    CHECK_THROWS(parse_exposition("# HELP x_total h\n# TYPE x_total counter\nx_total 1"));
    CHECK_THROWS(parse_exposition("# HELP x_total h\n# TYPE x_total counter\nx_total{a=\"b} 1\n"));
    CHECK_THROWS(parse_exposition("# HELP x_total h\n# TYPE x_total counter\nx_total one\n"));
    CHECK_THROWS(parse_exposition("# HELP x h\n# TYPE x counter\nx 1\n"));
    CHECK_THROWS(
        parse_exposition("# HELP x h\n# TYPE x gauge\nx 1\n# HELP y h\n# TYPE y gauge\n"
                         "y 1\n# HELP x h\n# TYPE x gauge\nx 2\n"));
    CHECK_THROWS(parse_exposition("# HELP x h\n# TYPE x histogram\nx 1\n"));
}

TEST_CASE("metrics: events received and rejected are labelled by intake", "[metrics]") {
    Metrics metrics;
    metrics.events_received = 10;  // both intakes
    metrics.http_events_received = 4;
    metrics.count_rejected("invalid_json");  // socket
    metrics.count_http_rejected("invalid_json");
    metrics.count_http_rejected("unauthorized");
    metrics.count_http_response(200);
    metrics.count_http_response(401);
    metrics.http_connections = 2;
    const auto families = parse_exposition(render_prometheus(metrics, "0.1.0"));
    auto value = [&](const std::string& name, const std::map<std::string, std::string>& labels = {}) {
        return value_of(families.at("avr_webhookd_" + name), labels);
    };
    CHECK(value("intake_events_received_total", {{"intake", "socket"}}) == 6);
    CHECK(value("intake_events_received_total", {{"intake", "http"}}) == 4);
    CHECK(value("intake_events_rejected_total", {{"intake", "socket"}, {"reason", "invalid_json"}}) == 1);
    CHECK(value("intake_events_rejected_total", {{"intake", "http"}, {"reason", "invalid_json"}}) == 1);
    CHECK(value("intake_events_rejected_total", {{"intake", "http"}, {"reason", "unauthorized"}}) == 1);
    CHECK(value("events_rejected_total", {{"reason", "invalid_json"}}) == 2);
    CHECK(value("http_intake_responses_total", {{"status", "401"}}) == 1);
    CHECK(value("http_intake_connections") == 2);
}

TEST_CASE("metrics: requests refused at the edge are labelled by endpoint and reason", "[metrics]") {
    Metrics metrics;
    CHECK(parse_exposition(render_prometheus(metrics)).at("avr_webhookd_http_requests_refused_total").samples.empty());
    ++Metrics::at(metrics.http_requests_refused, "too_many_fields");
    ++Metrics::at(metrics.http_requests_refused, "too_many_fields");
    ++Metrics::at(metrics.http_requests_refused, "transfer_encoding");
    ++Metrics::at(metrics.admin_requests_refused, "request_too_large");
    const auto families = parse_exposition(render_prometheus(metrics));
    const auto& refused = families.at("avr_webhookd_http_requests_refused_total");
    CHECK(refused.type == "counter");
    CHECK(refused.samples.size() == 3);
    CHECK(value_of(refused, {{"intake", "http"}, {"reason", "too_many_fields"}}) == 2);
    CHECK(value_of(refused, {{"intake", "http"}, {"reason", "transfer_encoding"}}) == 1);
    CHECK(value_of(refused, {{"intake", "admin"}, {"reason", "request_too_large"}}) == 1);
}
