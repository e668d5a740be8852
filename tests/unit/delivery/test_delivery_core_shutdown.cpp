#include "delivery_core_harness.hpp"

// DeliveryCore's shutdown phases, driven step by step with a fake clock: every action it returns is checked, and
// the attempts' outcomes are made up, so no test sleeps or touches a socket.
using namespace avr_webhookd;
using namespace avr_webhookd::core_test;

// ---- shutdown without a spool ----

TEST_CASE("core: a drain within its budget delivers everything, also events arriving meanwhile", "[delivery_core]") {
    Harness h(rejecting_beyond(2));
    h.submit(1, "a1");
    h.submit(1, "a2");
    const auto a1 = h.start();
    REQUIRE(h.core.stop(10s, h.clock.now));
    CHECK_FALSE(h.core.stop(10s, h.clock.now));  // one stop only
    CHECK(h.core.phase() == Phase::draining);
    CHECK(wake_time(h.core.shutdown_step(h.clock.now)) == h.clock.now + 10s);

    h.submit(2, "b1");  // no room limit while stopping
    CHECK(h.core.has_room());
    const auto b1 = h.start();  // draining still starts attempts
    CHECK(b1.event->id == "b1");
    h.end(a1, http(200));
    h.clock.advance(1s);
    h.end(h.start(), http(200));                                              // a2
    CHECK(wake_time(h.core.shutdown_step(h.clock.now)) == h.clock.now + 9s);  // b1 is still in flight
    h.end(b1, http(200));
    CHECK(h.dead_letter_all().empty());  // nothing left to write off
    CHECK(h.core.phase() == Phase::drained);
    CHECK(is<core_action::Finish>(h.core.shutdown_step(h.clock.now)));
    CHECK(is<core_action::Finish>(h.core.next(h.clock.now)));
}

TEST_CASE("core: a stop with nothing queued is drained at once", "[delivery_core]") {
    Harness h;
    REQUIRE(h.core.stop(10s, h.clock.now));
    CHECK(h.dead_letter_all().empty());
    CHECK(h.core.finished());
    CHECK(h.core.admit(make_event(1, "late", h.clock.now)) == AdmissionVerdict::too_late);
}

TEST_CASE("core: a drain whose budget runs out abandons, then writes off the rest in order", "[delivery_core]") {
    Harness h(settings_with(3, 1));
    h.submit(1, "a1");
    h.submit(1, "a2");
    h.submit(2, "b1");
    const auto a1 = h.start();
    REQUIRE(h.core.stop(2s, h.clock.now));
    h.clock.advance(2s);
    CHECK(is<core_action::Wait>(h.core.shutdown_step(h.clock.now)));  // a1 in flight
    CHECK(h.core.phase() == Phase::abandoning);
    h.submit(3, "c1");                          // arriving while abandoning: queued, then written off with the rest
    const auto verdict = h.end(a1, http(503));  // retryable, but the budget is spent
    CHECK(verdict.kind == Kind::give_up);
    CHECK(verdict.reason == "shutdown");
    CHECK(is<core_action::Wait>(h.core.next(h.clock.now)));  // nothing starts while abandoning
    CHECK(sorted(h.dead_letter_all()) == std::vector<std::string>{"a2", "b1", "c1"});  // calls in any order
    CHECK(h.core.phase() == Phase::drained);
    CHECK(h.core.queues().queued() == 0);
    CHECK(is<core_action::Finish>(h.core.next(h.clock.now)));
    CHECK(h.core.admit(make_event(1, "late", h.clock.now)) == AdmissionVerdict::too_late);
}

TEST_CASE("core: a retry falling due during the drain is attempted", "[delivery_core]") {
    Harness h;
    h.submit(1, "a");
    REQUIRE(h.end(h.start(), http(503), 0.0).kind == Kind::retry);  // 500ms
    REQUIRE(h.core.stop(10s, h.clock.now));
    CHECK(wake_time(h.core.next(h.clock.now)) == h.clock.now + 500ms);
    CHECK(wake_time(h.core.shutdown_step(h.clock.now)) == h.clock.now + 10s);
    h.clock.advance(500ms);
    const auto again = h.start();
    CHECK(again.attempt == 2);
    CHECK(h.end(again, http(200)).kind == Kind::delivered);
    CHECK(h.dead_letter_all().empty());
}

TEST_CASE("core: a retry due after the budget is written off with its attempts", "[delivery_core]") {
    Harness h;
    h.submit(1, "a");
    REQUIRE(h.end(h.start(), http(503), 0.0).kind == Kind::retry);
    REQUIRE(h.core.stop(100ms, h.clock.now));
    h.clock.advance(100ms);
    auto action = h.core.shutdown_step(h.clock.now);
    REQUIRE(is<core_action::DeadLetterAll>(action));
    const auto& events = std::get<core_action::DeadLetterAll>(action).events;
    REQUIRE(events.size() == 1);
    CHECK(events[0].attempts_made == 1);
}

// ---- shutdown with a spool ----

TEST_CASE("core: with a spool a stop starts nothing new and leaves the queue there", "[delivery_core]") {
    Harness h(settings_with(), Storage::spool);
    h.submit(1, "a1");
    h.submit(1, "a2");
    h.submit(2, "b1");
    const auto a1 = h.start();
    REQUIRE(h.core.stop(10s, h.clock.now));
    CHECK(is<core_action::Wait>(h.core.next(h.clock.now)));  // b1 waits although a slot is free
    CHECK(wake_time(h.core.shutdown_step(h.clock.now)) == h.clock.now + 10s);
    h.submit(3, "c1");  // arriving while draining: stored, left for the next start
    CHECK(h.end(a1, http(200)).kind == Kind::delivered);
    CHECK(is<core_action::Finish>(h.core.shutdown_step(h.clock.now)));
    CHECK(h.core.phase() == Phase::drained);
    CHECK(h.core.queues().queued() == 3);
    CHECK(h.core.admit(make_event(4, "late", h.clock.now)) == AdmissionVerdict::accept);  // kept in the spool
}

TEST_CASE("core: with a spool a spent budget drains at once, a late failure waits for its retry", "[delivery_core]") {
    Harness h(settings_with(), Storage::spool);
    h.submit(1, "a");
    const auto a = h.start();
    REQUIRE(h.core.stop(1s, h.clock.now));
    h.clock.advance(1s);
    CHECK(is<core_action::Finish>(h.core.shutdown_step(h.clock.now)));
    CHECK(h.core.phase() == Phase::drained);
    CHECK(h.end(a, http(503)).kind == Kind::retry);  // not written off: it stays in the spool
    CHECK(h.core.queues().waiting_retry() == 1);
    CHECK(is<core_action::Finish>(h.core.next(h.clock.now)));
}

TEST_CASE("core: with a spool a retry falling due during the drain is not started", "[delivery_core]") {
    Harness h(settings_with(), Storage::spool);
    h.submit(1, "a");
    REQUIRE(h.end(h.start(), http(503), 0.0).kind == Kind::retry);
    REQUIRE(h.core.stop(10s, h.clock.now));
    h.clock.advance(1s);
    CHECK(is<core_action::Wait>(h.core.next(h.clock.now)));
    CHECK(is<core_action::Finish>(h.core.shutdown_step(h.clock.now)));  // nothing in flight
    CHECK(h.core.queues().queued() == 1);
}

// ---- the second signal ----

namespace {

// Brings a memory-only core with a1 in flight and a2, b1 queued to `phase`; returns a1's job.
CallQueues::Job reach(Harness& h, Phase phase) {
    h.submit(1, "a1");
    h.submit(1, "a2");
    h.submit(2, "b1");
    auto a1 = h.start();
    if (phase == Phase::running) return a1;
    REQUIRE(h.core.stop(1s, h.clock.now));
    if (phase == Phase::draining) return a1;
    h.clock.advance(1s);
    REQUIRE(is<core_action::Wait>(h.core.shutdown_step(h.clock.now)));
    if (phase == Phase::abandoning) return a1;
    h.end(a1, http(200));
    REQUIRE(h.dead_letter_all().size() == 2);
    REQUIRE(h.core.phase() == Phase::drained);
    return a1;
}

}  // namespace

TEST_CASE("core: a second signal aborts from every phase", "[delivery_core]") {
    const auto phase = GENERATE(Phase::running, Phase::draining, Phase::abandoning, Phase::drained);
    CAPTURE(static_cast<int>(phase));
    Harness h(settings_with(3, 1));  // concurrency 1: b1 stays queued
    const auto a1 = reach(h, phase);
    REQUIRE(h.core.phase() == phase);

    const auto pending = h.core.abort();
    REQUIRE(pending);
    CHECK(h.core.phase() == Phase::aborted);
    std::vector<std::string> ids;
    for (const auto& item : *pending) ids.push_back(item.event.id);
    if (phase == Phase::drained) {
        CHECK(ids.empty());  // already written off
    } else {
        REQUIRE(ids.size() == 3);
        CHECK(ids[0] == "a1");  // the one in flight first, then the queued ones (calls in any order)
        CHECK(sorted({ids[1], ids[2]}) == std::vector<std::string>{"a2", "b1"});
        CHECK((*pending)[0].attempts_made == 1);
        CHECK(h.core.decide(a1, http(200), h.clock.now, 0.5).kind == Kind::aborted);
    }
    // Only the event in flight is still held, by its attempt, which settles nothing now.
    CHECK(h.core.queues().queued() == h.core.queues().in_flight());
    CHECK(is<core_action::Finish>(h.core.next(h.clock.now)));
    CHECK(is<core_action::Finish>(h.core.shutdown_step(h.clock.now)));
    CHECK_FALSE(h.core.abort());  // a third signal changes nothing
    CHECK_FALSE(h.core.stop(1s, h.clock.now));
}

TEST_CASE("core: with a spool a second signal leaves everything there", "[delivery_core]") {
    Harness h(settings_with(), Storage::spool);
    h.submit(1, "a1");
    h.submit(2, "b1");
    const auto a1 = h.start();
    REQUIRE(h.core.stop(10s, h.clock.now));
    const auto pending = h.core.abort();
    REQUIRE(pending);
    CHECK(pending->empty());
    CHECK(h.core.queues().queued() == 2);
    CHECK(h.core.decide(a1, http(503), h.clock.now, 0.5).kind == Kind::aborted);
    CHECK(is<core_action::Finish>(h.core.shutdown_step(h.clock.now)));
}
