// Routing answers (respond_types): AVR Core routes a call by the receiver's answer to
// call_initiated (sts_url), so the producer of such an event gets that answer back on its
// connection, or a clear error within respond_timeout.
#include "../support/daemon_fixture.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

using namespace avr_webhookd;
using namespace avr_webhookd::test;

namespace {

constexpr std::string_view call = "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b";

std::string initiated_line(std::string_view id = "init-1") {
    std::string line = R"({"id":")";
    line.append(id).append(R"(","uuid":")").append(call);
    line.append(R"(","type":"call_initiated","payload":{"from":"100","to":"200"}})");
    return line;
}

boost::json::object only_reply(const std::vector<std::string>& replies) {
    REQUIRE(replies.size() == 1);
    return boost::json::parse(replies.at(0)).as_object();
}

// A receiver that routes as AVR's sample receiver does: call_initiated -> {"sts_url":...}.
ReceiverOptions routing_receiver(std::string sts_url = "ws://sts:6030") {
    ReceiverOptions options;
    options.listen = "127.0.0.1:0";
    options.quiet = true;
    options.sts_url = std::move(sts_url);
    return options;
}

// A port nothing listens on: a receiver's, after it stopped.
std::string refused_url() {
    ReceiverThread gone;
    return gone.url("/refused");
}

}  // namespace

TEST_CASE("respond: the producer of a call_initiated gets the receiver's sts_url", "[integration][respond]") {
    TempDir dir;
    ReceiverThread receiver(routing_receiver("ws://sts.example:6030"));
    DaemonProcess daemon(dir, {"--url", receiver.url()});  // ack = errors: only the answer is a reply
    REQUIRE(daemon.wait_ready());

    const auto started = std::chrono::steady_clock::now();
    const auto reply = only_reply(exchange(daemon.socket(), initiated_line() + "\n"));
    CHECK(std::chrono::steady_clock::now() - started < 2s);
    CHECK(reply.at("ok").as_bool());
    CHECK(reply.at("line").as_int64() == 1);
    CHECK(reply.at("id").as_string() == "init-1");
    CHECK(reply.at("status").as_int64() == 200);
    CHECK(reply.at("response").at("sts_url").as_string() == "ws://sts.example:6030?uuid=" + std::string(call));
    REQUIRE(receiver.wait_for_requests(1));
    CHECK(receiver.requests().size() == 1);
    REQUIRE(daemon.stop());
}

TEST_CASE("respond: with ack = all the respond-type line gets its answer as its one reply", "[integration][respond]") {
    TempDir dir;
    ReceiverThread receiver(routing_receiver());
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--ack", "all"});
    REQUIRE(daemon.wait_ready());
    const std::string started = R"({"uuid":")" + std::string(call) + R"(","type":"call_started","payload":{}})";
    const auto replies = exchange(daemon.socket(), initiated_line() + "\n" + started + "\n");
    REQUIRE(replies.size() == 2);
    std::map<std::int64_t, boost::json::object> by_line;
    for (const auto& text : replies) {
        auto object = boost::json::parse(text).as_object();
        by_line[object.at("line").as_int64()] = object;
    }
    CHECK(by_line.at(1).at("status").as_int64() == 200);
    CHECK(by_line.at(1).contains("response"));
    CHECK(by_line.at(2).at("ok").as_bool());
    CHECK_FALSE(by_line.at(2).contains("status"));
    REQUIRE(daemon.stop());
}

TEST_CASE("respond: a slow receiver means an error within respond_timeout, and delivery goes on",
          "[integration][respond]") {
    TempDir dir;
    auto options = routing_receiver();
    options.delay = 1500ms;
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--respond-timeout", "300ms", "--timeout", "5s"});
    REQUIRE(daemon.wait_ready());
    const auto started = std::chrono::steady_clock::now();
    const auto reply = only_reply(exchange(daemon.socket(), initiated_line() + "\n"));
    const auto waited = std::chrono::steady_clock::now() - started;
    CHECK(waited >= 300ms);
    CHECK(waited < 1400ms);  // before the receiver answered
    CHECK_FALSE(reply.at("ok").as_bool());
    CHECK(reply.at("queued").as_bool());
    CHECK_THAT(std::string(reply.at("error").as_string()), Catch::Contains("respond_timeout=300ms"));
    REQUIRE(receiver.wait_for_requests(1));  // still delivered
    REQUIRE(wait_until([&] { return receiver.requests().at(0).status_sent == 200; }, 5s));
    REQUIRE(daemon.stop());
    CHECK(read_lines(daemon.dead_letter()).empty());
}

TEST_CASE("respond: a receiver that refuses gives a clear error at once, not a wait", "[integration][respond]") {
    TempDir dir;
    DaemonProcess daemon(dir, {"--url", refused_url(), "--respond-timeout", "5s"});
    REQUIRE(daemon.wait_ready());
    const auto started = std::chrono::steady_clock::now();
    const auto reply = only_reply(exchange(daemon.socket(), initiated_line() + "\n"));
    CHECK(std::chrono::steady_clock::now() - started < 4s);  // given up (retry = 0), not timed out
    CHECK_FALSE(reply.at("ok").as_bool());
    CHECK_FALSE(reply.at("queued").as_bool());
    CHECK_THAT(std::string(reply.at("error").as_string()), Catch::Contains("ECONNREFUSED"));
    REQUIRE(wait_until([&] { return read_lines(daemon.dead_letter()).size() == 1; }, 5s));
    REQUIRE(daemon.stop());
}

TEST_CASE("respond: retries of a call_initiated come quickly while its producer waits", "[integration][respond]") {
    TempDir dir;
    auto options = routing_receiver();
    options.fail_first = 1;
    options.fail_status = 503;
    ReceiverThread receiver(options);
    // A 10 s backoff would outlast the producer's wait; the answer still comes within it.
    DaemonProcess daemon(dir,
                         {"--url", receiver.url(), "--retry", "3", "--retry-base", "10s", "--respond-timeout", "2s"});
    REQUIRE(daemon.wait_ready());
    const auto reply = only_reply(exchange(daemon.socket(), initiated_line() + "\n"));
    CHECK(reply.at("ok").as_bool());
    CHECK(reply.at("status").as_int64() == 200);
    CHECK(reply.at("response").at("sts_url").as_string() == "ws://sts:6030?uuid=" + std::string(call));
    CHECK(receiver.requests().size() == 2);
    REQUIRE(daemon.stop());
}

TEST_CASE("respond: an empty respond_types makes call_initiated an ordinary event", "[integration][respond]") {
    TempDir dir;
    ReceiverThread receiver(routing_receiver());
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--respond-types", ""});
    REQUIRE(daemon.wait_ready());
    CHECK(exchange(daemon.socket(), initiated_line() + "\n").empty());  // ack = errors: nothing to say
    REQUIRE(receiver.wait_for_requests(1));
    REQUIRE(daemon.stop());
}
