#include <avr_webhookd/intake/event_parser.hpp>
#include <avr_webhookd/common/timestamp.hpp>

#include <boost/json/memory_resource.hpp>
#include <catch2/catch.hpp>

#include <map>
#include <new>

using namespace avr_webhookd;

namespace {

const auto received_at =
    std::chrono::system_clock::time_point{} + std::chrono::milliseconds(1704110400123);  // 2024-01-01T12:00:00.123Z
constexpr std::string_view call = "550e8400-e29b-41d4-a716-446655440000";

std::variant<Event, RejectReason> parse(std::string_view line, bool allow_unknown = false) {
    static UuidGenerator ids(42);
    EventParser parser({allow_unknown});
    return parser.parse(line, received_at, ids);
}

Event accepted(std::string_view line, bool allow_unknown = false) {
    auto result = parse(line, allow_unknown);
    if (auto* reject = std::get_if<RejectReason>(&result)) FAIL("rejected: " << reject->message);
    return std::get<Event>(std::move(result));
}

RejectReason rejected(std::string_view line, bool allow_unknown = false) {
    auto result = parse(line, allow_unknown);
    REQUIRE(std::holds_alternative<RejectReason>(result));
    return std::get<RejectReason>(std::move(result));
}

}  // namespace

TEST_CASE("event parser accepts the specification's example and builds the exact body", "[event_parser]") {
    const auto event = accepted(
        R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"transcription","timestamp":"2024-01-01T12:01:45.000Z","payload":{"role":"user","text":"Hello, I need help with my account"}})");
    CHECK(event.uuid == call);
    CHECK(event.type == "transcription");
    CHECK(event.timestamp == "2024-01-01T12:01:45.000Z");
    CHECK(
        event.body ==
        R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"transcription","timestamp":"2024-01-01T12:01:45.000Z","payload":{"role":"user","text":"Hello, I need help with my account"}})");
    CHECK(is_canonical_uuid(event.id));
}

TEST_CASE("event parser orders body keys canonically and keeps payload order", "[event_parser]") {
    const auto event = accepted(
        R"({"payload":{"z":1.0,"a":"x"},"type":"call_initiated","id":"evt-1","uuid":"550e8400-e29b-41d4-a716-446655440000","timestamp":"2024-01-01T12:00:00+02:00"})");
    CHECK(
        event.body ==
        R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_initiated","timestamp":"2024-01-01T12:00:00+02:00","payload":{"z":1,"a":"x"}})");
    CHECK(event.id == "evt-1");
}

TEST_CASE("event parser queues a call by its lower-case uuid but keeps the body as written", "[event_parser]") {
    const auto event = accepted(R"({"uuid":"550E8400-E29B-41D4-A716-446655440000","type":"call_started"})");
    CHECK(event.uuid == call);
    CHECK_THAT(event.body, Catch::Contains("550E8400-E29B-41D4-A716-446655440000"));
}

TEST_CASE("event parser stamps missing timestamps and defaults the payload", "[event_parser]") {
    const auto event = accepted(R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_started"})");
    CHECK(event.timestamp == "2024-01-01T12:00:00.123Z");
    CHECK(
        event.body ==
        R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_started","timestamp":"2024-01-01T12:00:00.123Z","payload":{}})");
}

TEST_CASE("event parser ignores a dead letter's failure object", "[event_parser]") {
    const auto event = accepted(
        R"({"id":"e1","uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_ended","timestamp":"2024-01-01T12:00:00.000Z","payload":{},"failure":{"reason":"shutdown"}})");
    CHECK(event.id == "e1");
    CHECK(event.body.find("failure") == std::string::npos);
    // ... but notes that it is one sent again: the intake acknowledges it whatever `ack` is.
    CHECK(event.replayed);
    CHECK_FALSE(accepted(R"({"id":"e1","uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_ended"})").replayed);
}

TEST_CASE("event parser names what is wrong", "[event_parser]") {
    struct Case {
        std::string_view line;
        std::string_view reason;
        std::string_view fragment;
    };
    const Case cases[] = {
        {"{\"uuid\":", "invalid_json", "invalid JSON"},
        {"{\"uuid\":\"550e8400-e29b-41d4-a716-446655440000\",\"type\":\"call_started\"} x", "invalid_json",
         "invalid JSON"},
        {"{\"uuid\":\"\xff\"}", "invalid_utf8", "invalid UTF-8 at byte 10"},
        {"[1,2]", "not_an_object", "must be a JSON object, got an array"},
        {R"({"type":"call_started"})", "missing_field", "\"uuid\""},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000"})", "missing_field", "\"type\""},
        {R"({"uuid":42,"type":"call_started"})", "invalid_field", "field \"uuid\" must be a string, got a number"},
        {R"({"uuid":"not-a-uuid","type":"call_started"})", "invalid_field", "canonical UUID"},
        {R"({"uuid":"550e8400e29b41d4a716446655440000","type":"call_started"})", "invalid_field", "canonical UUID"},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_started","extra":1})", "unknown_key",
         "unknown key \"extra\""},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_paused"})", "unknown_type",
         "unknown event type \"call_paused\""},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_started","payload":[]})", "invalid_field",
         "field \"payload\" must be an object"},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_started","timestamp":"yesterday"})",
         "invalid_field", "field \"timestamp\""},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_started","timestamp":"2024-02-30T00:00:00Z"})",
         "invalid_field", "field \"timestamp\""},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_started","timestamp":"2024-01-01T12:00:00"})",
         "invalid_field", "field \"timestamp\""},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"transcription","payload":{"role":"user"}})",
         "missing_field", "\"payload.text\""},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"transcription","payload":{"role":1,"text":"x"}})",
         "invalid_field", "field \"payload.role\" must be a string"},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"dtmf_digit","payload":{"digit":"E"}})",
         "invalid_field", "payload.digit"},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"dtmf_digit","payload":{"digit":"12"}})",
         "invalid_field", "payload.digit"},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"error","payload":{}})", "missing_field",
         "\"payload.message\""},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_started","id":""})", "invalid_field",
         "field \"id\""},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_started","id":"has space"})", "invalid_field",
         "field \"id\""},
        {R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_started","id":"a\r\nX-Evil: 1"})",
         "invalid_field", "field \"id\""},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        const auto reject = rejected(c.line);
        CHECK(reject.reason == c.reason);
        CHECK_THAT(reject.message, Catch::Contains(std::string(c.fragment)));
    }
}

TEST_CASE("event parser limits the id to 128 bytes", "[event_parser][limits]") {
    const std::string base = R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_started","id":")";
    CHECK(accepted(base + std::string(128, 'a') + "\"}").id.size() == 128);
    CHECK(rejected(base + std::string(129, 'a') + "\"}").reason == "invalid_field");
}

TEST_CASE("event parser accepts every DTMF key and AVR's known types", "[event_parser]") {
    for (char digit : std::string("0123456789*#ABCD")) {
        const std::string line =
            std::string(R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"dtmf_digit","payload":{"digit":")") +
            digit + "\"}}";
        CHECK(accepted(line).type == "dtmf_digit");
    }
    for (std::string_view type : {"call_initiated", "call_started", "call_ended", "interruption"})
        CHECK(accepted(R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":")" + std::string(type) + "\"}").type ==
              type);
}

TEST_CASE("event parser allows well-formed unknown types only when configured", "[event_parser]") {
    const std::string custom = R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_transferred"})";
    CHECK(rejected(custom).reason == "unknown_type");
    CHECK(accepted(custom, true).type == "call_transferred");
    CHECK(rejected(R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"Bad-Type"})", true).reason ==
          "invalid_field");
    CHECK(rejected(R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":")" + std::string(65, 'a') + "\"}", true)
              .reason == "invalid_field");
    CHECK(accepted(R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":")" + std::string(64, 'a') + "\"}", true)
              .type.size() == 64);
}

TEST_CASE("event parser truncates long bad values in messages", "[event_parser]") {
    const auto reject = rejected(R"({"uuid":")" + std::string(10000, 'q') + R"(","type":"call_started"})");
    CHECK(reject.message.size() < 200);
}

TEST_CASE("timestamp formatting and validation", "[timestamp]") {
    CHECK(format_utc_millis(received_at) == "2024-01-01T12:00:00.123Z");
    CHECK(is_iso8601_datetime("2024-02-29T23:59:60.5+05:30"));
    CHECK(is_iso8601_datetime("2024-01-01t00:00:00z"));
    CHECK(is_iso8601_datetime("2024-01-01T00:00:00-0130"));
    CHECK_FALSE(is_iso8601_datetime("2023-02-29T00:00:00Z"));
    CHECK_FALSE(is_iso8601_datetime("2024-13-01T00:00:00Z"));
    CHECK_FALSE(is_iso8601_datetime("2024-01-01T24:00:00Z"));
    CHECK_FALSE(is_iso8601_datetime("2024-01-01T00:00:00.Z"));
    CHECK_FALSE(is_iso8601_datetime("2024-01-01 00:00:00Z"));
    CHECK_FALSE(is_iso8601_datetime("2024-01-01T00:00:00+24:00"));
    CHECK_FALSE(is_iso8601_datetime("2024-01-01T00:00:00.1234567891Z"));  // more than nine digits
}

TEST_CASE("timestamp parsing applies the zone and the fraction", "[timestamp]") {
    using namespace std::chrono;
    CHECK(parse_iso8601_datetime("2024-01-01T12:00:00.123Z") == received_at);
    CHECK(parse_iso8601_datetime("2024-01-01T13:30:00.123+01:30") == received_at);
    CHECK(parse_iso8601_datetime("2024-01-01T10:00:00.123-0200") == received_at);
    CHECK(parse_iso8601_datetime("2024-01-01T12:00:00.123000000z") == received_at);
    CHECK(parse_iso8601_datetime("1970-01-01T00:00:01Z") == system_clock::time_point(seconds(1)));
    CHECK_FALSE(parse_iso8601_datetime("2024-01-01T12:00:00"));
    CHECK_FALSE(parse_iso8601_datetime("2023-02-29T00:00:00Z"));
}

TEST_CASE("uuid generation yields distinct canonical version 4 ids", "[uuid]") {
    UuidGenerator ids(7);
    const auto a = ids.next(), b = ids.next();
    CHECK(a != b);
    CHECK(is_canonical_uuid(a));
    CHECK(a[14] == '4');
    CHECK(std::string_view("89ab").find(a[19]) != std::string_view::npos);
}

namespace {

// Upstream for the parser's JSON memory that records what is outstanding, by pointer (Boost's
// monotonic_resource frees a block with a size different from the one it asked for).
class CountingResource final : public boost::json::memory_resource {
public:
    std::size_t outstanding() const { return outstanding_; }
    std::size_t peak() const { return peak_; }
    std::size_t largest() const { return largest_; }

private:
    void* do_allocate(std::size_t size, std::size_t align) override {
        void* p = ::operator new(size, std::align_val_t(align));
        sizes_[p] = size;
        outstanding_ += size;
        peak_ = std::max(peak_, outstanding_);
        largest_ = std::max(largest_, size);
        return p;
    }
    void do_deallocate(void* p, std::size_t, std::size_t align) override {
        outstanding_ -= sizes_.at(p);
        sizes_.erase(p);
        ::operator delete(p, std::align_val_t(align));
    }
    bool do_is_equal(const boost::json::memory_resource& other) const noexcept override { return this == &other; }

    std::map<void*, std::size_t> sizes_;
    std::size_t outstanding_ = 0, peak_ = 0, largest_ = 0;
};

}  // namespace

TEST_CASE("event parser memory per line stays bounded over many long lines", "[event_parser][limits]") {
    // Issue 7, item 1: one connection's parser reused for 30 lines of 5,000 characters ended in
    // std::bad_alloc, because the JSON memory doubled with every line.
    CountingResource counting;
    {
        EventParser parser({}, boost::json::storage_ptr(&counting));
        UuidGenerator ids(7);
        for (int i = 0; i < 1000; ++i) {
            const std::string text(5000 + static_cast<std::size_t>(i % 7) * 100, static_cast<char>('a' + i % 26));
            const std::string line = R"({"uuid":")" + std::string(call) +
                                     R"(","type":"transcription","payload":{"role":"agent","text":")" + text + R"("}})";
            auto result = parser.parse(line, received_at, ids);
            REQUIRE(std::holds_alternative<Event>(result));
            REQUIRE(std::get<Event>(result).body.size() > 5000);
            // A line of ~6 KB never holds more than a small multiple of its length.
            REQUIRE(counting.peak() <= 4 * line.size());
        }
        // Invalid lines reuse nothing of a failed parse either.
        for (int i = 0; i < 100; ++i)
            REQUIRE(std::holds_alternative<RejectReason>(
                parser.parse("{\"a\":\"" + std::string(6000, 'x'), received_at, ids)));
        CHECK(counting.peak() <= 4 * 6100);
        CHECK(counting.largest() <= 16 * 1024);
    }
    CHECK(counting.outstanding() == 0);
}
