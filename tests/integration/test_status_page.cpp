// GET /status and the status page of the real daemon with two destinations, one healthy and one
// answering 503: what a person sees in a real browser (headless Chromium), and `avr-webhookd
// status` in a terminal.

#include "support/browser.hpp"
#include "support/daemon_fixture.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>

using namespace avr_webhookd;
using namespace avr_webhookd::test;
namespace json = boost::json;

namespace {

// The event id the failing destination gives up: markup in it must stay text on the page.
const std::string hostile_id = "<img/src=x/onerror=document.body.dataset.pwned=1>";

// A daemon delivering to a healthy receiver (default) and to one answering 503 (crm, one retry
// 10 ms later, then given up), with the status page on a loopback port, and one call's six events
// delivered to default and given up by crm.
struct TwoDestinations {
    TempDir dir;
    ReceiverThread healthy;
    ReceiverThread failing{always_failing()};
    DaemonProcess daemon{
        dir,
        {"--url", healthy.url(), "--destination-crm-url", failing.url("/hooks/crm?token=secret"),
         "--destination-crm-retry", "1", "--destination-crm-retry-base", "10ms", "--admin", "127.0.0.1:0"}};
    std::string admin;

    TwoDestinations() {
        REQUIRE(daemon.wait_ready());
        admin = logged_admin_address(daemon);
        REQUIRE_FALSE(admin.empty());
        const auto call = call_uuid(1);
        std::string input = event_line(call, "call_started", {}, "start") + "\n";
        for (int i = 1; i <= 4; ++i)
            input += event_line(call, "transcription", "hello", "t" + std::to_string(i)) + "\n";
        input += event_line(call, "call_ended", {}, hostile_id) + "\n";  // the newest failure: on the page
        REQUIRE(exchange(daemon.socket(), input).empty());
        REQUIRE(healthy.wait_for_requests(6));
    }

    json::value status() {
        const auto reply = admin_get(admin, "/status");
        REQUIRE(reply.status == 200);
        return json::parse(reply.body);
    }
    static const json::value& destination(const json::value& status, std::string_view name) {
        for (const auto& each : status.at("destinations").as_array())
            if (each.at("name").as_string() == name) return each;
        FAIL("no destination " << name);
        throw;
    }
    // Until every event has its outcome and both charts have at least two points: the numbers
    // the page shows can then be compared with /status.
    json::value settled() {
        json::value last;
        const bool done = wait_until(
            [&] {
                last = status();
                const auto& ok = destination(last, "default");
                const auto& crm = destination(last, "crm");
                return ok.at("totals").at("delivered") == 6 && crm.at("totals").at("given_up") == 6 &&
                       crm.at("state") == "failing" && ok.at("history").at("t").as_array().size() >= 2 &&
                       crm.at("history").at("t").as_array().size() >= 2;
            },
            30s, 200ms);
        INFO(json::serialize(last));
        REQUIRE(done);
        return last;
    }
};

// The part of the DOM that shows one destination.
std::string section(const std::string& dom, std::string_view name) {
    const auto start = dom.find("data-destination=\"" + std::string(name) + "\"");
    if (start == std::string::npos) return {};
    const auto end = dom.find("data-destination=\"", start + 1);
    return dom.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// The text of the first element with data-field="name" in `html`.
std::string shown(const std::string& html, std::string_view name) {
    const auto attribute = html.find("data-field=\"" + std::string(name) + "\"");
    if (attribute == std::string::npos) return "(no " + std::string(name) + ")";
    const auto start = html.find('>', attribute) + 1;
    return html_unescape(html.substr(start, html.find('<', start) - start));
}

// The d attribute of a chart's line.
std::string chart_path(const std::string& html, std::string_view chart, std::string_view series) {
    const auto svg = html.find("data-chart=\"" + std::string(chart) + "\"");
    if (svg == std::string::npos) return {};
    const auto path = html.find("data-series=\"" + std::string(series) + "\"", svg);
    const auto d = html.find(" d=\"", path);
    if (path == std::string::npos || d == std::string::npos) return {};
    return html.substr(d + 4, html.find('"', d + 4) - d - 4);
}

std::string count_text(const json::value& value) { return std::to_string(value.to_number<std::int64_t>()); }

}  // namespace

TEST_CASE("status page: /status reports both destinations, their states, counts and failures",
          "[integration][status]") {
    TwoDestinations setup;
    const auto status = setup.settled();
    CHECK(status.at("healthy") == false);
    CHECK_THAT(std::string(status.at("unhealthy_reason").as_string()), Catch::StartsWith("destination crm: "));
    CHECK(status.at("intakes").at("socket").at("received") == 6);
    CHECK(status.at("spool").at("enabled") == true);

    const auto& ok = TwoDestinations::destination(status, "default");
    CHECK(ok.at("state") == "delivering");
    CHECK(ok.at("rates").at("1m").at("delivered").as_double() > 0);
    CHECK(ok.at("latency").at("count") == 6);
    CHECK(ok.at("latency").at("p50_seconds").as_double() > 0);
    CHECK(ok.at("recent_failures").as_array().empty());
    CHECK(ok.at("queue").at("waiting") == 0);

    const auto& crm = TwoDestinations::destination(status, "crm");
    CHECK(crm.at("url").as_string() == setup.failing.url(""));  // no path, no query with its token
    CHECK(crm.at("totals").at("retried") == 6);
    CHECK(crm.at("dead_letters").at("total") == 6);
    CHECK_THAT(std::string(crm.at("reason").as_string()), Catch::Contains("given up"));
    const auto& failures = crm.at("recent_failures").as_array();
    REQUIRE(failures.size() == 5);  // the ring's bound, of 12 failures
    const auto& newest = failures.at(0);
    CHECK(newest.at("given_up") == "retry budget exhausted (2 attempts)");
    CHECK(newest.at("event_id").as_string() == hostile_id);
    CHECK(newest.at("status") == 503);
    const std::string block(newest.at("block").as_string());
    CHECK_THAT(block, Catch::StartsWith("[WEBHOOK][CALL_ENDED] Retry failed\nWebhook Error:\n"));
    CHECK_THAT(block, Catch::Contains("\nURL: " + setup.failing.url("") + "\nMethod: POST\nStatus: 503"));
    CHECK(block.find("secret") == std::string::npos);
    REQUIRE(setup.daemon.stop());
}

TEST_CASE("status page: a real browser shows the states, the numbers of /status, a failure block and charts",
          "[integration][status][browser]") {
    if (!program_available(browser_program)) FAIL("chromium is not installed: `make test` installs it");
    TwoDestinations setup;
    const auto status = setup.settled();
    const auto page = "http://" + setup.admin + "/";

    const auto dom = browser_dom(page, setup.dir.path());
    INFO(dom);
    CHECK_THAT(dom, Catch::Contains("data-loaded=\"true\""));
    CHECK(shown(dom, "health") == "unhealthy");

    const auto ok = section(dom, "default");
    const auto crm = section(dom, "crm");
    REQUIRE_FALSE(ok.empty());
    REQUIRE_FALSE(crm.empty());
    CHECK(shown(ok, "state") == "delivering");
    CHECK(shown(crm, "state") == "failing");
    // The numbers a person reads are those of /status (settled: they no longer change).
    const auto& ok_status = TwoDestinations::destination(status, "default");
    const auto& crm_status = TwoDestinations::destination(status, "crm");
    CHECK(shown(ok, "delivered-total") == count_text(ok_status.at("totals").at("delivered")));
    CHECK(shown(crm, "given_up-total") == count_text(crm_status.at("totals").at("given_up")));
    CHECK(shown(crm, "retried-total") == count_text(crm_status.at("totals").at("retried")));
    CHECK(shown(crm, "dead-letters") == count_text(crm_status.at("dead_letters").at("total")));
    CHECK(shown(crm, "url") == std::string(crm_status.at("url").as_string()));
    CHECK(shown(crm, "reason") == std::string(crm_status.at("reason").as_string()));
    CHECK(shown(dom, "socket-received") == "6");
    // The newest failure's block, as the specification prints it.
    const auto block = shown(crm, "failure-block");
    CHECK_THAT(block, Catch::StartsWith("[WEBHOOK][CALL_ENDED] Retry failed\nWebhook Error:\nMessage: "));
    CHECK_THAT(block, Catch::Contains("\nURL: " + setup.failing.url("") + "\nMethod: POST\nStatus: 503"));
    // Charts drawn: each destination's rate and queue lines have points.
    CHECK_THAT(chart_path(ok, "rates", "delivered"), Catch::Matches("M[0-9.]+ [0-9.]+( L[0-9.]+ [0-9.]+)+"));
    CHECK_THAT(chart_path(crm, "rates", "given_up"), Catch::Matches("M[0-9.]+ [0-9.]+( L[0-9.]+ [0-9.]+)+"));
    CHECK_THAT(chart_path(crm, "queue", "queue"), Catch::StartsWith("M"));
    // A hostile event id is shown as text: no element was made of it, and its handler never ran.
    CHECK_THAT(dom, Catch::Contains("call_ended event &lt;img/src=x/onerror=document.body.dataset.pwned=1&gt;"));
    CHECK(dom.find("<img src") == std::string::npos);
    CHECK(dom.find("data-pwned") == std::string::npos);

    // The artifact: what the page looks like, in the build folder (beside the binary).
    const auto png = std::filesystem::path(daemon_binary()).parent_path() / "status-page.png";
    browser_screenshot(page, png, setup.dir.path(), 1280, 1500);
    CHECK(std::filesystem::file_size(png) > 10000);
    std::ifstream file(png, std::ios::binary);
    std::string signature(8, '\0');
    file.read(signature.data(), 8);
    CHECK(signature == "\x89PNG\r\n\x1a\n");
    REQUIRE(setup.daemon.stop());
}

TEST_CASE("status page: `status` prints the table, --json the document, --watch redraws until interrupted",
          "[integration][status]") {
    TwoDestinations setup;
    setup.settled();
    auto result = run_command({daemon_binary(), "status", "--admin", setup.admin}, setup.dir.path(), 30s);
    INFO(result.out << result.err);
    CHECK(result.status.success());
    CHECK_THAT(result.out, Catch::Contains("UNHEALTHY: destination crm: "));
    CHECK_THAT(result.out, Catch::Contains("\ndefault      delivering"));
    CHECK_THAT(result.out, Catch::Contains("\ncrm          failing"));
    CHECK_THAT(result.out, Catch::Contains("newest failure of crm at "));
    CHECK_THAT(result.out, Catch::Contains("    Status: 503\n"));
    CHECK(result.out.find('\x1b') == std::string::npos);  // not a terminal: no colours

    result = run_command({daemon_binary(), "status", "--admin", setup.admin, "--json"}, setup.dir.path(), 30s);
    CHECK(result.status.success());
    CHECK(json::parse(result.out).at("destinations").as_array().size() == 2);

    Process watch({.arguments = {daemon_binary(), "status", "--admin", setup.admin, "--watch", "--interval", "200ms"},
                   .output_directory = setup.dir.path(),
                   .name = "watch"});
    REQUIRE(wait_until([&] { return occurrences(watch.stdout_text(), "\x1b[H\x1b[2J") >= 3; }, 30s));
    CHECK(occurrences(watch.stdout_text(), "DESTINATION") >= 3);
    watch.send_signal(SIGINT);
    const auto ended = watch.wait(10s);
    REQUIRE(ended);
    CHECK(ended->success());

    // An endpoint that is not there: said so, exit 1.
    REQUIRE(setup.daemon.stop());
    result = run_command({daemon_binary(), "status", "--admin", setup.admin}, setup.dir.path(), 30s);
    CHECK(result.status.code == 1);
    CHECK_THAT(result.err, Catch::Contains("cannot reach the admin endpoint at " + setup.admin));
}
