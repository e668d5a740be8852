#include "delivery_core_harness.hpp"

// DeliveryCore, driven step by step with a fake clock: every action it returns is checked, and
// the attempts' outcomes are made up, so no test sleeps or touches a socket.
using namespace avr_webhookd;
using namespace avr_webhookd::core_test;

// ---- admission ----

TEST_CASE("core: types not forwarded are filtered", "[delivery_core]") {
    auto settings = settings_with();
    settings.types = {"call_started"};
    Harness h(settings);
    CHECK(h.core.admit(make_event(1, "e1", h.clock.now, "transcription")) == AdmissionVerdict::filtered);
    CHECK(h.core.admit(make_event(1, "e2", h.clock.now, "call_started")) == AdmissionVerdict::accept);
    settings.types.clear();
    h.core.reconfigure(settings);
    CHECK(h.core.admit(make_event(1, "e1", h.clock.now, "transcription")) == AdmissionVerdict::accept);
}

TEST_CASE("core: max_queue with queue_full = reject refuses, noted once per episode", "[delivery_core]") {
    Harness h(rejecting_beyond(2));
    h.submit(1, "a");
    h.submit(2, "b");
    CHECK_FALSE(h.core.has_room());
    CHECK(h.core.admit(make_event(3, "c", h.clock.now)) == AdmissionVerdict::full);
    CHECK(h.core.note_full() == FullLimit::events);
    CHECK_FALSE(h.core.note_full());  // the same episode
    CHECK_FALSE(h.core.room_again());

    h.end(h.start(), http(200));
    CHECK(h.core.has_room());
    CHECK(h.core.room_again());
    CHECK_FALSE(h.core.room_again());
    CHECK(h.core.admit(make_event(3, "c", h.clock.now)) == AdmissionVerdict::accept);
}

TEST_CASE("core: with queue_full = block a line read while there was room is taken", "[delivery_core]") {
    auto settings = settings_with();
    settings.max_line = 256;  // the largest event costs 2*256 + 512
    settings.max_queue_bytes = 3000;
    Harness h(settings);
    // An empty queue takes any one event, even one beyond max_queue_bytes.
    auto big = make_event(1, "big", h.clock.now, "transcription", 5000);
    CHECK(h.core.admit(big) == AdmissionVerdict::accept);
    h.core.push(std::move(big), h.clock.now);
    CHECK_FALSE(h.core.has_room());
    CHECK(h.core.note_full() == FullLimit::bytes);
    CHECK(h.core.admit(make_event(2, "small", h.clock.now)) == AdmissionVerdict::full);
}

TEST_CASE("core: a full spool refuses events", "[delivery_core]") {
    Harness h(settings_with(), Storage::spool);
    CHECK(h.core.has_spool());
    h.submit(1, "a");
    h.spool_has_room = false;
    CHECK_FALSE(h.core.has_room());
    CHECK(h.core.admit(make_event(2, "b", h.clock.now)) == AdmissionVerdict::full);
    CHECK(h.core.note_full() == FullLimit::spool);
    h.spool_has_room = true;
    CHECK(h.core.room_again());
}

// ---- scheduling and verdicts ----

TEST_CASE("core: one event per call at a time, up to concurrency", "[delivery_core]") {
    Harness h(settings_with(3, 2));
    h.submit(1, "a1");
    h.submit(1, "a2");
    h.submit(2, "b1");
    h.submit(3, "c1");
    const auto a1 = h.start();
    const auto b1 = h.start();
    CHECK(a1.event->id == "a1");
    CHECK(b1.event->id == "b1");
    CHECK(is<core_action::Wait>(h.core.next(h.clock.now)));  // both slots busy
    CHECK(h.end(a1, http(204)).kind == Kind::delivered);
    CHECK(h.start().event->id == "c1");  // calls take turns: c before a's next
    CHECK(h.end(b1, http(200)).kind == Kind::delivered);
    const auto a2 = h.start();
    CHECK(a2.event->id == "a2");
    CHECK(a2.sequence == 2);
}

TEST_CASE("core: a retryable failure waits for its retry, holding no slot", "[delivery_core]") {
    Harness h(settings_with(3, 1));
    h.submit(1, "a");
    h.submit(2, "b");
    const auto first = h.start();
    const auto verdict = h.end(first, http(503), 0.5);
    REQUIRE(verdict.kind == Kind::retry);
    CHECK(verdict.delay == 750ms);  // equal jitter: 500ms + 0.5 * 500ms
    const auto b = h.start();       // the slot went to the other call
    CHECK(b.event->id == "b");
    CHECK(is<core_action::Wait>(h.core.next(h.clock.now)));  // slot busy: no wake-up for the retry
    h.end(b, http(200));
    CHECK(wake_time(h.core.next(h.clock.now)) == h.clock.now + 750ms);
    h.clock.advance(750ms);
    const auto again = h.start();
    CHECK(again.event->id == "a");
    CHECK(again.attempt == 2);
    CHECK(h.end(again, http(200)).kind == Kind::delivered);
    CHECK(h.core.queues().queued() == 0);
}

TEST_CASE("core: permanent failures and spent budgets are given up", "[delivery_core]") {
    Harness h(settings_with(0));
    h.submit(1, "a");
    h.submit(2, "b");
    auto verdict = h.end(h.start(), http(400));
    CHECK(verdict.kind == Kind::give_up);
    CHECK(verdict.reason == "permanent HTTP 400");
    CHECK(h.core.unhealthy_reason(h.clock.now) == std::nullopt);  // the shell notes it when it gives up
    h.core.note_given_up("permanent HTTP 400: Bad Request");
    CHECK(h.core.unhealthy_reason(h.clock.now)->find("permanent HTTP 400") != std::string::npos);

    verdict = h.end(h.start(), http(503));  // retry = 0: no second attempt
    CHECK(verdict.kind == Kind::give_up);
    CHECK(verdict.reason == "retry budget exhausted (1 attempt)");
    CHECK(h.core.queues().queued() == 0);

    h.submit(3, "c");
    h.end(h.start(), http(200));
    CHECK(h.core.unhealthy_reason(h.clock.now) == std::nullopt);  // a delivery clears it
}

TEST_CASE("core: an event waiting too long makes delivery unhealthy", "[delivery_core]") {
    Harness h;
    h.submit(1, "a");
    h.end(h.start(), http(503));
    h.clock.advance(5min);
    CHECK(h.core.unhealthy_reason(h.clock.now) == std::nullopt);
    h.clock.advance(3min);  // past max(5min, 2 * retry_max_delay + timeout)
    CHECK(h.core.unhealthy_reason(h.clock.now)->find("has waited") != std::string::npos);
}
