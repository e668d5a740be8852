// The `subject` template of a NATS destination.
#include <avr_webhookd/delivery/nats_subject.hpp>

#include <catch2/catch.hpp>

using namespace avr_webhookd;

namespace {

std::string rejection(std::string_view text) {
    std::string error;
    INFO("subject: " << text);
    REQUIRE_FALSE(SubjectTemplate::parse(text, &error).has_value());
    return error;
}

}  // namespace

TEST_CASE("nats subject: placeholders render the event's type, call and destination", "[nats][subject]") {
    const auto uuid = "550e8400-e29b-41d4-a716-446655440000";
    const auto standard = SubjectTemplate::parse(default_nats_subject);
    REQUIRE(standard);
    CHECK(standard->render("call_started", uuid, "default") == "avr.events.call_started");
    const auto all = SubjectTemplate::parse("fleet.{destination}.{uuid}.{type}");
    REQUIRE(all);
    CHECK(all->render("transcription", uuid, "crm") == std::string("fleet.crm.") + uuid + ".transcription");
    const auto fixed = SubjectTemplate::parse("avr-calls");
    REQUIRE(fixed);
    CHECK(fixed->render("call_ended", uuid, "default") == "avr-calls");
    CHECK(fixed->text() == "avr-calls");
}

TEST_CASE("nats subject: unknown placeholders, wildcards and empty tokens are refused", "[nats][subject]") {
    CHECK(rejection("avr.{call}") == "unknown placeholder {call} (allowed: {type}, {uuid}, {destination})");
    CHECK_THAT(rejection("avr.{type"), Catch::Contains("unknown placeholder {type"));
    CHECK_THAT(rejection("avr.type}"), Catch::Contains("'}' without its '{'"));
    CHECK_THAT(rejection("avr.*"), Catch::Contains("wildcards"));
    CHECK_THAT(rejection("avr.>"), Catch::Contains("wildcards"));
    CHECK_THAT(rejection("avr events"), Catch::Contains("spaces"));
    CHECK_THAT(rejection("avr..{type}"), Catch::Contains("none of them empty"));
    CHECK_THAT(rejection(".avr"), Catch::Contains("none of them empty"));
    CHECK_THAT(rejection("avr."), Catch::Contains("none of them empty"));
    CHECK_THAT(rejection(""), Catch::Contains("required"));
    CHECK_THAT(rejection(std::string(256, 'a')), Catch::Contains("at most 255"));
    CHECK(SubjectTemplate::parse(std::string(255, 'a')));
}
