// The drop-in HTTP intake (http_listen): AVR Core's own webhook requests, made as AVR Core makes
// them, against the real daemon and an in-process receiver.
#include "../support/daemon_fixture.hpp"
#include "../support/http_intake_client.hpp"
#include "../support/prometheus_text.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <memory>
#include <optional>

using namespace avr_webhookd::test;
namespace http = boost::beast::http;

namespace {

constexpr std::string_view call = intake_call;
constexpr std::string_view secret = intake_test_secret;
using Clock = std::chrono::steady_clock;
using Client = RawHttpClient;

boost::json::object json_of(const Reply& reply) { return boost::json::parse(reply.body).as_object(); }

std::vector<std::string> http_intake_arguments(const ReceiverThread& receiver) {
    return {"--url", receiver.url(), "--http-listen", "127.0.0.1:0", "--intake-secret", std::string(secret)};
}

// Sends one request and reads its answer: its status, or 0 when none came.
unsigned status_of(Client& client, const std::string& request) {
    client.send(request);
    const auto reply = client.read_reply();
    return reply ? reply->status : 0;
}

std::vector<std::string> with_max_connections(const ReceiverThread& receiver, const std::string& limit) {
    auto arguments = http_intake_arguments(receiver);
    arguments.insert(arguments.end(), {"--http-max-connections", limit});
    return arguments;
}

// A daemon whose HTTP intake takes 3 connections at once, and a producer whose first event was
// answered 200 on a connection it keeps alive, waiting for its next request.
struct ThreeSlots {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon{dir, with_max_connections(receiver, "3")};
    unsigned short port = 0;
    std::unique_ptr<Client> producer;
    ThreeSlots() {
        REQUIRE(daemon.wait_ready());
        port = http_port(daemon);
        producer = std::make_unique<Client>(port);
        REQUIRE(status_of(*producer, core_request(port, core_body("call_started"))) == 200);
    }
};

}  // namespace

TEST_CASE("http intake: AVR Core's request is answered at once while the receiver is slow, and delivered unchanged",
          "[integration][http_intake]") {
    TempDir dir;
    avr_webhookd::ReceiverOptions slow;
    slow.delay = 2000ms;
    ReceiverThread receiver(slow);
    DaemonProcess daemon(dir, http_intake_arguments(receiver));
    REQUIRE(daemon.wait_ready());
    const auto port = http_port(daemon);

    Client client(port);
    const auto body = core_body("transcription");
    const auto started = Clock::now();
    client.send(core_request(port, body));
    const auto reply = client.read_reply();
    const auto took = Clock::now() - started;
    REQUIRE(reply);
    CHECK(reply->status == 200);
    CHECK(reply->headers.at("content-type") == "application/json");
    const auto answer = json_of(*reply);
    CHECK(answer.at("ok").as_bool());
    const std::string id(answer.at("id").as_string());
    CHECK(id.size() == 36);
    CHECK(took < 1000ms);  // the receiver takes 2 s; the answer does not wait for it

    // A second request on the same keep-alive connection.
    client.send(core_request(port, core_body("call_ended", "", "2024-01-01T12:05:00.000Z")));
    const auto second = client.read_reply();
    REQUIRE(second);
    CHECK(second->status == 200);

    REQUIRE(receiver.wait_for_requests(2, 15s));
    const auto requests = receiver.requests();
    CHECK(requests[0].body == body);  // AVR Core's timestamp and bytes kept
    CHECK(header(requests[0], "x-avr-webhook-id") == id);
    REQUIRE(daemon.stop());
}

TEST_CASE("http intake: wrong secret, bad body, wrong method, oversized and wrong content type forward nothing",
          "[integration][http_intake]") {
    TempDir dir;
    ReceiverThread receiver;
    auto arguments = http_intake_arguments(receiver);
    arguments.insert(arguments.end(), {"--max-line", "1024", "--log-level", "debug", "--admin", "127.0.0.1:0"});
    DaemonProcess daemon(dir, arguments);
    REQUIRE(daemon.wait_ready());
    const auto port = http_port(daemon);
    // Any answer but a 2xx ends its connection (Connection: close), so a client without the secret
    // gets one answer per connection.
    const auto expect = [&](const std::string& request, unsigned status, std::string_view error_part) {
        INFO(request.substr(0, 200));
        Client client(port);
        client.send(request);
        const auto reply = client.read_reply();
        REQUIRE(reply);
        CHECK(reply->status == status);
        CHECK(reply->headers.at("connection") == "close");
        CHECK(client.closed_within(5s));
        const auto answer = json_of(*reply);
        CHECK(answer.at("ok").as_bool() == false);
        CHECK_THAT(std::string(answer.at("error").as_string()), Catch::Contains(std::string(error_part)));
        return *reply;
    };
    expect(core_request(port, core_body("call_started"), "not-the-secret"), 401, "wrong X-AVR-WEBHOOK-SECRET");
    expect(core_request(port, R"({"uuid":"abc","type":"call_started"})"), 400, "\"uuid\"");
    expect(core_request(port, core_body("call_started"), secret, "text/plain"), 415, "Content-Type");
    const auto wrong_method = expect(core_request(port, "", secret, "application/json", "GET"), 405, "POST");
    CHECK(wrong_method.headers.at("allow") == "POST");
    expect(core_request(port, core_body("transcription", std::string(2000, 'a'))), 413, "max_line=1024");

    // A good request afterwards is the only one delivered.
    Client good(port);
    good.send(core_request(port, core_body("call_ended")));
    const auto ok = good.read_reply();
    REQUIRE(ok);
    CHECK(ok->status == 200);
    REQUIRE(receiver.wait_for_requests(1));
    CHECK(receiver.requests().size() == 1);
    CHECK_THAT(receiver.requests()[0].body, Catch::Contains("call_ended"));
    CHECK_THAT(daemon.log(), Catch::Contains("POST /events -> 401"));
    CHECK(daemon.log().find(secret) == std::string::npos);

    // /metrics tells the two intakes apart.
    CHECK(exchange(daemon.socket(), "{not json\n").size() == 1);
    Client admin(admin_port(daemon));
    admin.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto metrics = admin.read_reply();
    REQUIRE(metrics);
    const auto families = parse_exposition(metrics->body);
    const auto value = [&](const std::string& name, const std::map<std::string, std::string>& labels) {
        return find_value(families.at("avr_webhookd_" + name), labels).value_or(-1);
    };
    CHECK(value("intake_events_received_total", {{"intake", "http"}}) == 5);  // the GET is no event
    CHECK(value("intake_events_received_total", {{"intake", "socket"}}) == 1);
    CHECK(value("intake_events_rejected_total", {{"intake", "http"}, {"reason", "unauthorized"}}) == 1);
    CHECK(value("intake_events_rejected_total", {{"intake", "http"}, {"reason", "unsupported_media_type"}}) == 1);
    CHECK(value("intake_events_rejected_total", {{"intake", "http"}, {"reason", "line_too_long"}}) == 1);
    CHECK(value("intake_events_rejected_total", {{"intake", "socket"}, {"reason", "invalid_json"}}) == 1);
    CHECK(value("http_intake_responses_total", {{"status", "405"}}) == 1);
    CHECK(value("http_intake_responses_total", {{"status", "200"}}) == 1);
    REQUIRE(daemon.stop());
    CHECK(receiver.requests().size() == 1);
}

TEST_CASE("http intake: the socket and HTTP intakes feeding one call keep its order", "[integration][http_intake]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, http_intake_arguments(receiver));
    REQUIRE(daemon.wait_ready());
    const auto port = http_port(daemon);

    Client client(port);
    constexpr int events = 8;
    for (int i = 0; i < events; ++i) {
        const std::string text = "event " + std::to_string(i);
        if (i % 2 == 0) {
            CHECK(exchange(daemon.socket(), event_line(call, "transcription", text) + "\n").empty());
        } else {
            client.send(core_request(port, core_body("transcription", text)));
            const auto reply = client.read_reply();
            REQUIRE(reply);
            CHECK(reply->status == 200);
        }
    }
    REQUIRE(receiver.wait_for_requests(events));
    const auto requests = receiver.requests();
    for (int i = 0; i < events; ++i) {
        INFO(requests[i].body);
        CHECK_THAT(requests[i].body, Catch::Contains("\"event " + std::to_string(i) + "\""));
        CHECK(header(requests[i], "x-avr-webhook-sequence") == std::to_string(i + 1));
    }
    REQUIRE(daemon.stop());
}

TEST_CASE("http intake: an idle or slow client is cut off at http_request_timeout", "[integration][http_intake]") {
    TempDir dir;
    ReceiverThread receiver;
    auto arguments = http_intake_arguments(receiver);
    arguments.insert(arguments.end(), {"--http-request-timeout", "500ms", "--admin", "127.0.0.1:0"});
    DaemonProcess daemon(dir, arguments);
    REQUIRE(daemon.wait_ready());
    const auto port = http_port(daemon);

    Client idle(port);
    Client slow(port);
    const auto started = Clock::now();
    slow.send("POST /events HTTP/1.1\r\nContent-Type: application/json\r\nContent-Le");
    std::this_thread::yield();
    CHECK(idle.closed_within(5s));
    CHECK(slow.closed_within(5s));
    const auto took = Clock::now() - started;
    CHECK(took >= 400ms);
    CHECK(took < 4s);

    // A keep-alive connection is closed once idle past the deadline, after its answer.
    Client kept(port);
    kept.send(core_request(port, core_body("call_started")));
    REQUIRE(kept.read_reply());
    CHECK(kept.closed_within(5s));
    CHECK_THAT(daemon.log(), Catch::Contains("http_request_timeout"));
    REQUIRE(daemon.stop());
}

TEST_CASE("http intake: a non-loopback http_listen without intake_secret does not start",
          "[integration][http_intake]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--http-listen", "0.0.0.0:0"});
    const auto status = daemon.process().wait(10s);
    REQUIRE(status);
    CHECK(status->code == 78);
    CHECK_THAT(daemon.log(), Catch::Contains("needs intake_secret or intake_secret_file"));
}

TEST_CASE("http intake: AVR Core's call_initiated gets the receiver's sts_url back, or 504 in respond_timeout",
          "[integration][http_intake][respond]") {
    TempDir dir;
    avr_webhookd::ReceiverOptions routing;
    routing.listen = "127.0.0.1:0";
    routing.quiet = true;
    routing.sts_url = "ws://sts:6030";
    ReceiverThread receiver(routing);
    auto arguments = http_intake_arguments(receiver);
    arguments.insert(arguments.end(), {"--respond-timeout", "1500ms"});
    DaemonProcess daemon(dir, arguments);
    REQUIRE(daemon.wait_ready());
    const auto port = http_port(daemon);

    Client client(port);
    client.send(core_request(port, core_body("call_initiated")));
    const auto reply = client.read_reply();
    REQUIRE(reply);
    CHECK(reply->status == 200);
    CHECK(json_of(*reply).at("sts_url").as_string() == "ws://sts:6030?uuid=" + std::string(call));
    REQUIRE(daemon.stop());

    // A receiver slower than respond_timeout: 504 with a JSON error, and the event is still delivered.
    TempDir slow_dir;
    routing.delay = 2500ms;
    ReceiverThread slow(routing);
    arguments = http_intake_arguments(slow);
    arguments.insert(arguments.end(), {"--respond-timeout", "300ms", "--timeout", "5s"});
    DaemonProcess slow_daemon(slow_dir, arguments);
    REQUIRE(slow_daemon.wait_ready());
    const auto slow_port = http_port(slow_daemon);
    Client slow_client(slow_port);
    const auto started = Clock::now();
    slow_client.send(core_request(slow_port, core_body("call_initiated")));
    const auto timed_out = slow_client.read_reply();
    REQUIRE(timed_out);
    CHECK(timed_out->status == 504);
    CHECK(Clock::now() - started < 2000ms);
    CHECK_THAT(std::string(json_of(*timed_out).at("error").as_string()), Catch::Contains("respond_timeout=300ms"));
    REQUIRE(slow.wait_for_requests(1, 10s));
    REQUIRE(slow_daemon.stop());
}

TEST_CASE(
    "http intake: at http_max_connections a client that never completed a request makes room, not a "
    "producer's kept-alive connection",
    "[integration][http_intake]") {
    ThreeSlots intake;  // its producer's is the oldest connection
    const auto port = intake.port;
    Client silent(port);
    Client trickling(port);
    trickling.send("POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    Client newcomer(port);  // makes room: the silent one goes, it never completed a request
    CHECK(silent.closed_within(5s));

    CHECK(status_of(*intake.producer, core_request(port, core_body("call_ended", "", "2024-01-01T12:05:00.000Z"))) ==
          200);
    REQUIRE(intake.receiver.wait_for_requests(2));
    REQUIRE(intake.daemon.stop());
}

TEST_CASE("http intake: at http_max_connections a client holding its connection open after a refusal makes room",
          "[integration][http_intake]") {
    ThreeSlots intake;
    const auto port = intake.port;
    // Two clients without the secret read their refusal and keep the connection open: the daemon
    // lingers on them (reading what they still send) before it closes them.
    std::vector<std::unique_ptr<Client>> refused;
    for (int i = 0; i < 2; ++i) {
        refused.push_back(std::make_unique<Client>(port));
        CHECK(status_of(*refused.back(), "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") >= 400);
    }
    Client newcomer(port);  // makes room: a lingering connection goes, not the producer's
    CHECK(status_of(newcomer, core_request(port, core_body("transcription", "hi"))) == 200);
    CHECK(status_of(*intake.producer, core_request(port, core_body("call_ended", "", "2024-01-01T12:05:00.000Z"))) ==
          200);
    REQUIRE(intake.receiver.wait_for_requests(3));
    REQUIRE(intake.daemon.stop());
}
