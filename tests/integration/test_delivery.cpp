// The real daemon delivering to an in-process receiver: order, retries, outcomes, dead letters,
// keep-alive, signatures and shutdown.
#include "../support/daemon_fixture.hpp"

#include <avr_webhookd/delivery/signature.hpp>
#include <avr_webhookd/common/url.hpp>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <csignal>
#include <map>

using namespace avr_webhookd;
using namespace avr_webhookd::test;

namespace {

constexpr std::string_view call = "550e8400-e29b-41d4-a716-446655440000";

std::vector<std::string> fast_retry_flags() { return {"--retry-base", "20ms", "--retry-max-delay", "100ms"}; }

std::vector<std::string> with(std::vector<std::string> base, std::initializer_list<std::string> more) {
    base.insert(base.end(), more);
    return base;
}

}  // namespace

TEST_CASE("delivery sends the exact body and headers", "[integration][delivery]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(
        dir, {"--url", receiver.url("/hooks/avr?tenant=7"), "--secret", "plain-secret", "--agent-id", "agent-42"});
    REQUIRE(daemon.wait_ready());
    const std::string line =
        R"({"id":"evt-1","uuid":"550e8400-e29b-41d4-a716-446655440000","type":"transcription","timestamp":"2024-01-01T12:01:45.000Z","payload":{"text":"Hi \"there\"","role":"agent","score":1.50}})";
    CHECK(exchange(daemon.socket(), line + "\n").empty());
    REQUIRE(receiver.wait_for_requests(1));
    const auto request = receiver.requests().at(0);
    CHECK(request.method == "POST");
    CHECK(request.target == "/hooks/avr?tenant=7");
    CHECK(
        request.body ==
        R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"transcription","timestamp":"2024-01-01T12:01:45.000Z","payload":{"text":"Hi \"there\"","role":"agent","score":1.5}})");
    CHECK(header(request, "content-type") == "application/json");
    CHECK_THAT(header(request, "user-agent"), Catch::StartsWith("avr-webhookd/"));
    CHECK(header(request, "x-avr-webhook-id") == "evt-1");
    CHECK(header(request, "x-avr-webhook-sequence") == "1");
    CHECK(header(request, "x-avr-webhook-attempt") == "1");
    CHECK(header(request, "x-avr-agent-id") == "agent-42");
    CHECK(header(request, "x-avr-webhook-secret") == "plain-secret");
    CHECK(request.status_sent == 200);
    CHECK(daemon.log().find("plain-secret") == std::string::npos);
    REQUIRE(daemon.stop());
}

TEST_CASE("delivery keeps order within each call across many concurrent calls", "[integration][delivery]") {
    TempDir dir;
    ReceiverOptions options;
    options.delay = 2ms;  // lets calls overlap so ordering is really exercised
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--concurrency", "16"});
    REQUIRE(daemon.wait_ready());
    constexpr unsigned calls = 40, events_per_call = 15;
    std::string input;
    for (unsigned i = 0; i < events_per_call; ++i)
        for (unsigned c = 0; c < calls; ++c)
            input += event_line(call_uuid(c), "transcription", std::to_string(i)) + "\n";
    CHECK(exchange(daemon.socket(), input, 30s).empty());
    REQUIRE(receiver.wait_for_requests(calls * events_per_call, 60s));

    std::map<std::string, std::vector<std::string>> texts_by_call;
    std::map<std::string, std::vector<std::string>> sequences_by_call;
    for (const auto& request : receiver.requests()) {
        const auto body = boost::json::parse(request.body).as_object();
        const std::string uuid(body.at("uuid").as_string());
        texts_by_call[uuid].emplace_back(body.at("payload").at("text").as_string());
        sequences_by_call[uuid].push_back(header(request, "x-avr-webhook-sequence"));
    }
    REQUIRE(texts_by_call.size() == calls);
    for (const auto& [uuid, texts] : texts_by_call) {
        INFO(uuid);
        REQUIRE(texts.size() == events_per_call);
        for (unsigned i = 0; i < events_per_call; ++i) {
            CHECK(texts[i] == std::to_string(i));
            CHECK(sequences_by_call[uuid][i] == std::to_string(i + 1));
        }
    }
    // Keep-alive: hundreds of events over at most `concurrency` connections.
    CHECK(receiver.receiver().connections_accepted() <= 16);
    REQUIRE(daemon.stop());
}

TEST_CASE("delivery retries 503s with the same event id and counts attempts", "[integration][delivery][retry]") {
    TempDir dir;
    ReceiverOptions options;
    options.fail_first = 2;
    options.fail_status = 503;
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir, with(fast_retry_flags(), {"--url", receiver.url(), "--retry", "3"}));
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(),
             event_line(call, "call_started", {}, "retry-me") + "\n" + event_line(call, "call_ended") + "\n");
    REQUIRE(receiver.wait_for_requests(4));
    const auto requests = receiver.requests();
    for (int i = 0; i < 3; ++i) {
        CHECK(header(requests[i], "x-avr-webhook-id") == "retry-me");
        CHECK(header(requests[i], "x-avr-webhook-attempt") == std::to_string(i + 1));
    }
    CHECK(requests[2].status_sent == 200);
    CHECK(boost::json::parse(requests[3].body).at("type").as_string() == "call_ended");  // after, never before
    CHECK_THAT(daemon.log(), Catch::Contains("attempt 1 failed") && Catch::Contains("retrying in"));
    CHECK(read_lines(daemon.dead_letter()).empty());
    REQUIRE(daemon.stop());
}

TEST_CASE("delivery replaces a dropped connection and retries", "[integration][delivery][retry]") {
    TempDir dir;
    ReceiverOptions options;
    options.drop_first = 1;
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir, with(fast_retry_flags(), {"--url", receiver.url(), "--retry", "2"}));
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), event_line(call, "call_started") + "\n");
    REQUIRE(receiver.receiver().wait_for(
        [](const auto& requests) { return !requests.empty() && requests.back().status_sent == 200; }, 10s));
    CHECK_THAT(daemon.log(), Catch::Contains("ECONNRESET"));
    REQUIRE(daemon.stop());
}

TEST_CASE("delivery honours Retry-After on 429", "[integration][delivery][retry]") {
    TempDir dir;
    ReceiverOptions options;
    options.fail_first = 1;
    options.fail_status = 429;
    options.retry_after = "1";
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir,
                         {"--url", receiver.url(), "--retry", "1", "--retry-base", "10ms", "--retry-max-delay", "5s"});
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), event_line(call, "call_started") + "\n");
    REQUIRE(receiver.wait_for_requests(2));
    const auto requests = receiver.requests();
    CHECK(requests[1].at - requests[0].at >= std::chrono::milliseconds(950));
    CHECK(requests[1].status_sent == 200);
    REQUIRE(daemon.stop());
}

TEST_CASE("delivery gives up on timeouts after the retry budget and dead-letters the event",
          "[integration][delivery][retry]") {
    TempDir dir;
    ReceiverOptions options;
    options.delay = 1500ms;
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir,
                         with(fast_retry_flags(), {"--url", receiver.url(), "--timeout", "200ms", "--retry", "1"}));
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), event_line(call, "call_started", {}, "slow-1") + "\n");
    REQUIRE(wait_until([&] { return read_lines(daemon.dead_letter()).size() == 1; }, 10s));
    const auto dead = boost::json::parse(read_lines(daemon.dead_letter()).at(0)).as_object();
    CHECK(dead.at("id").as_string() == "slow-1");
    CHECK(dead.at("failure").at("code").as_string() == "ETIMEDOUT");
    CHECK(dead.at("failure").at("attempts").to_number<int>() == 2);
    const auto log = daemon.log();
    CHECK_THAT(log, Catch::Contains(
                        "[WEBHOOK][CALL_STARTED] Retry failed\nWebhook Error:\nMessage: timeout of 200ms exceeded"));
    CHECK_THAT(log,
               Catch::Contains("\nCode: ETIMEDOUT\nURL: " + redact_url(receiver.url()) + "\nMethod: POST\nStatus: \n"));
    REQUIRE(daemon.stop());
}

TEST_CASE("delivery treats 4xx as permanent without stalling the call or others", "[integration][delivery]") {
    TempDir dir;
    ReceiverOptions options;
    options.status_for_type["call_initiated"] = 400;
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir, with(fast_retry_flags(), {"--url", receiver.url(), "--retry", "5"}));
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), event_line(call, "call_initiated") + "\n" + event_line(call, "call_started") + "\n" +
                                  event_line(call_uuid(9), "call_started") + "\n");
    REQUIRE(receiver.wait_for_requests(3));
    CHECK(receiver.requests().size() == 3);  // the 400 was not retried
    REQUIRE(wait_until([&] { return read_lines(daemon.dead_letter()).size() == 1; }, 10s));
    const auto dead = boost::json::parse(read_lines(daemon.dead_letter()).at(0)).as_object();
    CHECK(dead.at("failure").at("status").to_number<int>() == 400);
    CHECK_THAT(std::string(dead.at("failure").at("reason").as_string()), Catch::Contains("permanent"));
    CHECK_THAT(daemon.log(), Catch::Contains("Status: 400"));
    REQUIRE(daemon.stop());
}

TEST_CASE("delivery does not follow redirects", "[integration][delivery]") {
    TempDir dir;
    ReceiverOptions options;
    options.redirect_first = 1;
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir, with(fast_retry_flags(), {"--url", receiver.url(), "--retry", "3"}));
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), event_line(call, "call_started") + "\n");
    REQUIRE(wait_until([&] { return read_lines(daemon.dead_letter()).size() == 1; }, 10s));
    CHECK(receiver.requests().size() == 1);
    CHECK_THAT(read_lines(daemon.dead_letter()).at(0), Catch::Contains("redirect to"));
    REQUIRE(daemon.stop());
}

TEST_CASE("dead letters replay into a daemon and arrive with their ids", "[integration][delivery]") {
    TempDir dir;
    std::string dead_letter_file;
    {
        DaemonProcess failing(dir, {"--url", "http://127.0.0.1:9/unreachable", "--retry", "0"}, {}, "failing");
        REQUIRE(failing.wait_ready());
        exchange(failing.socket(), event_line(call, "call_started", {}, "first") + "\n" +
                                       event_line(call, "transcription", "a \\\"quoted\\\" word", "second") + "\n");
        REQUIRE(wait_until([&] { return read_lines(failing.dead_letter()).size() == 2; }, 15s));
        CHECK_THAT(failing.log(), Catch::Contains("Code: ECONNREFUSED"));
        REQUIRE(failing.stop());
        dead_letter_file = failing.dead_letter().string();
    }
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url()});
    REQUIRE(daemon.wait_ready());
    // A dead-letter line is acknowledged whatever `ack` is, so a replay knows each line's fate.
    const auto replies = exchange(daemon.socket(), read_file(dead_letter_file));
    CHECK(replies ==
          std::vector<std::string>{R"({"ok":true,"line":1,"id":"first"})", R"({"ok":true,"line":2,"id":"second"})"});
    REQUIRE(receiver.wait_for_requests(2));
    const auto requests = receiver.requests();
    CHECK(header(requests[0], "x-avr-webhook-id") == "first");
    CHECK(header(requests[1], "x-avr-webhook-id") == "second");
    CHECK_THAT(requests[1].body, Catch::Contains(R"(a \"quoted\" word)"));
    CHECK(requests[1].body.find("failure") == std::string::npos);
    REQUIRE(daemon.stop());
}

TEST_CASE("delivery forwards only the configured types", "[integration][delivery]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--types", "call_started,call_ended"});
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), event_line(call, "call_started") + "\n" + event_line(call, "transcription", "x") + "\n" +
                                  event_line(call, "call_ended") + "\n");
    REQUIRE(receiver.wait_for_requests(2));
    const auto requests = receiver.requests();
    CHECK(header(requests[1], "x-avr-webhook-sequence") == "2");  // filtered events take no sequence number
    CHECK(boost::json::parse(requests[1].body).at("type").as_string() == "call_ended");
    REQUIRE(daemon.stop());
}

TEST_CASE("delivery signs with hmac-sha256 and standard webhooks as receivers verify",
          "[integration][delivery][signature]") {
    for (auto [mode, secret] :
         {std::pair{"hmac-sha256", "hmac-key"}, std::pair{"standard", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
          std::pair{"standard", "key-one whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}) {
        INFO(mode << " " << secret);
        TempDir dir;
        ReceiverOptions options;
        options.signature = *parse_signature_mode(mode);
        // The receiver knows only the last secret: rotation must still verify.
        const std::string_view all(secret);
        options.secret = std::string(all.substr(all.rfind(' ') == std::string_view::npos ? 0 : all.rfind(' ') + 1));
        ReceiverThread receiver(options);
        DaemonProcess daemon(dir, {"--url", receiver.url(), "--signature", mode, "--secret", secret});
        REQUIRE(daemon.wait_ready());
        exchange(daemon.socket(), event_line(call, "transcription", "signed ✓") + "\n");
        REQUIRE(receiver.wait_for_requests(1));
        CHECK(receiver.requests().at(0).status_sent == 200);
        REQUIRE(daemon.stop());
    }
}

// Memory only (spool_dir = ""); with the spool, test_spool.cpp checks that a stop leaves them there.
TEST_CASE("SIGTERM drains queued events, then dead-letters what shutdown_timeout leaves",
          "[integration][delivery][shutdown]") {
    TempDir dir;
    ReceiverOptions options;
    options.delay = 100ms;
    ReceiverThread receiver(options);
    SECTION("enough time: everything is delivered") {
        DaemonProcess daemon(dir, {"--url", receiver.url(), "--spool-dir", "", "--shutdown-timeout", "20s"});
        REQUIRE(daemon.wait_ready());
        std::string input;
        for (int i = 0; i < 10; ++i) input += event_line(call, "transcription", std::to_string(i)) + "\n";
        exchange(daemon.socket(), input);
        const auto exit = daemon.stop(SIGTERM, 30s);
        REQUIRE(exit);
        CHECK(exit->success());
        CHECK(receiver.requests().size() == 10);
        CHECK(read_lines(daemon.dead_letter()).empty());
    }
    SECTION("too little time: the rest goes to the dead-letter file") {
        DaemonProcess daemon(dir, {"--url", receiver.url(), "--spool-dir", "", "--shutdown-timeout", "250ms"});
        REQUIRE(daemon.wait_ready());
        std::string input;
        for (int i = 0; i < 20; ++i) input += event_line(call, "transcription", std::to_string(i)) + "\n";
        exchange(daemon.socket(), input);
        const auto exit = daemon.stop(SIGTERM, 30s);
        REQUIRE(exit);
        CHECK(exit->success());
        const auto delivered = receiver.requests().size();
        const auto dead = read_lines(daemon.dead_letter());
        CHECK(delivered < 20);
        CHECK(delivered + dead.size() == 20);  // every event accounted for
        int previous = -1;                     // the call's events stay in order in the file
        for (const auto& line : dead) {
            CHECK_THAT(line, Catch::Contains("\"reason\":\"shutdown\""));
            const int text = std::stoi(std::string(boost::json::parse(line).at("payload").at("text").as_string()));
            CHECK(text > previous);
            previous = text;
        }
    }
}

TEST_CASE("max_queue with queue_full = reject dead-letters the overflow and says so",
          "[integration][delivery][limits]") {
    TempDir dir;
    ReceiverOptions options;
    options.delay = 500ms;  // the first delivery is still in flight when all lines are read
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--max-queue", "3", "--queue-full", "reject"});
    REQUIRE(daemon.wait_ready());
    std::string input;
    for (int i = 0; i < 10; ++i)
        input += event_line(call, "transcription", std::to_string(i), "q" + std::to_string(i)) + "\n";
    const auto replies = exchange(daemon.socket(), input);
    REQUIRE(replies.size() == 7);
    for (std::size_t i = 0; i < replies.size(); ++i) {
        CHECK_THAT(replies[i], Catch::Contains("\"line\":" + std::to_string(i + 4)) && Catch::Contains("queue full"));
    }
    REQUIRE(receiver.wait_for_requests(3));
    const auto dead = read_lines(daemon.dead_letter());
    REQUIRE(dead.size() == 7);
    CHECK_THAT(dead[0], Catch::Contains("\"id\":\"q3\"") && Catch::Contains("\"reason\":\"queue_full\""));
    REQUIRE(daemon.stop());
    CHECK(receiver.requests().size() == 3);
}

TEST_CASE("max_queue with queue_full = block slows producers and loses nothing", "[integration][delivery][limits]") {
    TempDir dir;
    ReceiverOptions options;
    options.delay = 5ms;
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--max-queue", "2", "--queue-full", "block"});
    REQUIRE(daemon.wait_ready());
    std::string input;
    for (int i = 0; i < 40; ++i)
        input += event_line(call_uuid(static_cast<unsigned>(i % 3)), "transcription", std::to_string(i)) + "\n";
    CHECK(exchange(daemon.socket(), input, 30s).empty());
    REQUIRE(receiver.wait_for_requests(40, 30s));
    CHECK(read_lines(daemon.dead_letter()).empty());
    REQUIRE(daemon.stop());
}

TEST_CASE("max_age gives up an event that unlimited retries cannot deliver", "[integration][delivery][retry][limits]") {
    TempDir dir;
    ReceiverOptions options;
    options.fail_first = 1000000;
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--retry", "-1", "--retry-base", "50ms", "--retry-max-delay",
                               "100ms", "--max-age", "700ms"});
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), event_line(call, "call_started") + "\n");
    REQUIRE(wait_until([&] { return read_lines(daemon.dead_letter()).size() == 1; }, 10s));
    CHECK_THAT(read_lines(daemon.dead_letter()).at(0), Catch::Contains("max_age exceeded"));
    CHECK(receiver.requests().size() >= 3);  // it kept retrying until then
    REQUIRE(daemon.stop());
}

TEST_CASE("a second signal stops at once and dead-letters what is left", "[integration][delivery][shutdown]") {
    TempDir dir;
    ReceiverOptions options;
    options.delay = 2000ms;
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir,
                         {"--url", receiver.url(), "--spool-dir", "", "--shutdown-timeout", "60s", "--timeout", "10s"});
    REQUIRE(daemon.wait_ready());
    std::string input;
    for (int i = 0; i < 5; ++i) input += event_line(call, "transcription", std::to_string(i)) + "\n";
    exchange(daemon.socket(), input);
    REQUIRE(receiver.wait_for_requests(1));  // the first one is in flight
    daemon.process().send_signal(SIGTERM);
    REQUIRE(daemon.process().wait_for_output("shutting down", 10s));
    const auto exit = daemon.stop(SIGTERM, 10s);
    REQUIRE(exit);
    CHECK(exit->success());
    const auto dead = read_lines(daemon.dead_letter());
    CHECK(dead.size() == 5);  // four queued and the one in flight
    CHECK_THAT(daemon.log(), Catch::Contains("second signal"));
}
