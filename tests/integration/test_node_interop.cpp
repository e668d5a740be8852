// Interoperability with the receivers AVR users run: the specification's own Node.js
// verification code accepts what the hmac-sha256 mode sends, for awkward payloads too.
#include "../support/daemon_fixture.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <sstream>

using namespace avr_webhookd::test;

TEST_CASE("the specification's Node.js example verifies hmac-sha256 deliveries", "[integration][interop]") {
    if (!program_available("node")) {
        WARN("node is not installed: the specification's Node.js receiver could not be run");
        return;
    }
    TempDir dir;
    Process::Options node_options;
    node_options.arguments = {"node", std::string(AVR_WEBHOOKD_SOURCE_DIR) + "/tests/interop/spec_receiver.js",
                              "spec-secret"};
    node_options.output_directory = dir.path();
    node_options.name = "node";
    Process node(node_options);
    REQUIRE(node.wait_for_output("listening ", 20s));
    const auto listening = node.stdout_text();
    const auto port =
        listening.substr(listening.find("listening ") + 10, listening.find('\n') - listening.find("listening ") - 10);

    DaemonProcess daemon(dir, {"--url", "http://127.0.0.1:" + port + "/webhooks/avr", "--signature", "hmac-sha256",
                               "--secret", "spec-secret"});
    REQUIRE(daemon.wait_ready());
    const std::string call = "550e8400-e29b-41d4-a716-446655440000";
    const std::string lines[] = {
        R"({"uuid":")" + call + R"(","type":"call_started"})",
        R"({"uuid":")" + call +
            R"(","type":"transcription","payload":{"role":"user","text":"Olá \"amigo\" / \u00e9 \u2028 😀 \t tab"}})",
        R"({"uuid":")" + call +
            R"(","type":"call_initiated","payload":{"from":"+391234","n":1.50,"big":1e21,"small":1e-7,"neg":-0,"list":[true,null,{"b":2,"a":1}]}})",
        R"({"uuid":")" + call + R"(","type":"dtmf_digit","payload":{"digit":"#"}})",
        R"({"uuid":")" + call + R"(","type":"call_ended"})",
    };
    std::string input;
    for (const auto& line : lines) input += line + "\n";
    // The only reply is call_initiated's routing answer (respond_types): the receiver's 200.
    const auto replies = exchange(daemon.socket(), input);
    REQUIRE(replies.size() == 1);
    const auto answer = boost::json::parse(replies.at(0)).as_object();
    CHECK(answer.at("line").as_int64() == 3);
    CHECK(answer.at("status").as_int64() == 200);

    REQUIRE(wait_until(
        [&] {
            const auto text = node.stdout_text();
            return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) >= 1 + std::size(lines);
        },
        20s));
    std::istringstream output(node.stdout_text());
    std::string line;
    std::getline(output, line);  // "listening PORT"
    int verified = 0;
    while (std::getline(output, line)) {
        INFO(line);
        const auto result = boost::json::parse(line).as_object();
        CHECK(result.at("ok").as_bool());
        CHECK(result.at("sameBytes").as_bool());  // our body is byte for byte JSON.stringify's
        ++verified;
    }
    CHECK(verified == static_cast<int>(std::size(lines)));
    CHECK(read_lines(daemon.dead_letter()).empty());
    REQUIRE(daemon.stop());
}

TEST_CASE("delivery reaches an IPv6 loopback receiver", "[integration][interop]") {
    TempDir dir;
    ReceiverThread receiver({}, "[::1]:0");
    const auto url = "http://[::1]:" + std::to_string(receiver.receiver().port()) + "/webhooks/avr";
    DaemonProcess daemon(dir, {"--url", url});
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_started"})"
                              "\n");
    REQUIRE(receiver.wait_for_requests(1));
    const auto request = receiver.requests().at(0);
    CHECK(request.status_sent == 200);
    CHECK(header(request, "host") == "[::1]:" + std::to_string(receiver.receiver().port()));
    REQUIRE(daemon.stop());
}
