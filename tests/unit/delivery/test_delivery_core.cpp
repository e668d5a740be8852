#include <avr_webhookd/delivery/delivery_core.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

// DeliveryCore, driven step by step with a fake clock: every action it returns is checked, and
// the attempts' outcomes are made up, so no test sleeps or touches a socket.
using namespace avr_webhookd;
using namespace std::chrono_literals;

namespace {

using TimePoint = DeliveryCore::TimePoint;
using Phase = DeliveryCore::Phase;
using Kind = AttemptVerdict::Kind;

struct FakeClock {
    TimePoint now = TimePoint{} + 1h;
    void advance(std::chrono::milliseconds by) { now += by; }
};

// Calls are named by a number: call 1, call 2 ...
std::string uuid_of(int call) {
    char text[37];
    std::snprintf(text, sizeof text, "00000000-0000-4000-8000-%012d", call);
    return text;
}

Event make_event(int call, std::string id, TimePoint now, std::string type = "transcription", std::size_t body = 10) {
    Event event;
    event.uuid = uuid_of(call);
    event.id = std::move(id);
    event.type = std::move(type);
    event.body = std::string(body, 'x');
    event.accepted_at = now;
    return event;
}

AttemptOutcome http(int status) {
    AttemptOutcome outcome;
    outcome.kind = status >= 200 && status < 300 ? FailureKind::none : FailureKind::http_status;
    outcome.status = status;
    outcome.code = "HTTP " + std::to_string(status);
    return outcome;
}

DeliverySettings settings_with(int retry = 3, std::size_t concurrency = 8) {
    DeliverySettings settings;
    settings.concurrency = concurrency;
    settings.retry.retry = retry;
    settings.retry.base = 1000ms;
    settings.retry.max_delay = 60000ms;
    settings.retry.max_age = 3600000ms;
    return settings;
}

// queue_full = reject with room for `max_queue` events.
DeliverySettings rejecting_beyond(std::size_t max_queue) {
    auto settings = settings_with();
    settings.max_queue = max_queue;
    settings.queue_full = QueueFullPolicy::reject;
    return settings;
}

enum class Storage { memory, spool };

// The core, and what a spool would say about its room.
struct Harness {
    explicit Harness(DeliverySettings settings = settings_with(), Storage storage = Storage::memory)
        : core(std::move(settings), storage == Storage::spool
                                        ? DeliveryCore::SpoolRoom([this](std::size_t) { return spool_has_room; })
                                        : DeliveryCore::SpoolRoom{}) {}

    FakeClock clock;
    bool spool_has_room = true;
    DeliveryCore core;

    void submit(int call, const std::string& id) {
        auto event = make_event(call, id, clock.now);
        REQUIRE(core.admit(event) == AdmissionVerdict::accept);
        core.push(std::move(event), clock.now);
    }
    CallQueues::Job start() {
        auto action = core.next(clock.now);
        REQUIRE(std::holds_alternative<core_action::StartAttempt>(action));
        return std::get<core_action::StartAttempt>(action).job;
    }
    // The attempt ended with `outcome`: its verdict, acted upon.
    AttemptVerdict end(const CallQueues::Job& job, const AttemptOutcome& outcome, double random_unit = 0.5) {
        auto verdict = core.decide(job, outcome, clock.now, random_unit);
        core.settle(job, verdict, clock.now);
        return verdict;
    }
    std::vector<std::string> dead_letter_all() {
        auto action = core.shutdown_step(clock.now);
        REQUIRE(std::holds_alternative<core_action::DeadLetterAll>(action));
        std::vector<std::string> ids;
        for (const auto& pending : std::get<core_action::DeadLetterAll>(action).events) ids.push_back(pending.event.id);
        return ids;
    }
};

template <typename T>
bool is(const CoreAction& action) {
    return std::holds_alternative<T>(action);
}

std::vector<std::string> sorted(std::vector<std::string> ids) {
    std::sort(ids.begin(), ids.end());
    return ids;
}

TimePoint wake_time(const CoreAction& action) {
    REQUIRE(is<core_action::WaitUntil>(action));
    return std::get<core_action::WaitUntil>(action).at;
}

}  // namespace

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

TEST_CASE("core: with a spool a spent budget drains at once; a late failure waits for its retry", "[delivery_core]") {
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
