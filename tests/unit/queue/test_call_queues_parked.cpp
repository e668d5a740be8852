// Parked events: with a loader, events behind a call's head are kept as compact entries and read
// back when they are handed out (a fake loader stands in for the spool).
#include <avr_webhookd/queue/call_queues.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <malloc.h>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace avr_webhookd;
using namespace std::chrono_literals;

namespace {

const CallQueues::TimePoint t0{};

std::string uuid_for(int call) {
    char text[37];
    std::snprintf(text, sizeof text, "00000000-0000-4000-8000-%012d", call);
    return text;
}

// The "spool": every pushed event by record id; loads of ids in `unreadable` fail.
struct FakeLoader final : EventLoader {
    std::map<std::uint64_t, Event> stored;
    std::set<std::uint64_t> unreadable;
    std::vector<std::uint64_t> loaded;
    std::vector<std::uint64_t> failed;
    std::optional<Event> load(const CallKey& call, std::uint64_t sequence, const SpoolPlace& place) override {
        (void)sequence;
        if (unreadable.contains(place.record_id) || !stored.contains(place.record_id)) {
            failed.push_back(place.record_id);
            return std::nullopt;
        }
        CHECK(call_key(stored.at(place.record_id).uuid) == call);
        loaded.push_back(place.record_id);
        return stored.at(place.record_id);
    }
};

struct Fixture {
    FakeLoader loader;
    CallQueues queues;
    std::uint64_t next_record = 1;
    explicit Fixture(std::size_t budget = 0) { queues.set_loader(&loader, budget); }

    // Pushes event `id` of `call` as stored at its own record; returns the record id.
    std::uint64_t push(int call, const std::string& id, CallQueues::TimePoint accepted = t0) {
        Event event;
        event.id = id;
        event.uuid = uuid_for(call);
        event.type = "transcription";
        event.body = R"({"n":")" + id + R"("})";
        event.accepted_at = accepted;
        event.spool_record = next_record;
        loader.stored[next_record] = event;
        queues.push(std::move(event), t0, 0, SpoolPlace{next_record, 1, next_record * 100, 100});
        return next_record++;
    }
};

}  // namespace

TEST_CASE("parked events come back in order with their ids, bodies and sequence numbers", "[call_queues]") {
    Fixture fixture;  // budget 0: everything behind a head is parked
    auto& queues = fixture.queues;
    for (int n = 1; n <= 5; ++n)
        for (int call = 1; call <= 3; ++call)
            fixture.push(call, "c" + std::to_string(call) + "-" + std::to_string(n), t0 + std::chrono::seconds(n));
    CHECK(queues.queued() == 15);
    CHECK(queues.parked() == 12);  // the three heads stay whole
    CHECK(queues.queued_bytes() == queues.resident_bytes() + 12 * CallQueues::parked_event_bytes);
    CHECK(fixture.loader.loaded.empty());
    CHECK(queues.oldest_accepted() == t0 + 1s);

    std::map<int, int> next{{1, 1}, {2, 1}, {3, 1}};
    while (auto job = queues.take(t0)) {
        const int call = job->event->id[1] - '0';
        const int n = next[call]++;
        CHECK(job->event->id == "c" + std::to_string(call) + "-" + std::to_string(n));
        CHECK(job->event->body == R"({"n":")" + job->event->id + R"("})");
        CHECK(job->event->uuid == uuid_for(call));
        CHECK(job->sequence == static_cast<std::uint64_t>(n));
        CHECK(job->event->accepted_at == t0 + std::chrono::seconds(n));  // the queue's time, kept while parked
        CHECK(job->event->spool_record != 0);
        queues.finish(*job, t0);
    }
    CHECK(next == std::map<int, int>{{1, 6}, {2, 6}, {3, 6}});
    CHECK(fixture.loader.loaded.size() == 12);
    CHECK(queues.queued() == 0);
    CHECK(queues.parked() == 0);
    CHECK(queues.queued_bytes() == 0);
    CHECK(queues.resident_bytes() == 0);
}

TEST_CASE("events within the resident budget stay whole, beyond it they are parked", "[call_queues]") {
    Event sample;
    sample.id = "a-1";
    sample.uuid = uuid_for(1);
    sample.type = "transcription";
    sample.body = R"({"n":"a-1"})";
    const auto cost = CallQueues::event_cost(sample);
    Fixture fixture(3 * cost);  // the head and two behind it
    for (int n = 1; n <= 6; ++n) fixture.push(1, "a-" + std::to_string(n));
    CHECK(fixture.queues.parked() == 3);
    CHECK(fixture.queues.resident_bytes() == 3 * cost);
    // A new call's head is never parked, however full the budget is.
    fixture.push(2, "b-1");
    CHECK(fixture.queues.parked() == 3);
    // Without a spool place nothing can be parked (memory only).
    Event whole = sample;
    whole.id = "a-7";
    fixture.queues.push(std::move(whole), t0);
    CHECK(fixture.queues.parked() == 3);
}

TEST_CASE("a parked event the loader cannot read is dropped, reported once, and its call moves on", "[call_queues]") {
    Fixture fixture;
    auto& queues = fixture.queues;
    fixture.push(1, "a-1");
    const auto broken = fixture.push(1, "a-2");
    fixture.push(1, "a-3");
    const auto lone = fixture.push(1, "a-4");
    fixture.loader.unreadable = {broken, lone};

    auto first = queues.take(t0);
    REQUIRE(first);
    CHECK(first->event->id == "a-1");
    queues.finish(*first, t0);
    auto third = queues.take(t0);  // a-2 cannot be read: skipped
    REQUIRE(third);
    CHECK(third->event->id == "a-3");
    CHECK(third->sequence == 3);
    CHECK(fixture.loader.failed == std::vector<std::uint64_t>{broken});
    CHECK(queues.queued() == 2);  // a-3 in flight, a-4 parked
    CHECK(queues.in_flight() == 1);
    queues.finish(*third, t0);
    CHECK_FALSE(queues.take(t0));  // a-4 cannot be read either: the call goes idle
    CHECK(fixture.loader.failed == std::vector<std::uint64_t>{broken, lone});
    CHECK(queues.queued() == 0);
    CHECK(queues.in_flight() == 0);
    CHECK(queues.queued_bytes() == 0);
    CHECK(queues.idle_calls() == 1);
    CHECK(queues.next_sequence(*call_key(uuid_for(1))) == 5);  // numbering goes on
    CHECK_FALSE(queues.oldest_accepted());
}

TEST_CASE("drain reads parked events back and leaves out the ones that cannot be read", "[call_queues]") {
    Fixture fixture;
    auto& queues = fixture.queues;
    for (int n = 1; n <= 4; ++n) fixture.push(1, "a-" + std::to_string(n));
    fixture.loader.unreadable = {3};
    auto head = queues.take(t0);
    REQUIRE(head);
    const auto pending = queues.drain();
    REQUIRE(pending.size() == 2);
    CHECK(pending[0].event.id == "a-2");
    CHECK(pending[0].sequence == 2);
    CHECK(pending[1].event.id == "a-4");
    CHECK(fixture.loader.failed == std::vector<std::uint64_t>{3});
    CHECK(queues.queued() == 1);  // the head in flight
    CHECK(queues.parked() == 0);
    CHECK(queues.queued_bytes() == queues.resident_bytes());
    queues.finish(*head, t0);
    CHECK(queues.queued_bytes() == 0);
}

TEST_CASE("100,000 restored events are parked without a load, in about 60 bytes each", "[call_queues][memory]") {
    constexpr std::size_t events = 100'000;
    constexpr int calls = 100;
    std::vector<CallKey> keys;
    for (int call = 1; call <= calls; ++call) keys.push_back(*call_key(uuid_for(call)));
    FakeLoader loader;
    const auto before = mallinfo2().uordblks;
    {
        CallQueues queues;
        queues.set_loader(&loader, 1 << 20);
        for (std::size_t i = 0; i < events; ++i)
            queues.push_parked(keys[i % calls], SpoolPlace{i + 1, 1, i * 300, 300}, 800, t0,
                               static_cast<std::uint64_t>(i / calls + 1));
        const auto after = mallinfo2().uordblks;
        CHECK(queues.queued() == events);
        CHECK(queues.parked() == events);
        CHECK(queues.resident_bytes() == 0);
        CHECK(queues.queued_bytes() == events * CallQueues::parked_event_bytes);
        CHECK(loader.loaded.empty());
        CHECK(loader.failed.empty());
        const double per_event = after > before ? static_cast<double>(after - before) / events : 0.0;
        INFO("heap bytes per parked event: " << per_event);
        CHECK(per_event <= 64);  // 56-byte entries in the calls' deques
        // The first attempt reads the head back; its cost is then the real one.
        auto job = queues.take(t0);
        REQUIRE_FALSE(job);  // the fake spool holds none of them: each head is reported and dropped ...
        CHECK(loader.failed.size() == events);  // ... until every call has gone idle
        CHECK(queues.queued() == 0);
        CHECK(queues.idle_calls() == static_cast<std::size_t>(calls));
    }
}

namespace {

// A loader whose records must first be read off the queue's thread: try_load answers `reading`
// until the test says the read ended, and never waits (load() must not be called by take()).
struct SlowLoader final : EventLoader {
    std::map<std::uint64_t, Event> stored;
    std::set<std::uint64_t> in_memory;  // read already
    std::vector<std::uint64_t> requested;
    int blocking_loads = 0;
    std::optional<Event> load(const CallKey&, std::uint64_t, const SpoolPlace& place) override {
        ++blocking_loads;
        return stored.at(place.record_id);
    }
    Status try_load(const CallKey&, std::uint64_t, const SpoolPlace& place, Event& event) override {
        if (!in_memory.contains(place.record_id)) {
            requested.push_back(place.record_id);
            return Status::reading;
        }
        event = stored.at(place.record_id);
        return Status::loaded;
    }
};

}  // namespace

TEST_CASE("a call whose head is being read waits aside while the other calls go on", "[call_queues]") {
    SlowLoader loader;
    CallQueues queues;
    queues.set_loader(&loader, 0);
    const auto push = [&](int call, std::uint64_t record) {
        Event event;
        event.id = "e" + std::to_string(record);
        event.uuid = uuid_for(call);
        event.type = "transcription";
        event.body = "{}";
        event.spool_record = record;
        loader.stored[record] = event;
        queues.push(std::move(event), t0, 0, SpoolPlace{record, 1, record * 100, 100});
    };
    push(1, 1);
    push(1, 2);  // parked
    push(2, 3);
    auto first = queues.take(t0);
    REQUIRE(first);
    CHECK(first->event->id == "e1");
    queues.finish(*first, t0);  // call 1's head is now parked record 2
    auto second = queues.take(t0);
    REQUIRE(second);
    CHECK(second->event->id == "e3");  // call 2 goes on ...
    CHECK_FALSE(queues.take(t0));      // ... while call 1 waits for its read
    CHECK(queues.loading() == 1);
    CHECK(loader.requested == std::vector<std::uint64_t>{2});
    CHECK_FALSE(queues.take(t0));
    CHECK(loader.requested.size() == 1);  // not asked again until the read ended

    loader.in_memory.insert(2);
    queues.loads_ready();
    CHECK(queues.loading() == 0);
    auto third = queues.take(t0);
    REQUIRE(third);
    CHECK(third->event->id == "e2");
    CHECK(third->sequence == 2);
    CHECK(queues.parked() == 0);
    CHECK(loader.blocking_loads == 0);

    // A drain takes a call that waits for its read too, reading it at once.
    push(1, 4);
    push(1, 5);
    queues.finish(*third, t0);
    CHECK_FALSE(queues.take(t0));  // e4 is being read
    CHECK(queues.loading() == 1);
    const auto drained = queues.drain();
    CHECK(drained.size() == 2);  // e4 and e5 (e3 is in flight)
    CHECK(loader.blocking_loads == 2);
    CHECK(queues.loading() == 0);
}
