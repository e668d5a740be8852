#include <avr_webhookd/intake/refusal.hpp>

#include <catch2/catch.hpp>

using namespace avr_webhookd;
using Admission = EventSink::Admission;

TEST_CASE("refusal_of: taken events are not refused", "[refusal]") {
    CHECK_FALSE(refusal_of(EventSink::Receipt(Admission::queued, 7)));
    CHECK_FALSE(refusal_of(EventSink::Receipt(Admission::filtered)));
}

TEST_CASE("refusal_of names the reason intakes count and answer", "[refusal]") {
    const auto full = refusal_of(Admission::full);
    REQUIRE(full);
    CHECK(full->reason == "queue_full");
    CHECK_THAT(full->message, Catch::Contains("not accepted"));

    const auto dead = refusal_of(Admission::dead_lettered);
    REQUIRE(dead);
    CHECK(dead->reason == "queue_full");
    CHECK_THAT(dead->message, Catch::Contains("dead-letter file"));

    const auto stopping = refusal_of(Admission::shutting_down);
    REQUIRE(stopping);
    CHECK(stopping->reason == "shutting_down");

    const auto unstored = refusal_of(EventSink::Receipt(Admission::not_stored, 0, "disk full: send it again later"));
    REQUIRE(unstored);
    CHECK(unstored->reason == "spool_write_failed");
    CHECK(unstored->message == "disk full: send it again later");
}
