#pragma once

#include <avr_webhookd/common/event.hpp>
#include <avr_webhookd/queue/event_loader.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace avr_webhookd {

// The canonical 8-4-4-4-12 uuid as bytes, or nullopt for anything else (its text: uuid_text).
inline std::optional<CallKey> call_key(std::string_view uuid) { return uuid_bytes(uuid); }

// Per-call delivery order and fairness (sans-io; time is passed in).
//
// Each call uuid has a FIFO of events. At most one event per call is handed out at a time and
// the next one only after the previous was finished (delivered or given up), so a call's events
// reach the receiver strictly in order. Calls with work wait in one round-robin ready list, so
// calls share delivery slots fairly; a call waiting for a retry sits in a timer heap and holds
// no slot.
//
// Memory follows live calls, not calls ever seen, and an idle call is small: a call with nothing
// queued keeps only an IdleCall record (its sequence counter and when it was last active) in
// last-activity order, so idle calls expire from the front without scanning the others. The full
// Call with its FIFO exists only while the call has events queued. A call's state is erased when
// its call_ended event is finished, or when it has been idle for the idle timeout. Nothing here
// that runs per request (oldest_accepted, the counters) scans the calls.
//
// Parking (with a spool and an EventLoader): an event that is not its call's head, pushed while
// the whole events held exceed the resident budget, is kept as a compact entry (its spool
// place, sequence, accepted time and cost: 56 bytes in the call's deque) and read back through
// the loader when take() reaches it, or drain() takes it. take() never waits for the disk: a call
// whose head is still being read waits aside (holding no slot) until loads_ready(), and the other
// calls go on. Each call's head stays whole, so a call that is not backlogged is never read from
// disk.
class CallQueues {
public:
    using Clock = std::chrono::steady_clock;
    using TimePoint = Clock::time_point;

    struct Call;  // opaque to users; a Job's handle

    struct Job {
        Call* call;
        const Event* event;      // valid until finish() for this job (a parked one was read back)
        std::uint64_t sequence;  // 1, 2, 3 ... per call uuid
        int attempt;             // 1 for the first attempt
    };

    struct Pending {  // an undelivered event taken out by drain()
        Event event;
        std::uint64_t sequence;
        int attempts_made;
    };

    // What a queued event is counted as against max_queue_bytes: its strings plus an estimate of
    // the bookkeeping around it (queue slot, string blocks, the call's FIFO).
    static constexpr std::size_t event_overhead_bytes = 512;
    static std::size_t event_cost(const Event& event);
    // What a parked event is counted as instead: its entry in the call's deque, rounded up.
    static constexpr std::size_t parked_event_bytes = 64;

    CallQueues() = default;
    CallQueues(const CallQueues&) = delete;
    CallQueues& operator=(const CallQueues&) = delete;

    // Appends an event to its call's queue; returns its sequence number within the call.
    // The event's uuid must be canonical (intake validated it): std::invalid_argument otherwise.
    std::uint64_t push(Event event, TimePoint now);
    // The same with the sequence number it had before a restart (recovered from the spool). It
    // must not be below the call's next number; numbering continues after it.
    std::uint64_t push(Event event, TimePoint now, std::uint64_t sequence);
    // The same for an event stored in the spool at `place`: parked at once unless it becomes its
    // call's head or the whole events held stay within the resident budget.
    std::uint64_t push(Event event, TimePoint now, std::uint64_t sequence, const SpoolPlace& place);
    // An event recovered from the spool, parked without its body: `cost` is its event_cost
    // estimate until it is loaded (then its real one). sequence 0: the call's next number.
    std::uint64_t push_parked(const CallKey& key, const SpoolPlace& place, std::size_t cost, TimePoint accepted_at,
                              std::uint64_t sequence);
    // Parking needs a loader (which must outlive the queues); without one every event stays whole.
    // `resident_budget`: event_cost bytes of whole events beyond which new events are parked.
    void set_loader(EventLoader* loader, std::size_t resident_budget) {
        loader_ = loader;
        resident_budget_ = resident_budget;
    }
    // The sequence number the call's next pushed event gets (the uuid must be canonical).
    std::uint64_t next_sequence(const CallKey& key) const;
    // After a restart: the call's numbering goes on after `last` although none of its events is
    // queued (an idle call, expiring as any other). No effect on a call already numbered beyond.
    void continue_numbering(const CallKey& key, std::uint64_t last, TimePoint now);
    // Every call the queues hold (active or idle) with the last sequence number it gave out.
    template <typename Visit>
    void for_each_numbering(Visit&& visit) const {
        for (const auto& [key, call] : active_) visit(key, call.next_sequence - 1);
        for (const auto& [key, idle] : idle_) visit(key, idle.next_sequence - 1);
    }

    // The next deliverable event: retries that are due first, then calls in round-robin order.
    std::optional<Job> take(TimePoint now);
    // The loader has read what calls waited for: they are ready again (each asks it once more).
    void loads_ready();
    std::size_t loading() const { return loading_.size(); }  // calls whose head is being read

    // The job's attempt failed and will be tried again at `due`; the call waits, holding no slot.
    void retry_at(const Job& job, TimePoint due);

    // The job's event is done with (delivered or given up): the call moves on to its next event.
    void finish(const Job& job, TimePoint now);

    // When the earliest waiting retry becomes due.
    std::optional<TimePoint> next_due() const;

    // Erases calls that have had nothing queued for `idle`; returns how many. Visits only the
    // calls it erases (plus one), oldest first; `now` is expected not to go backwards.
    std::size_t expire_idle(TimePoint now, Clock::duration idle);

    // Takes every event that is not being attempted right now, for dead-lettering at shutdown.
    std::vector<Pending> drain();

    // The events being attempted right now and their attempt numbers (for an immediate stop).
    struct InFlight {
        const Event* event;
        int attempt;
    };
    std::vector<InFlight> in_flight_events() const;

    std::size_t queued() const { return queued_; }  // all undelivered events, in flight included
    // event_cost() of those events held whole, parked_event_bytes of each parked one
    std::size_t queued_bytes() const { return queued_bytes_; }
    std::size_t parked() const { return parked_; }                  // events held as parked entries
    std::size_t resident_bytes() const { return resident_bytes_; }  // event_cost() of whole events
    std::size_t in_flight() const { return in_flight_; }
    std::size_t live_calls() const { return active_.size() + idle_.size(); }
    std::size_t idle_calls() const { return idle_.size(); }
    std::size_t waiting_retry() const { return delayed_.size(); }
    std::optional<TimePoint> oldest_accepted() const;

    struct CallKeyHash {
        std::size_t operator()(const CallKey& key) const noexcept;
    };

    // A call with nothing queued: what must survive until it expires, and its place in the
    // last-activity list (oldest at the front).
    struct IdleCall {
        std::uint64_t next_sequence = 1;
        TimePoint last_activity{};
        const CallKey* key = nullptr;  // the map node's own key
        IdleCall* older = nullptr;
        IdleCall* newer = nullptr;
    };

    // A queued event: whole (event set), or parked (event null; loaded back from `place`).
    struct Entry {
        std::unique_ptr<Event> event;
        TimePoint accepted_at{};
        std::uint64_t sequence = 0;
        std::uint64_t record_id = 0;  // the SpoolPlace, flattened to keep the entry at 56 bytes
        std::uint64_t segment = 0;
        std::uint64_t offset = 0;
        std::uint32_t length = 0;
        std::uint32_t cost = 0;  // event_cost() of the whole event (an estimate until loaded)
        SpoolPlace place() const { return SpoolPlace{record_id, segment, offset, length}; }
    };

    struct Call {
        CallKey key{};
        std::deque<Entry> events;  // never empty while the Call exists
        std::uint64_t next_sequence = 1;
        int attempt = 1;  // attempt number of the head event
        enum class State { ready, waiting_retry, in_flight, loading } state = State::ready;
        bool ended = false;  // its call_ended was finished
    };

private:
    struct Delayed {
        TimePoint due;
        std::uint64_t order;
        Call* call;
        bool operator>(const Delayed& other) const { return due != other.due ? due > other.due : order > other.order; }
    };
    using Head = std::pair<TimePoint, const Call*>;  // a call's head event's accepted_at

    static Entry parked_entry(const SpoolPlace& place, TimePoint accepted_at, std::size_t cost);
    std::uint64_t push_entry(const CallKey& key, Entry entry, std::uint64_t restored_sequence);
    Call& activate(const CallKey& key, bool& inserted);
    bool load(Call& call, Entry& entry);  // waits for the disk
    void hold_loaded(Entry& entry, Event&& loaded);
    void move_on(Call& call, TimePoint now);
    std::size_t held_bytes(const Entry& entry) const { return entry.event ? entry.cost : parked_event_bytes; }
    void pop_head(Call& call);
    void add_head(const Call& call);
    void make_idle(Call& call, TimePoint now);
    void unlink(IdleCall& idle);

    std::unordered_map<CallKey, Call, CallKeyHash> active_;
    std::unordered_map<CallKey, IdleCall, CallKeyHash> idle_;
    IdleCall* idle_oldest_ = nullptr;
    IdleCall* idle_newest_ = nullptr;
    std::set<Head> heads_;
    std::deque<Call*> ready_;
    std::vector<Call*> loading_;  // their head is being read back
    std::priority_queue<Delayed, std::vector<Delayed>, std::greater<>> delayed_;
    std::uint64_t delayed_order_ = 0;
    std::size_t queued_ = 0;
    std::size_t queued_bytes_ = 0;
    std::size_t in_flight_ = 0;
    std::size_t parked_ = 0;
    std::size_t resident_bytes_ = 0;
    EventLoader* loader_ = nullptr;
    std::size_t resident_budget_ = 0;
};

}  // namespace avr_webhookd
