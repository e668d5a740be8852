#include <avr_webhookd/delivery/failure_report.hpp>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

using namespace avr_webhookd;
using namespace std::chrono_literals;

namespace {

AttemptOutcome refused() {
    AttemptOutcome outcome;
    outcome.kind = FailureKind::connect_refused;
    outcome.code = "ECONNREFUSED";
    outcome.message = "connect ECONNREFUSED 127.0.0.1:3000";
    return outcome;
}

AttemptOutcome unavailable() {
    AttemptOutcome outcome;
    outcome.kind = FailureKind::http_status;
    outcome.status = 503;
    outcome.code = "HTTP 503";
    outcome.message = "Service Unavailable";
    return outcome;
}

// 2026-01-02T03:04:05.678Z
std::chrono::system_clock::time_point sample_time() {
    using namespace std::chrono;
    return sys_days{year{2026} / 1 / 2} + 3h + 4min + 5s + 678ms + 999us;
}

const std::string sample_body = R"({"uuid":"0b6f3c3e-1b7a-4d2e-9a51-2d4b6f1e8c01","type":"call_started",)"
                                R"("timestamp":"2026-01-02T03:04:05.000Z","payload":{"b":1,"a":[true,null,"x"]}})";

boost::json::object parse_object(const std::string& line) {
    boost::system::error_code error;
    auto value = boost::json::parse(line, error);
    INFO("line: " << line);
    REQUIRE_FALSE(error);
    REQUIRE(value.is_object());
    return value.as_object();
}

}  // namespace

TEST_CASE("failure_report: block matches the specification's example", "[failure_report]") {
    CHECK(failure_block("call_started", refused(), "http://localhost:3000/webhooks/avr") ==
          "[WEBHOOK][CALL_STARTED] Retry failed\n"
          "Webhook Error:\n"
          "Message: connect ECONNREFUSED 127.0.0.1:3000\n"
          "Code: ECONNREFUSED\n"
          "URL: http://localhost:3000/webhooks/avr\n"
          "Method: POST\n"
          "Status: ");
}

TEST_CASE("failure_report: block with an HTTP status", "[failure_report]") {
    CHECK(failure_block("dtmf_digit", unavailable(), "https://h/x") ==
          "[WEBHOOK][DTMF_DIGIT] Retry failed\n"
          "Webhook Error:\n"
          "Message: Service Unavailable\n"
          "Code: HTTP 503\n"
          "URL: https://h/x\n"
          "Method: POST\n"
          "Status: 503");
}

TEST_CASE("failure_report: block values cannot add lines", "[failure_report]") {
    AttemptOutcome outcome = unavailable();
    outcome.message = "bad\r\n[WEBHOOK][CALL_ENDED] Retry failed\x01\x7f end  ";
    outcome.code = "E\nX";
    const auto block = failure_block("call\nended", outcome, "http://h/\r\n");
    CHECK(std::count(block.begin(), block.end(), '\n') == 6);
    CHECK(block.find('\r') == std::string::npos);
    CHECK_THAT(block, Catch::StartsWith("[WEBHOOK][CALL ENDED] Retry failed\n"));
    CHECK_THAT(block, Catch::Contains("Message: bad [WEBHOOK][CALL_ENDED] Retry failed end\n"));
    CHECK_THAT(block, Catch::Contains("Code: E X\n"));
    CHECK_THAT(block, Catch::Contains("URL: http://h/\n"));
}

TEST_CASE("failure_report: block fallbacks for missing code and message", "[failure_report]") {
    AttemptOutcome status_only;
    status_only.kind = FailureKind::http_status;
    status_only.status = 400;
    CHECK_THAT(failure_block("x", status_only, "u"), Catch::Contains("Message: HTTP 400\nCode: HTTP 400\n"));

    const AttemptOutcome nothing;
    CHECK_THAT(failure_block("x", nothing, "u"), Catch::Contains("Message: UNKNOWN\nCode: UNKNOWN\n"));
    CHECK_THAT(failure_block("x", nothing, "u"), Catch::EndsWith("Status: "));
}

TEST_CASE("failure_report: dead letter splices the body and adds the failure", "[failure_report]") {
    const auto line =
        dead_letter_line("evt-1", sample_body, "retry budget exhausted (4 attempts)", unavailable(), 4, sample_time());
    CHECK(line.find('\n') == std::string::npos);
    // The body's bytes are kept as they are, right after the id.
    CHECK_THAT(line, Catch::StartsWith(R"({"id":"evt-1",)" + sample_body.substr(1, sample_body.size() - 2) +
                                       R"(,"failure":{)"));

    const auto object = parse_object(line);
    CHECK(object.at("id") == "evt-1");
    CHECK(object.at("uuid") == "0b6f3c3e-1b7a-4d2e-9a51-2d4b6f1e8c01");
    CHECK(object.at("type") == "call_started");
    CHECK(object.at("timestamp") == "2026-01-02T03:04:05.000Z");
    CHECK(boost::json::serialize(object.at("payload")) == R"({"b":1,"a":[true,null,"x"]})");

    const auto& failure = object.at("failure").as_object();
    CHECK(failure.at("reason") == "retry budget exhausted (4 attempts)");
    CHECK(failure.at("code") == "HTTP 503");
    CHECK(failure.at("message") == "Service Unavailable");
    CHECK(failure.at("status") == 503);
    CHECK(failure.at("attempts") == 4);
    CHECK(failure.at("time") == "2026-01-02T03:04:05.678Z");

    std::vector<std::string> keys;
    for (const auto& member : object) keys.emplace_back(member.key());
    CHECK(keys == std::vector<std::string>{"id", "uuid", "type", "timestamp", "payload", "failure"});
}

TEST_CASE("failure_report: dead letter without a response has a null status", "[failure_report]") {
    const auto object = parse_object(dead_letter_line("e", sample_body, "shutdown", refused(), 1, sample_time()));
    const auto& failure = object.at("failure").as_object();
    CHECK(failure.at("status").is_null());
    CHECK(failure.at("code") == "ECONNREFUSED");
    CHECK(failure.at("reason") == "shutdown");
    CHECK(failure.at("attempts") == 1);
}

TEST_CASE("failure_report: dead letter escapes every inserted string", "[failure_report]") {
    AttemptOutcome outcome = refused();
    outcome.message = "tab\there \"quoted\" back\\slash \x01 \xff bad utf8 \xe2\x82";
    const std::string reason = "line1\nline2\r\"q\" caf\xc3\xa9 \xf0\x9f\x93\x9e \x7f";
    const std::string id = "id\"with\\odd\nbytes";
    const auto line = dead_letter_line(id, sample_body, reason, outcome, 2, sample_time());
    CHECK(line.find('\n') == std::string::npos);
    CHECK(line.find('\r') == std::string::npos);

    const auto object = parse_object(line);
    CHECK(object.at("id").as_string() == id);
    const auto& failure = object.at("failure").as_object();
    CHECK(failure.at("reason").as_string() == reason);
    CHECK(failure.at("message") ==
          "tab\there \"quoted\" back\\slash \x01 \xef\xbf\xbd bad utf8 \xef\xbf\xbd\xef\xbf\xbd");
}

TEST_CASE("failure_report: dead letter rejects overlong and surrogate UTF-8", "[failure_report]") {
    AttemptOutcome outcome = refused();
    outcome.message = "\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xe0\x80\xaf";
    const auto object = parse_object(dead_letter_line("e", sample_body, "r", outcome, 1, sample_time()));
    const auto message = std::string(object.at("failure").at("message").as_string());
    CHECK(message.find("\xc0") == std::string::npos);
    CHECK(message.find("\xed\xa0") == std::string::npos);
    CHECK(message.find("\xf4\x90") == std::string::npos);
    CHECK(message.find("|") != std::string::npos);
    CHECK(std::count(message.begin(), message.end(), '|') == 3);
}

TEST_CASE("failure_report: dead letter keeps a body that is not an object", "[failure_report]") {
    const auto object = parse_object(dead_letter_line("e", "not json\n", "r", refused(), 1, sample_time()));
    CHECK(object.at("body") == "not json\n");
    CHECK(object.contains("failure"));

    const auto empty_object = parse_object(dead_letter_line("e", "{}", "r", refused(), 1, sample_time()));
    CHECK(empty_object.size() == 2);
}

TEST_CASE("failure_report: dead letter time is UTC with milliseconds", "[failure_report]") {
    using namespace std::chrono;
    const system_clock::time_point epoch{};
    const auto object = parse_object(dead_letter_line("e", sample_body, "r", refused(), 1, epoch));
    CHECK(object.at("failure").at("time") == "1970-01-01T00:00:00.000Z");

    const system_clock::time_point leap_day = sys_days{year{2024} / 2 / 29} + 23h + 59min + 59s + 1ms;
    CHECK(parse_object(dead_letter_line("e", sample_body, "r", refused(), 1, leap_day)).at("failure").at("time") ==
          "2024-02-29T23:59:59.001Z");
}

TEST_CASE("failure_report: what /status shows of a failure is short, safe and names no path", "[failure_report]") {
    Event event;
    event.id = "e1";
    event.uuid = "0b6f3c3e-1b7a-4d2e-9a51-2d4b6f1e8c01";
    event.type = "call_started";
    auto outcome = unavailable();
    outcome.message = "Service\r\nUnavailable \x1b[31m" + std::string(1000, 'x') + "\xff";
    const auto record = failure_record(event, outcome, 3, {},
                                       "https://user:pw@hooks.example:8443/services/T0/SECRET?k=v", sample_time());
    CHECK(record.time == sample_time());
    CHECK(record.event_id == "e1");
    CHECK(record.call == event.uuid);
    CHECK(record.attempt == 3);
    CHECK(record.code == "HTTP 503");
    CHECK(record.status == 503);
    CHECK(record.given_up.empty());
    CHECK(record.message.size() <= 303);
    CHECK(record.message.starts_with("Service Unavailable [31mxxx"));
    CHECK(record.block.find("SECRET") == std::string::npos);
    CHECK(record.block.find("pw") == std::string::npos);
    CHECK(record.block.find("URL: https://hooks.example:8443\n") != std::string::npos);
    CHECK(
        record.block.starts_with("[WEBHOOK][CALL_STARTED] Retry failed\nWebhook Error:\nMessage: Service Unavailable"));
    CHECK(record.block.find('\x1b') == std::string::npos);
    CHECK(failure_record(event, refused(), 4, "retry budget exhausted (4 attempts)", "http://h/x").given_up ==
          "retry budget exhausted (4 attempts)");
}
