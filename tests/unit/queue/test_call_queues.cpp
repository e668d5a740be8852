#include <avr_webhookd/queue/call_queues.hpp>
#include <avr_webhookd/common/uuid.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <functional>
#include <malloc.h>
#include <map>
#include <string>

using namespace avr_webhookd;
using namespace std::chrono_literals;

namespace {

const CallQueues::TimePoint t0{};

// Tests name calls "a", "b" ...; the queues key calls by canonical uuid, so each name maps to one.
std::string uuid_of(const std::string& name) {
    char text[37];
    std::snprintf(text, sizeof text, "00000000-0000-4000-8000-%012llx",
                  static_cast<unsigned long long>(std::hash<std::string>{}(name)&0xFFFFFFFFFFFFull));
    return text;
}

Event make_event(std::string uuid, std::string type, std::string id) {
    Event event;
    if (uuid.size() != 36) uuid = uuid_of(uuid);
    event.uuid = std::move(uuid);
    event.type = std::move(type);
    event.id = std::move(id);
    event.accepted_at = t0;
    return event;
}

}  // namespace

TEST_CASE("call queues hand out one event per call, in order", "[call_queues]") {
    CallQueues queues;
    CHECK(queues.push(make_event("a", "call_started", "a1"), t0) == 1);
    CHECK(queues.push(make_event("a", "transcription", "a2"), t0) == 2);
    CHECK(queues.push(make_event("b", "call_started", "b1"), t0) == 1);

    auto first = queues.take(t0);
    REQUIRE(first);
    CHECK(first->event->id == "a1");
    CHECK(first->sequence == 1);
    auto second = queues.take(t0);
    REQUIRE(second);
    CHECK(second->event->id == "b1");
    CHECK_FALSE(queues.take(t0));  // a2 waits for a1
    CHECK(queues.in_flight() == 2);

    queues.finish(*first, t0);
    auto third = queues.take(t0);
    REQUIRE(third);
    CHECK(third->event->id == "a2");
    CHECK(third->sequence == 2);
    CHECK(queues.queued() == 2);
}

TEST_CASE("call queues serve calls round-robin", "[call_queues]") {
    CallQueues queues;
    for (int i = 0; i < 3; ++i)
        for (std::string call : {"a", "b", "c"})
            queues.push(make_event(call, "transcription", call + std::to_string(i)), t0);
    std::string order;
    while (auto job = queues.take(t0)) {
        order += job->event->id.substr(0, 1);
        queues.finish(*job, t0);
    }
    CHECK(order == "abcabcabc");
    CHECK(queues.queued() == 0);
}

TEST_CASE("call queues hold a retrying call without blocking others", "[call_queues]") {
    CallQueues queues;
    queues.push(make_event("a", "call_started", "a1"), t0);
    queues.push(make_event("a", "call_ended", "a2"), t0);
    queues.push(make_event("b", "call_started", "b1"), t0);

    auto a1 = *queues.take(t0);
    queues.retry_at(a1, t0 + 5s);
    CHECK(queues.in_flight() == 0);
    CHECK(queues.next_due() == t0 + 5s);

    auto b1 = queues.take(t0 + 1s);
    REQUIRE(b1);
    CHECK(b1->event->id == "b1");
    queues.finish(*b1, t0 + 1s);
    CHECK_FALSE(queues.take(t0 + 4s));  // a2 must not overtake a1

    auto retried = queues.take(t0 + 5s);
    REQUIRE(retried);
    CHECK(retried->event->id == "a1");
    CHECK(retried->attempt == 2);
    queues.finish(*retried, t0 + 5s);
    auto a2 = queues.take(t0 + 5s);
    REQUIRE(a2);
    CHECK(a2->event->id == "a2");
    CHECK(a2->attempt == 1);
}

TEST_CASE("call queues take due retries before new work, earliest due first", "[call_queues]") {
    CallQueues queues;
    for (std::string call : {"a", "b", "c"}) queues.push(make_event(call, "call_started", call + "1"), t0);
    auto a = *queues.take(t0);
    auto b = *queues.take(t0);
    queues.retry_at(b, t0 + 1s);
    queues.retry_at(a, t0 + 2s);
    queues.push(make_event("d", "call_started", "d1"), t0);
    std::string order;
    while (auto job = queues.take(t0 + 5s)) {
        order += job->event->id.substr(0, 1);
        queues.finish(*job, t0 + 5s);
    }
    CHECK(order == "bacd");
}

TEST_CASE("call queues free a call after call_ended and after idling", "[call_queues]") {
    CallQueues queues;
    queues.push(make_event("a", "call_started", "a1"), t0);
    queues.push(make_event("a", "call_ended", "a2"), t0);
    queues.push(make_event("b", "call_started", "b1"), t0);
    CHECK(queues.live_calls() == 2);
    for (int i = 0; i < 3; ++i) {
        auto job = queues.take(t0);
        REQUIRE(job);
        queues.finish(*job, t0);
    }
    CHECK(queues.live_calls() == 1);  // a ended; b has not
    CHECK(queues.expire_idle(t0 + 59s, 60s) == 0);
    CHECK(queues.expire_idle(t0 + 60s, 60s) == 1);
    CHECK(queues.live_calls() == 0);
    // A call seen again after being freed starts a new sequence.
    CHECK(queues.push(make_event("b", "transcription", "b2"), t0 + 61s) == 1);
}

TEST_CASE("call queues never expire a call with work pending", "[call_queues]") {
    CallQueues queues;
    queues.push(make_event("a", "call_started", "a1"), t0);
    auto job = *queues.take(t0);
    CHECK(queues.expire_idle(t0 + 1h, 1s) == 0);
    queues.retry_at(job, t0 + 2h);
    CHECK(queues.expire_idle(t0 + 3h, 1s) == 0);
    CHECK(queues.live_calls() == 1);
}

TEST_CASE("call queues drain everything not in flight", "[call_queues]") {
    CallQueues queues;
    queues.push(make_event("a", "call_started", "a1"), t0);
    queues.push(make_event("a", "transcription", "a2"), t0);
    queues.push(make_event("b", "call_started", "b1"), t0);
    queues.push(make_event("c", "call_started", "c1"), t0);
    auto a1 = *queues.take(t0);
    auto b1 = *queues.take(t0);
    queues.retry_at(b1, t0 + 10s);
    queues.retry_at(*queues.take(t0 + 10s), t0 + 20s);  // b1's second attempt failed too

    const auto flying = queues.in_flight_events();
    REQUIRE(flying.size() == 1);
    CHECK(flying[0].event->id == "a1");
    CHECK(flying[0].attempt == 1);

    const auto pending = queues.drain();
    std::map<std::string, int> attempts;
    for (const auto& item : pending) attempts[item.event.id] = item.attempts_made;
    CHECK(attempts == std::map<std::string, int>{{"a2", 0}, {"b1", 2}, {"c1", 0}});
    CHECK(queues.queued() == 1);  // a1 is still being attempted
    CHECK_FALSE(queues.take(t0 + 1h));
    queues.finish(a1, t0);
    CHECK(queues.queued() == 0);
}

TEST_CASE("call queues report the oldest undelivered event", "[call_queues]") {
    CallQueues queues;
    CHECK_FALSE(queues.oldest_accepted());
    auto late = make_event("a", "call_started", "a1");
    late.accepted_at = t0 + 5s;
    auto early = make_event("b", "call_started", "b1");
    early.accepted_at = t0 + 2s;
    queues.push(late, t0);
    queues.push(early, t0);
    CHECK(queues.oldest_accepted() == t0 + 2s);
}

TEST_CASE("call queues follow the oldest head as heads change", "[call_queues]") {
    CallQueues queues;
    auto a1 = make_event("a", "call_started", "a1");
    a1.accepted_at = t0 + 1s;
    auto a2 = make_event("a", "transcription", "a2");
    a2.accepted_at = t0 + 7s;
    auto b1 = make_event("b", "call_started", "b1");
    b1.accepted_at = t0 + 3s;
    queues.push(a1, t0);
    queues.push(a2, t0);
    queues.push(b1, t0);
    CHECK(queues.oldest_accepted() == t0 + 1s);
    auto job = *queues.take(t0);
    REQUIRE(job.event->id == "a1");
    queues.finish(job, t0);
    CHECK(queues.oldest_accepted() == t0 + 3s);  // b1 is older than a's new head a2
    queues.finish(*queues.take(t0), t0);         // b1
    CHECK(queues.oldest_accepted() == t0 + 7s);
    queues.finish(*queues.take(t0), t0);  // a2
    CHECK_FALSE(queues.oldest_accepted());
}

TEST_CASE("call queues keep an idle call compact and its sequence going", "[call_queues]") {
    // What an idle call costs: this record and its hash node, not a FIFO and a string.
    STATIC_REQUIRE(sizeof(CallQueues::IdleCall) <= 40);
    CallQueues queues;
    queues.push(make_event("a", "call_started", "a1"), t0);
    queues.push(make_event("a", "transcription", "a2"), t0);
    queues.finish(*queues.take(t0), t0);
    queues.finish(*queues.take(t0), t0 + 1s);
    CHECK(queues.idle_calls() == 1);
    CHECK(queues.live_calls() == 1);
    CHECK(queues.push(make_event("a", "transcription", "a3"), t0 + 2s) == 3);
    CHECK(queues.idle_calls() == 0);
    CHECK(queues.live_calls() == 1);
}

TEST_CASE("call queues expire idle calls oldest first, and a woken call is not expired", "[call_queues]") {
    CallQueues queues;
    int second = 0;
    for (std::string call : {"a", "b", "c", "d"}) {
        queues.push(make_event(call, "call_started", call + "1"), t0);
        queues.finish(*queues.take(t0), t0 + std::chrono::seconds(++second));  // idle since 1s, 2s, 3s, 4s
    }
    queues.push(make_event("b", "transcription", "b2"), t0 + 5s);  // b wakes up
    CHECK(queues.expire_idle(t0 + 62s, 60s) == 1);                 // a only (c went idle at 3s)
    CHECK(queues.live_calls() == 3);
    CHECK(queues.expire_idle(t0 + 64s, 60s) == 2);  // c and d; b has work
    CHECK(queues.live_calls() == 1);
    queues.finish(*queues.take(t0 + 70s), t0 + 70s);
    CHECK(queues.expire_idle(t0 + 129s, 60s) == 0);
    CHECK(queues.expire_idle(t0 + 130s, 60s) == 1);
    CHECK(queues.live_calls() == 0);
}

TEST_CASE("call queues count queued bytes until an event is finished or drained", "[call_queues]") {
    CallQueues queues;
    auto a1 = make_event("a", "call_started", "a1");
    a1.body = std::string(1000, 'x');
    const auto cost = CallQueues::event_cost(a1);
    CHECK(cost >= 1000 + CallQueues::event_overhead_bytes);
    queues.push(a1, t0);
    queues.push(make_event("b", "call_started", "b1"), t0);
    const auto both = queues.queued_bytes();
    CHECK(both > cost);
    auto job = *queues.take(t0);
    REQUIRE(job.event->id == "a1");
    queues.retry_at(job, t0 + 1s);
    CHECK(queues.queued_bytes() == both);  // a retry still holds its bytes
    queues.finish(*queues.take(t0 + 1s), t0 + 1s);
    CHECK(queues.queued_bytes() == both - cost);
    queues.drain();
    CHECK(queues.queued_bytes() == 0);
}

TEST_CASE("call queues refuse a call uuid that is not canonical", "[call_queues]") {
    CallQueues queues;
    Event event = make_event("a", "call_started", "a1");
    event.uuid = "not-a-uuid";
    CHECK_THROWS_AS(queues.push(event, t0), std::invalid_argument);
    CHECK(queues.queued() == 0);
    CHECK(call_key("550E8400-e29b-41d4-a716-446655440000") == call_key("550e8400-e29b-41d4-a716-446655440000"));
}

TEST_CASE("call queues hold 100,000 idle calls in well under 40 MB", "[call_queues][memory]") {
    constexpr std::size_t calls = 100'000;
    CallQueues queues;
    UuidGenerator uuids(7);
    std::vector<std::string> names;
    names.reserve(calls);
    for (std::size_t i = 0; i < calls; ++i) names.push_back(uuids.next());
    const auto before = mallinfo2().uordblks;
    for (std::size_t i = 0; i < calls; ++i) {
        queues.push(make_event(names[i], "call_started", "e"), t0);
        queues.finish(*queues.take(t0), t0);
    }
    const auto after = mallinfo2().uordblks;
    REQUIRE(queues.idle_calls() == calls);
    const double per_call = after > before ? static_cast<double>(after - before) / calls : 0.0;
    INFO("heap bytes per idle call: " << per_call);
    CHECK(per_call < 200);  // ~100 measured (hash node and bucket); 40 MB would be 400
    CHECK(queues.expire_idle(t0 + 1s, 1s) == calls);
}

TEST_CASE("call queues: restored events keep their sequence numbers and numbering goes on", "[call_queues]") {
    CallQueues queues;
    const auto a = *call_key(uuid_of("a"));
    const auto b = *call_key(uuid_of("b"));
    CHECK(queues.next_sequence(a) == 1);
    // After a restart: call a had events 4 and 5 undelivered; call b's events were all done up to 9.
    CHECK(queues.push(make_event("a", "transcription", "a4"), t0, 4) == 4);
    CHECK(queues.push(make_event("a", "transcription", "a5"), t0, 5) == 5);
    queues.continue_numbering(a, 5, t0);
    queues.continue_numbering(b, 9, t0);
    CHECK(queues.next_sequence(a) == 6);
    CHECK(queues.next_sequence(b) == 10);
    CHECK(queues.idle_calls() == 1);  // b holds only its counter
    CHECK(queues.push(make_event("a", "transcription", "a6"), t0) == 6);
    CHECK(queues.push(make_event("b", "transcription", "b10"), t0) == 10);
    // A sequence below the call's next one would break the receiver's order: refused.
    CHECK_THROWS_AS(queues.push(make_event("a", "transcription", "late"), t0, 3), std::invalid_argument);
    // continue_numbering never lowers a counter.
    queues.continue_numbering(a, 2, t0);
    CHECK(queues.next_sequence(a) == 7);

    auto job = queues.take(t0);
    REQUIRE(job);
    CHECK(job->event->id == "a4");
    CHECK(job->sequence == 4);
}

TEST_CASE("call queues: a key prints as the canonical uuid it came from", "[call_queues]") {
    const std::string uuid = "550e8400-e29b-41d4-a716-446655440000";
    CHECK(uuid_text(*call_key(uuid)) == uuid);
    CHECK(uuid_text(*call_key("550E8400-E29B-41D4-A716-446655440000")) == uuid);
}
