#pragma once
// Shared by the DeliveryCore unit tests: a fake clock, made-up events and outcomes, and a harness
// that steps the core the way the Deliverer does.

#include <avr_webhookd/delivery/delivery_core.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace avr_webhookd::core_test {

using namespace std::chrono_literals;
using TimePoint = DeliveryCore::TimePoint;
using Phase = DeliveryCore::Phase;
using Kind = AttemptVerdict::Kind;

struct FakeClock {
    TimePoint now = TimePoint{} + 1h;
    void advance(std::chrono::milliseconds by) { now += by; }
};

// Calls are named by a number: call 1, call 2 ...
inline std::string uuid_of(int call) {
    char text[37];
    std::snprintf(text, sizeof text, "00000000-0000-4000-8000-%012d", call);
    return text;
}

inline Event make_event(int call, std::string id, TimePoint now, std::string type = "transcription",
                        std::size_t body = 10) {
    Event event;
    event.uuid = uuid_of(call);
    event.id = std::move(id);
    event.type = std::move(type);
    event.body = std::string(body, 'x');
    event.accepted_at = now;
    return event;
}

inline AttemptOutcome http(int status) {
    AttemptOutcome outcome;
    outcome.kind = status >= 200 && status < 300 ? FailureKind::none : FailureKind::http_status;
    outcome.status = status;
    outcome.code = "HTTP " + std::to_string(status);
    return outcome;
}

inline DeliverySettings settings_with(int retry = 3, std::size_t concurrency = 8) {
    DeliverySettings settings;
    settings.concurrency = concurrency;
    settings.retry.retry = retry;
    settings.retry.base = 1000ms;
    settings.retry.max_delay = 60000ms;
    settings.retry.max_age = 3600000ms;
    return settings;
}

// queue_full = reject with room for `max_queue` events.
inline DeliverySettings rejecting_beyond(std::size_t max_queue) {
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
inline bool is(const CoreAction& action) {
    return std::holds_alternative<T>(action);
}

inline std::vector<std::string> sorted(std::vector<std::string> ids) {
    std::sort(ids.begin(), ids.end());
    return ids;
}

inline TimePoint wake_time(const CoreAction& action) {
    REQUIRE(is<core_action::WaitUntil>(action));
    return std::get<core_action::WaitUntil>(action).at;
}

}  // namespace avr_webhookd::core_test
