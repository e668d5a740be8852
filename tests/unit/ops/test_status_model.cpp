// The status model behind GET /status with a fake clock: states from counters and time, rates
// over the last minute and five minutes, the bounded history and the JSON document.
#include <avr_webhookd/ops/metrics.hpp>
#include <avr_webhookd/ops/status_model.hpp>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

using namespace avr_webhookd;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

using Clock = StatusModel::Clock;
const Clock::time_point t0{std::chrono::hours(1000)};  // an arbitrary steady-clock time

DestinationReading destination(std::string name, std::uint64_t delivered = 0, std::uint64_t retried = 0,
                               std::uint64_t given_up = 0, std::uint64_t waiting = 0) {
    DestinationReading reading;
    reading.name = std::move(name);
    reading.url = "https://receiver.example";
    reading.delivered = delivered;
    reading.retried = retried;
    reading.given_up = given_up;
    reading.waiting = waiting;
    reading.latency_bounds = default_latency_buckets();
    reading.latency_buckets.assign(reading.latency_bounds.size() + 1, 0);
    return reading;
}

StatusReading reading_with(std::vector<DestinationReading> destinations, std::uint64_t socket_received = 0) {
    StatusReading reading;
    reading.socket_received = socket_received;
    reading.destinations = std::move(destinations);
    return reading;
}

WindowCounts minute(std::uint64_t delivered, std::uint64_t retried, std::uint64_t given_up) {
    WindowCounts counts;
    counts.seconds = 60;
    counts.delivered = delivered;
    counts.retried = retried;
    counts.given_up = given_up;
    return counts;
}

FailureRecord failure(std::string code, std::string message, std::string given_up = {}) {
    FailureRecord record;
    record.time = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));
    record.event_type = "call_started";
    record.event_id = "e1";
    record.call = "550e8400-e29b-41d4-a716-446655440000";
    record.attempt = 2;
    record.code = std::move(code);
    record.status = 503;
    record.message = std::move(message);
    record.given_up = std::move(given_up);
    record.block = "[WEBHOOK][CALL_STARTED] Retry failed\nWebhook Error:";
    return record;
}

StatusModel model() {
    StatusInfo info;
    info.version = "9.9.9";
    info.started = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));
    info.socket = "/run/avr-webhookd/events.sock";
    info.spool_dir = "/var/lib/avr-webhookd/spool";
    info.spool_sync = "always";
    info.spool_max_bytes = 1 << 30;
    info.dead_letter = "/var/lib/avr-webhookd/dead-letter.ndjson";
    return StatusModel(info, t0);
}

}  // namespace

TEST_CASE("status: a destination's state follows its counters over the last minute", "[status]") {
    auto idle = destination("a");
    CHECK(judge_destination(minute(0, 0, 0), idle).state == DestinationState::idle);
    CHECK(judge_destination(minute(0, 0, 0), idle).reason == "nothing to deliver yet");
    CHECK(judge_destination(minute(0, 0, 0), destination("a", 5)).reason ==
          "nothing waiting, nothing in the last minute");

    auto busy = destination("a", 10, 0, 0, 3);
    auto verdict = judge_destination(minute(4, 0, 0), busy);
    CHECK(verdict.state == DestinationState::delivering);
    CHECK(verdict.reason == "4 delivered in the last minute, 3 waiting");
    // Waiting events alone (the first attempt has not ended yet) count as delivering.
    CHECK(judge_destination(minute(0, 0, 0), destination("a", 0, 0, 0, 1)).state == DestinationState::delivering);

    auto retrying = destination("a", 10, 2, 0, 1);
    retrying.failures.push_back(failure("HTTP 503", "Request failed with status code 503"));
    verdict = judge_destination(minute(4, 2, 0), retrying);
    CHECK(verdict.state == DestinationState::retrying);
    CHECK(verdict.reason ==
          "2 failed attempts in the last minute, 1 event waiting to be tried (again); last: HTTP 503 Request failed "
          "with status code 503");
    // Failed attempts but nothing waits any more: they were delivered in the end.
    CHECK(judge_destination(minute(4, 2, 0), destination("a", 10, 2)).state == DestinationState::delivering);

    auto failing = destination("a", 0, 3, 1);
    failing.failures.push_back(failure("ECONNREFUSED", "ECONNREFUSED", "retry budget exhausted (4 attempts)"));
    verdict = judge_destination(minute(0, 3, 1), failing);
    CHECK(verdict.state == DestinationState::failing);
    CHECK(verdict.reason == "1 event given up in the last minute and none delivered; last: ECONNREFUSED");
    // Given up but also delivered: it still delivers, and says what it gave up.
    verdict = judge_destination(minute(5, 0, 2), destination("a", 5, 0, 2));
    CHECK(verdict.state == DestinationState::delivering);
    CHECK(verdict.reason == "5 delivered in the last minute, 2 given up");

    // What /healthz says of it comes first, even when the last minute was quiet.
    auto unhealthy = destination("a");
    unhealthy.unhealthy = "the last event was given up (x) and none has been delivered since";
    verdict = judge_destination(minute(0, 0, 0), unhealthy);
    CHECK(verdict.state == DestinationState::failing);
    CHECK(verdict.reason == *unhealthy.unhealthy);
}

TEST_CASE("status: windows take the newest reading old enough, or the start", "[status]") {
    auto status = model();
    CHECK(status.record(t0, reading_with({destination("a")})));
    CHECK_FALSE(status.record(t0 + 4s, reading_with({destination("a", 100)})));  // within the interval
    for (int i = 1; i <= 60; ++i)  // one reading every 5 s for five minutes, 2 delivered per second
        CHECK(status.record(t0 + i * 5s, reading_with({destination("a", 10u * i, i, 0)})));

    const auto now = t0 + 300s;
    const auto current = destination("a", 600, 60);
    auto last_minute = status.window(now, current, 1min);
    CHECK(last_minute.seconds == Approx(60));
    CHECK(last_minute.delivered == 120);
    CHECK(last_minute.retried == 12);
    auto five = status.window(now, current, 5min);
    CHECK(five.seconds == Approx(300));
    CHECK(five.delivered == 600);

    // Right after the start there is no reading a minute old: the window is shorter.
    auto fresh = model();
    const auto early = fresh.window(t0 + 20s, destination("a", 40), 1min);
    CHECK(early.seconds == Approx(20));
    CHECK(early.delivered == 40);
    // A destination added by a reload counts from zero; counters never go back.
    CHECK(status.window(now, destination("new", 7), 1min).delivered == 7);
    CHECK(status.window(now, destination("a", 0), 1min).delivered == 0);
}

TEST_CASE("status: the history keeps one reading per interval and no more than its bound", "[status]") {
    StatusModel status(StatusInfo{}, t0, StatusModel::Options{5s, 180});
    for (int i = 0; i < 10000; ++i) status.record(t0 + i * 1s, reading_with({destination("a", i)}));
    CHECK(status.history_size() == 180);  // 15 minutes of readings 5 s apart, whatever the run time

    const auto document = status.document(t0 + 10000s, {}, reading_with({destination("a", 10000)}));
    const auto& history = document.at("destinations").as_array().at(0).at("history").as_object();
    const auto& t = history.at("t").as_array();
    REQUIRE(t.size() == 180);  // 179 intervals between kept readings, and the live reading
    CHECK(history.at("delivered").as_array().size() == t.size());
    CHECK(history.at("queue").as_array().size() == t.size());
    CHECK(t.back().as_double() == 0);
    CHECK(t.front().as_double() == Approx(-5 * 179));
    for (std::size_t i = 1; i < t.size(); ++i) CHECK(t[i].as_double() > t[i - 1].as_double());
    CHECK(history.at("delivered").as_array().at(0).as_double() == Approx(1.0));  // one per second
}

TEST_CASE("status: latency quantiles as histogram_quantile computes them", "[status]") {
    const std::vector<double> bounds{0.1, 0.5, 1};
    CHECK_FALSE(histogram_quantile(0.5, bounds, {0, 0, 0, 0}));
    CHECK(*histogram_quantile(0.5, bounds, {10, 0, 0, 0}) == Approx(0.05));
    CHECK(*histogram_quantile(0.5, bounds, {0, 10, 0, 0}) == Approx(0.3));
    CHECK(*histogram_quantile(0.99, bounds, {90, 0, 10, 0}) == Approx(0.95));
    CHECK(*histogram_quantile(0.99, bounds, {0, 0, 0, 5}) == Approx(1));  // +Inf: the largest bound
}

TEST_CASE("status: the document shows every part of the daemon and of each destination", "[status]") {
    auto status = model();
    auto a = destination("a", 0, 0, 0, 2);
    status.record(t0, reading_with({a, destination("b")}, 0));

    a.delivered = 30;
    a.attempts = 31;
    a.in_flight = 1;
    a.oldest_age_seconds = 4.25;
    a.latency_buckets[2] = 30;  // (0.01, 0.025]
    auto b = destination("b", 0, 6, 3);
    b.only_logged = 1;
    b.failures = {failure("HTTP 503", "old"), failure("HTTP 503", "newest", "retry budget exhausted (4 attempts)")};
    auto now = reading_with({a, b}, 90);
    now.http_received = 12;
    now.spool_bytes = 4096;
    now.spool_records = 3;
    now.unhealthy = "destination b: the last event was given up";
    const auto document =
        status.document(t0 + 30s, std::chrono::system_clock::time_point(std::chrono::seconds(1767225630)), now);

    CHECK(document.at("version") == "9.9.9");
    CHECK(document.at("now") == "2026-01-01T00:00:30.000Z");
    CHECK(document.at("started") == "2026-01-01T00:00:00.000Z");
    CHECK(document.at("uptime_seconds").as_double() == 30);
    CHECK(document.at("healthy") == false);
    CHECK(document.at("unhealthy_reason") == "destination b: the last event was given up");
    CHECK(document.at("intakes").at("socket").at("rate_1m").as_double() == Approx(3));
    CHECK(document.at("intakes").at("socket").at("address") == "/run/avr-webhookd/events.sock");
    CHECK(document.at("intakes").at("http").at("enabled") == false);
    CHECK(document.at("intakes").at("http").at("rate_5m").as_double() == Approx(0.4));
    CHECK(document.at("spool").at("waiting") == 3);
    CHECK(document.at("spool").at("bytes") == 4096);
    CHECK(document.at("spool").at("oldest_age_seconds").as_double() == Approx(4.3));
    CHECK(document.at("dead_letter").at("file") == "/var/lib/avr-webhookd/dead-letter.ndjson");

    const auto& first = document.at("destinations").as_array().at(0);
    CHECK(first.at("name") == "a");
    CHECK(first.at("state") == "delivering");
    CHECK(first.at("totals").at("delivered") == 30);
    CHECK(first.at("rates").at("1m").at("delivered").as_double() == Approx(1));
    CHECK(first.at("queue").at("waiting") == 2);
    CHECK(first.at("queue").at("in_flight") == 1);
    CHECK(first.at("latency").at("count") == 30);
    CHECK(first.at("latency").at("p50_seconds").as_double() == Approx(0.0175));
    CHECK(first.at("recent_failures").as_array().empty());

    const auto& second = document.at("destinations").as_array().at(1);
    CHECK(second.at("state") == "failing");
    CHECK(second.at("latency").at("p99_seconds").is_null());
    CHECK(second.at("dead_letters").at("total") == 3);
    CHECK(second.at("dead_letters").at("only_logged") == 1);
    const auto& failures = second.at("recent_failures").as_array();
    REQUIRE(failures.size() == 2);
    CHECK(failures.at(0).at("message") == "newest");  // newest first
    CHECK(failures.at(0).at("given_up") == "retry budget exhausted (4 attempts)");
    CHECK(failures.at(1).at("given_up").is_null());
    CHECK(failures.at(0).at("status") == 503);
    CHECK(std::string_view(failures.at(0).at("block").as_string()).starts_with("[WEBHOOK][CALL_STARTED] Retry failed"));

    // Right at the start the rates are unknown, not zero.
    const auto start = model().document(t0, {}, reading_with({destination("a")}));
    CHECK(start.at("destinations").as_array().at(0).at("rates").at("1m").at("delivered").is_null());
}

TEST_CASE("status: the rendered JSON is valid UTF-8 whatever a path or reason holds", "[status]") {
    StatusInfo info;
    info.socket = "/tmp/\xff\xfe.sock";
    StatusModel status(info, t0);
    auto reading = reading_with({destination("a")});
    reading.unhealthy = std::string("bad \xc3 byte");
    const auto text = status.render(t0 + 1s, {}, reading);
    boost::system::error_code ec;
    const auto parsed = json::parse(text, ec);
    REQUIRE_FALSE(ec);
    CHECK(parsed.at("intakes").at("socket").at("address") == "/tmp/\xef\xbf\xbd\xef\xbf\xbd.sock");
}

TEST_CASE("status: recent failures are a bounded ring, oldest first", "[status]") {
    RecentFailures failures;
    for (int i = 0; i < 12; ++i) failures.add(failure("HTTP 503", std::to_string(i)));
    REQUIRE(failures.records().size() == RecentFailures::capacity);
    CHECK(failures.records().front().message == std::to_string(12 - RecentFailures::capacity));
    CHECK(failures.records().back().message == "11");
}
