// `avr-webhookd status`: the terminal view of a /status document.
#include <avr_webhookd/ops/status_model.hpp>
#include <avr_webhookd/tools/status_command.hpp>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

using namespace avr_webhookd;
using namespace std::chrono_literals;

namespace {

boost::json::value sample_document() {
    const StatusModel::Clock::time_point start{std::chrono::hours(10)};
    StatusInfo info;
    info.version = "1.2.3";
    info.socket = "/run/avr-webhookd/events.sock";
    info.http_listen = "127.0.0.1:9000";
    info.spool_dir = "/var/lib/avr-webhookd/spool";
    info.spool_sync = "always";
    info.spool_max_bytes = 1 << 30;
    info.dead_letter = "/var/lib/avr-webhookd/dead-letter.ndjson";
    StatusModel model(info, start);
    StatusReading reading;
    reading.socket_received = 120;
    reading.spool_bytes = 3 << 20;
    reading.spool_records = 4;
    DestinationReading ok;
    ok.name = "default";
    ok.url = "https://receiver.example";
    ok.delivered = 120;
    ok.latency_bounds = {0.01, 0.1};
    ok.latency_buckets = {0, 120, 0};
    DestinationReading bad;
    bad.name = "crm";
    bad.url = "http://crm.example:8080";
    bad.given_up = 6;
    bad.waiting = 4;
    bad.oldest_age_seconds = 125;
    FailureRecord failure;
    failure.code = "HTTP 503";
    failure.attempt = 4;
    failure.given_up = "retry budget exhausted (4 attempts)";
    failure.message = "Service Unavailable";
    failure.block = "[WEBHOOK][CALL_STARTED] Retry failed\nWebhook Error:\nMessage: Service Unavailable\x1b[2J";
    bad.failures.push_back(failure);
    reading.destinations = {ok, bad};
    reading.unhealthy = "destination crm: the last event was given up";
    return model.document(start + 60s, std::chrono::system_clock::time_point(std::chrono::seconds(1767225600)),
                          reading);
}

}  // namespace

TEST_CASE("status view: the daemon, the intakes, the spool and a row per destination", "[status_view]") {
    const auto text = render_status_text(sample_document(), false);
    CHECK_THAT(text, Catch::StartsWith("avr-webhookd 1.2.3, up 1m00s, accepting, UNHEALTHY: destination crm: the last "
                                       "event was given up   2026-01-01T00:00:00.000Z\n"));
    CHECK_THAT(text, Catch::Contains("intake   socket /run/avr-webhookd/events.sock: 0 connections, 2.00 events/s"));
    CHECK_THAT(text, Catch::Contains("         http 127.0.0.1:9000: 0 connections, 0.00 events/s"));
    CHECK_THAT(text, Catch::Contains("spool    /var/lib/avr-webhookd/spool (sync always): 3.0 MiB of 1.0 GiB, 4 events "
                                     "waiting, oldest 2m05s"));
    CHECK_THAT(text,
               Catch::Contains("\n\nDESTINATION  STATE       DELIVERED/s  RETRIED/s  GIVEN UP/s  QUEUE  OLDEST   P50   "
                               "P99  DEAD LETTERS\n"));
    CHECK_THAT(text,
               Catch::Contains("\ndefault      delivering         2.00       0.00        0.00    0+0      0s  55ms  "
                               "99ms             0\n"));
    CHECK_THAT(text,
               Catch::Contains("\ncrm          failing            0.00       0.00        0.10    4+0   2m05s     -     "
                               "-             6\n"));
    CHECK_THAT(text, Catch::Contains("  crm (http://crm.example:8080): 6 events given up in the last minute and none "
                                     "delivered; last: HTTP 503 Service Unavailable\n"));
    CHECK_THAT(text, Catch::Contains("newest failure of crm at 1970-01-01T00:00:00.000Z, attempt 4, given up: retry "
                                     "budget exhausted (4 attempts)\n    [WEBHOOK][CALL_STARTED] Retry failed\n"));
    // What the daemon sent cannot steer the terminal.
    CHECK(text.find('\x1b') == std::string::npos);
    CHECK_THAT(text, Catch::Contains("Message: Service Unavailable?[2J"));
}

TEST_CASE("status view: colours the states only when asked, and copes with a partial document", "[status_view]") {
    CHECK_THAT(render_status_text(sample_document(), true), Catch::Contains("\x1b[1;31mfailing\x1b[0m"));
    const auto text = render_status_text(boost::json::parse(R"({"destinations":[{"name":"x"}]})"), false);
    CHECK_THAT(text, Catch::Contains("avr-webhookd -, up -"));
    CHECK_THAT(text, Catch::Contains("\nx            -"));
    CHECK(render_status_text(boost::json::parse("[]"), false).find("DESTINATION") != std::string::npos);
}
