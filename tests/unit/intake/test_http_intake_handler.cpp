// The HTTP intake's request handling without sockets: a parsed request in, a decision out.
#include <avr_webhookd/intake/http_intake_handler.hpp>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <vector>

using namespace avr_webhookd;

namespace {

constexpr std::string_view call = "550e8400-e29b-41d4-a716-446655440000";
// As AVR Core's axios sends it: JSON.stringify({uuid, type, timestamp, payload}).
const std::string core_body = std::string(R"({"uuid":")") + std::string(call) +
                              R"(","type":"transcription","timestamp":"2024-01-01T12:01:45.000Z",)"
                              R"("payload":{"role":"user","text":"Hello"}})";

class FakeSink : public EventSink {
public:
    Receipt submit(Event&& event) override {
        events.push_back(std::move(event));
        return Receipt(admission, ticket, "disk full");
    }
    bool has_room() const override { return room; }
    boost::asio::awaitable<void> wait_for_room() override { co_return; }

    std::vector<Event> events;
    Admission admission = Admission::queued;
    std::uint64_t ticket = 0;
    bool room = true;
};

struct Fixture {
    explicit Fixture(std::string secret = "s3cret") {
        HttpIntakeOptions options;
        options.secret = std::move(secret);
        options.max_body = 1024;
        handler.emplace(options, sink, metrics);
    }
    HttpIntakeDecision post(std::string_view body, std::optional<std::string_view> secret = "s3cret",
                            std::optional<std::string_view> type = "application/json",
                            RoomWait room = RoomWait::may_wait) {
        return handler->handle(HttpIntakeRequest{"POST", "/events", type, secret, body},
                               std::chrono::system_clock::now(), room);
    }
    FakeSink sink;
    Metrics metrics;
    std::optional<HttpIntakeHandler> handler;
};

std::string error_of(const HttpIntakeResponse& response) {
    return std::string(boost::json::parse(response.body).as_object().at("error").as_string());
}

}  // namespace

TEST_CASE("http intake: AVR Core's request is taken with its timestamp and answered with the id", "[http_intake]") {
    Fixture f;
    f.sink.ticket = 7;
    const auto decision = f.post(core_body);
    REQUIRE(decision.kind == HttpIntakeDecision::Kind::respond_when_durable);
    CHECK(decision.ticket == 7);
    CHECK(decision.response.status == 200);
    REQUIRE(f.sink.events.size() == 1);
    const Event& event = f.sink.events[0];
    CHECK(event.body == core_body);
    CHECK(event.timestamp == "2024-01-01T12:01:45.000Z");
    CHECK(decision.response.body == R"({"ok":true,"id":")" + event.id + R"("})");
    CHECK(decision.event_id == event.id);
    CHECK(f.metrics.http_events_received == 1);
    CHECK(f.metrics.events_received == 1);
}

TEST_CASE("http intake: another method gets 405 with Allow: POST and queues nothing", "[http_intake]") {
    Fixture f;
    for (std::string_view method : {"GET", "PUT", "DELETE", "HEAD", "post"}) {
        const auto decision =
            f.handler->handle(HttpIntakeRequest{method, "/events", "application/json", "s3cret", core_body},
                              std::chrono::system_clock::now());
        CHECK(decision.response.status == 405);
        CHECK(decision.response.allow == "POST");
    }
    CHECK(f.sink.events.empty());
    CHECK(f.metrics.http_events_received == 0);
}

TEST_CASE("http intake: a missing or wrong secret gets 401 and queues nothing", "[http_intake]") {
    Fixture f;
    CHECK(f.post(core_body, std::nullopt).response.status == 401);
    CHECK_THAT(error_of(f.post(core_body, std::nullopt).response), Catch::Contains("missing X-AVR-WEBHOOK-SECRET"));
    CHECK(f.post(core_body, "s3cre").response.status == 401);
    CHECK(f.post(core_body, "s3cret ").response.status == 401);
    CHECK(f.post(core_body, "").response.status == 401);
    CHECK_THAT(f.post(core_body, "wrong").response.body, !Catch::Contains("s3cret"));
    CHECK(f.sink.events.empty());
    CHECK(f.metrics.http_events_rejected.at("unauthorized") == 6);
    CHECK(f.metrics.events_rejected.at("unauthorized") == 6);
}

TEST_CASE("http intake: without a secret configured no header is needed", "[http_intake]") {
    Fixture f("");
    CHECK(f.post(core_body, std::nullopt).response.status == 200);
    CHECK(f.post(core_body, "anything").response.status == 200);
}

TEST_CASE("http intake: a content type that is not JSON gets 415", "[http_intake]") {
    Fixture f;
    CHECK(f.post(core_body, "s3cret", "text/plain").response.status == 415);
    CHECK(f.post(core_body, "s3cret", "application/x-www-form-urlencoded").response.status == 415);
    CHECK(f.post(core_body, "s3cret", std::nullopt).response.status == 415);
    CHECK(f.sink.events.empty());
    CHECK(f.post(core_body, "s3cret", "Application/JSON; charset=utf-8").response.status == 200);
    CHECK(f.post(core_body, "s3cret", "application/cloudevents+json").response.status == 200);
}

TEST_CASE("http intake: a bad body gets 400 with the parser's reason naming the field", "[http_intake]") {
    Fixture f;
    const auto bad_uuid = f.post(R"({"uuid":"abc","type":"call_started"})");
    CHECK(bad_uuid.response.status == 400);
    CHECK_THAT(error_of(bad_uuid.response), Catch::Contains("\"uuid\""));
    const auto unknown_key = f.post(R"({"uuid":")" + std::string(call) + R"(","type":"call_started","x":1})");
    CHECK_THAT(error_of(unknown_key.response), Catch::Contains("unknown key \"x\""));
    CHECK(f.post("{not json").response.status == 400);
    CHECK(f.post("").response.status == 400);
    CHECK(f.sink.events.empty());
    CHECK(f.metrics.http_events_rejected.at("invalid_json") == 2);
}

TEST_CASE("http intake: a body past max_line gets 413", "[http_intake]") {
    Fixture f;
    const std::string big = R"({"uuid":")" + std::string(call) +
                            R"(","type":"transcription","payload":{"role":"user",)"
                            R"("text":")" +
                            std::string(2000, 'a') + R"("}})";
    CHECK(f.post(big).response.status == 413);
    CHECK(f.handler->too_large().status == 413);
    CHECK(f.sink.events.empty());
}

TEST_CASE("http intake: a full queue gets 503 with Retry-After, or a wait with queue_full = block", "[http_intake]") {
    Fixture f;
    f.sink.room = false;
    CHECK(f.post(core_body).kind == HttpIntakeDecision::Kind::wait_for_room);
    const auto expired = f.post(core_body, "s3cret", "application/json", RoomWait::expired);
    CHECK(expired.response.status == 503);
    CHECK(expired.response.retry_after_seconds.has_value());
    CHECK(f.sink.events.empty());

    HttpIntakeOptions reject_options = f.handler->options();
    reject_options.queue_full = QueueFullPolicy::reject;
    f.handler->update(reject_options);
    CHECK(f.post(core_body).response.status == 503);
    CHECK(f.sink.events.empty());
}

TEST_CASE("http intake: a spool that cannot store gets 503 with its reason", "[http_intake]") {
    Fixture f;
    f.sink.admission = EventSink::Admission::not_stored;
    const auto decision = f.post(core_body);
    CHECK(decision.kind == HttpIntakeDecision::Kind::respond);
    CHECK(decision.response.status == 503);
    CHECK(decision.response.retry_after_seconds.has_value());
    CHECK_THAT(error_of(decision.response), Catch::Contains("disk full"));
    CHECK(f.metrics.http_events_rejected.at("spool_write_failed") == 1);
}

TEST_CASE("http intake: JSON content types", "[http_intake]") {
    CHECK(is_json_content_type("application/json"));
    CHECK(is_json_content_type(" application/json ; charset=UTF-8"));
    CHECK_FALSE(is_json_content_type("application/jsonx"));
    CHECK_FALSE(is_json_content_type("text/json"));
    CHECK_FALSE(is_json_content_type(""));
}
