// A backlog with the spool: the receiver is down while thousands of events are queued (most of
// them parked: only their spool place stays in memory), the daemon is restarted in between
// (restored events are parked without reading a body), and once the receiver is back every event
// arrives, complete and in per-call order.
#include "../support/daemon_fixture.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <csignal>
#include <map>

using namespace avr_webhookd;
using namespace avr_webhookd::test;

namespace {

std::size_t count_ok(const std::vector<std::string>& replies) {
    return static_cast<std::size_t>(std::count_if(replies.begin(), replies.end(), [](const std::string& reply) {
        return reply.find("\"ok\":true") != std::string::npos;
    }));
}

// Events first..last of each of `calls` calls, interleaved; ids name call and number.
std::string backlog_lines(unsigned calls, unsigned first, unsigned last) {
    std::string input;
    for (unsigned number = first; number <= last; ++number)
        for (unsigned call = 1; call <= calls; ++call)
            input += event_line(call_uuid(call), "transcription", std::string(150, 'x'),
                                "evt-" + std::to_string(call) + "-" + std::to_string(number)) +
                     "\n";
    return input;
}

// A loopback port nobody listens on now (a receiver bound it and let it go).
std::string free_port() {
    ReceiverThread probe;
    const auto url = probe.url();
    const auto colon = url.rfind(':');
    return url.substr(colon + 1, url.find('/', colon) - colon - 1);
}

}  // namespace

TEST_CASE("spool backlog: thousands of events queued while the receiver is down arrive complete and in order",
          "[integration][spool]") {
    TempDir dir;
    const auto spool = dir / "spool";
    const auto port = free_port();
    constexpr unsigned calls = 10;
    constexpr unsigned before_restart = 200;  // events per call
    constexpr unsigned after_restart = 100;
    // 1 MiB of queue: about 600 whole events fit the resident budget (half of it); the rest is parked.
    const std::vector<std::string> flags = {"--url",
                                            "http://127.0.0.1:" + port + "/webhooks/avr",
                                            "--ack",
                                            "all",
                                            "--spool-dir",
                                            spool.string(),
                                            "--retry",
                                            "-1",
                                            "--retry-base",
                                            "20ms",
                                            "--retry-max-delay",
                                            "200ms",
                                            "--max-queue-bytes",
                                            "1048576",
                                            "--log-level",
                                            "warn"};
    {
        DaemonProcess daemon(dir, flags, {}, "first");
        REQUIRE(daemon.wait_ready());
        CHECK(count_ok(exchange(daemon.socket(), backlog_lines(calls, 1, before_restart), 60s)) ==
              calls * before_restart);
        const auto status = daemon.stop(SIGTERM);
        REQUIRE(status);
        CHECK(status->success());
        CHECK_THAT(daemon.log(), Catch::Contains(std::to_string(calls * before_restart) + " undelivered events stay"));
    }
    DaemonProcess daemon(dir, flags, {}, "second");
    REQUIRE(daemon.wait_ready());
    CHECK(count_ok(exchange(daemon.socket(), backlog_lines(calls, before_restart + 1, before_restart + after_restart),
                            60s)) == calls * after_restart);

    constexpr std::size_t total = calls * (before_restart + after_restart);
    ReceiverOptions options;
    options.quiet = true;
    options.max_recorded = total + 100;
    ReceiverThread receiver(options, "127.0.0.1:" + port);
    REQUIRE(receiver.wait_for_requests(total, 60s));
    std::map<std::string, unsigned> next;  // call uuid -> the number its next event must have
    std::size_t repeated = 0;
    for (const auto& request : receiver.requests()) {
        const auto id = header(request, "x-avr-webhook-id");
        const auto body = boost::json::parse(request.body).as_object();
        const std::string call(body.at("uuid").as_string());
        const auto number = static_cast<unsigned>(std::stoul(id.substr(id.rfind('-') + 1)));
        auto& expected = next.try_emplace(call, 1).first->second;
        if (number < expected) {  // an attempt in flight at the stop is sent again: at least once
            ++repeated;
            continue;
        }
        INFO("call " << call << " event " << id);
        REQUIRE(number == expected);
        CHECK(header(request, "x-avr-webhook-sequence") == std::to_string(number));
        CHECK(body.at("payload").at("text").as_string().size() == 150);
        ++expected;
    }
    CHECK(repeated == 0);
    REQUIRE(next.size() == calls);
    for (const auto& [call, expected] : next) CHECK(expected == before_restart + after_restart + 1);
    CHECK_THAT(daemon.log(), !Catch::Contains("cannot be read back"));
    CHECK(daemon.stop());
}
