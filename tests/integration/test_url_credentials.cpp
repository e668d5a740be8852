// Issue 7 item 13: a URL that check-config accepts also starts the daemon, and user:password@
// reaches the receiver as Authorization: Basic, as AVR Core's axios sends it, never in the logs.
#include "../support/daemon_fixture.hpp"

#include <catch2/catch.hpp>

using namespace avr_webhookd;
using namespace avr_webhookd::test;
using namespace std::chrono_literals;

TEST_CASE("a url with user:password@ passes check-config, starts, and is sent as Authorization: Basic",
          "[integration][url]") {
    TempDir dir;
    ReceiverThread receiver;
    // "http://127.0.0.1:PORT/webhooks/avr" with credentials that need percent-decoding.
    const std::string base = receiver.url("/webhooks/avr/T0K3N");
    const std::string url = "http://avr%40user:pa%3Ass-w0rd@" + base.substr(std::string("http://").size());

    Process::Options check;
    check.arguments = {daemon_binary(), "check-config", "--config", "", "--url", url};
    check.output_directory = dir.path();
    check.name = "check";
    Process checker(check);
    const auto check_exit = checker.wait(10s);
    REQUIRE(check_exit);
    CHECK(check_exit->success());
    CHECK_THAT(checker.stdout_text(), Catch::Contains("url = http://<redacted>@127.0.0.1:"));
    CHECK(checker.stdout_text().find("pa%3Ass-w0rd") == std::string::npos);
    CHECK(checker.stdout_text().find("T0K3N") == std::string::npos);

    DaemonProcess daemon(dir, {"--url", url});
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), event_line("550e8400-e29b-41d4-a716-446655440000", "call_started") + "\n");
    REQUIRE(receiver.wait_for_requests(1));
    const auto request = receiver.requests().at(0);
    CHECK(header(request, "authorization") == "Basic YXZyQHVzZXI6cGE6c3MtdzByZA==");  // base64("avr@user:pa:ss-w0rd")
    CHECK(request.target == "/webhooks/avr/T0K3N");
    CHECK(header(request, "host") == base.substr(7, base.find('/', 7) - 7));
    REQUIRE(daemon.stop());
    const auto log = daemon.log();
    CHECK(log.find("pa%3Ass-w0rd") == std::string::npos);
    CHECK(log.find("pa:ss") == std::string::npos);
    CHECK(log.find("T0K3N") == std::string::npos);
    CHECK_THAT(log, Catch::Contains("http://<redacted>@127.0.0.1:"));
}
