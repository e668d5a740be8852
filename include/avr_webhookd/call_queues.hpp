#pragma once

#include <avr_webhookd/event.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

namespace avr_webhookd {

// Per-call delivery order and fairness (sans-io; time is passed in).
//
// Each call uuid has a FIFO of events. At most one event per call is handed out at a time and
// the next one only after the previous was finished (delivered or given up), so a call's events
// reach the receiver strictly in order. Calls with work wait in one round-robin ready list, so
// calls share delivery slots fairly; a call waiting for a retry sits in a timer heap and holds
// no slot. A call's state is erased when its call_ended event is finished, or when it has been
// idle (nothing queued) for the idle timeout, so memory follows live calls, not calls ever seen.
class CallQueues {
public:
    using Clock = std::chrono::steady_clock;
    using TimePoint = Clock::time_point;

    struct Call;  // opaque to users; a Job's handle

    struct Job {
        Call* call;
        const Event* event;     // valid until finish() or retry_at() for this job
        std::uint64_t sequence; // 1, 2, 3 ... per call uuid
        int attempt;            // 1 for the first attempt
    };

    struct Pending {  // an undelivered event taken out by drain()
        Event event;
        std::uint64_t sequence;
        int attempts_made;
    };

    CallQueues() = default;
    CallQueues(const CallQueues&) = delete;
    CallQueues& operator=(const CallQueues&) = delete;

    // Appends an event to its call's queue; returns its sequence number within the call.
    std::uint64_t push(Event event, TimePoint now);

    // The next deliverable event: retries that are due first, then calls in round-robin order.
    std::optional<Job> take(TimePoint now);

    // The job's attempt failed and will be tried again at `due`; the call waits, holding no slot.
    void retry_at(const Job& job, TimePoint due);

    // The job's event is done with (delivered or given up): the call moves on to its next event.
    void finish(const Job& job, TimePoint now);

    // When the earliest waiting retry becomes due.
    std::optional<TimePoint> next_due() const;

    // Erases calls that have had nothing queued for `idle`; returns how many.
    std::size_t expire_idle(TimePoint now, Clock::duration idle);

    // Takes every event that is not being attempted right now, for dead-lettering at shutdown.
    std::vector<Pending> drain();

    // The events being attempted right now and their attempt numbers (for an immediate stop).
    struct InFlight {
        const Event* event;
        int attempt;
    };
    std::vector<InFlight> in_flight_events() const;

    std::size_t queued() const { return queued_; }             // all undelivered events, in flight included
    std::size_t in_flight() const { return in_flight_; }
    std::size_t live_calls() const { return calls_.size(); }
    std::size_t waiting_retry() const { return delayed_.size(); }
    std::optional<TimePoint> oldest_accepted() const;

    struct Call {
        std::string uuid;
        std::deque<std::pair<Event, std::uint64_t>> events;  // event, sequence
        std::uint64_t next_sequence = 1;
        int attempt = 1;          // attempt number of the head event
        enum class State { idle, ready, waiting_retry, in_flight } state = State::idle;
        bool ended = false;       // its call_ended was finished
        TimePoint last_activity{};
    };

private:
    struct Delayed {
        TimePoint due;
        std::uint64_t order;
        Call* call;
        bool operator>(const Delayed& other) const {
            return due != other.due ? due > other.due : order > other.order;
        }
    };

    void erase(Call* call);

    std::unordered_map<std::string, Call> calls_;
    std::deque<Call*> ready_;
    std::priority_queue<Delayed, std::vector<Delayed>, std::greater<>> delayed_;
    std::uint64_t delayed_order_ = 0;
    std::size_t queued_ = 0;
    std::size_t in_flight_ = 0;
};

}  // namespace avr_webhookd
