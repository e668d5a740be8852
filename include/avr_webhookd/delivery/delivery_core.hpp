#pragma once

#include <avr_webhookd/common/event.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/delivery/attempt_outcome.hpp>
#include <avr_webhookd/delivery/retry_policy.hpp>
#include <avr_webhookd/queue/call_queues.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace avr_webhookd {

// What the delivery decisions depend on (a subset of Config; the core reads nothing else).
struct DeliverySettings {
    std::size_t concurrency = 64;
    std::size_t max_queue = 100000;
    std::uint64_t max_queue_bytes = 256ull << 20;
    std::size_t max_line = 65536;
    QueueFullPolicy queue_full = QueueFullPolicy::block;
    RetrySettings retry;
    std::vector<std::string> types;  // forwarded types; empty = all
    std::chrono::milliseconds timeout{3000};
    std::chrono::milliseconds call_idle_timeout{900000};

    static DeliverySettings from(const Config& config);
};

// What the delivery loop is to do next; the shell (Deliverer) executes it.
namespace core_action {
struct StartAttempt {  // attempt this job (concurrently); settle() it when its attempt ends
    CallQueues::Job job;
};
struct WaitUntil {  // nothing to do before `at`, unless something changes
    CallQueues::TimePoint at;
};
struct Wait {};         // nothing to do until something changes (an event, an attempt ends)
struct DeadLetterAll {  // the shutdown budget is spent: these events are written off ("shutdown")
    std::vector<CallQueues::Pending> events;
};
struct Finish {};  // the loop is done: drained or aborted
}  // namespace core_action
using CoreAction = std::variant<core_action::StartAttempt, core_action::WaitUntil, core_action::Wait,
                                core_action::DeadLetterAll, core_action::Finish>;

// What becomes of an event whose attempt ended.
struct AttemptVerdict {
    enum class Kind {
        delivered,  // done with: forget it (spool), count it
        retry,      // try again after `delay`
        give_up,    // dead-letter it with `reason` ("shutdown" when the stop budget is spent)
        aborted,    // the daemon was stopped at once: abort() already dealt with it
    };
    Kind kind = Kind::give_up;
    std::chrono::milliseconds delay{0};
    std::string reason;
};

// What submit() is to do with a new event.
enum class AdmissionVerdict {
    filtered,  // its type is not forwarded
    too_late,  // memory only, after the stop: dead-letter it ("shutdown")
    full,      // no room: refuse it (dead-lettered as queue_full)
    accept,    // store it (with a spool) and push() it
};

// Which limit made the queue full (logged and counted once per episode).
enum class FullLimit { none, events, bytes, spool };

// The delivery decisions as a sans-io state machine: admission, the verdict after each attempt,
// retries, and the shutdown phases. It owns the per-call queues; time, randomness and the spool's
// free room come in as arguments, and every effect (HTTP attempts, dead-letter lines, logs,
// metrics) is left to the caller, who gets told what to do.
//
// Phases: running -> draining (stop(): no room limit; with a spool nothing new starts)
//                 -> abandoning (memory only, budget spent: nothing starts, a failure is given up)
//                 -> drained (queues written out or left in the spool; later events: too_late or
//                    kept in the spool for the next start)
// and aborted (abort(), the second signal) from any phase.
class DeliveryCore {
public:
    using Clock = CallQueues::Clock;
    using TimePoint = CallQueues::TimePoint;
    enum class Phase { running, draining, abandoning, drained, aborted };
    // With a spool, whether it can store an event of `cost` more bytes; empty without a spool.
    using SpoolRoom = std::function<bool(std::size_t cost)>;

    explicit DeliveryCore(DeliverySettings settings, SpoolRoom spool_room = {});
    DeliveryCore(const DeliveryCore&) = delete;
    DeliveryCore& operator=(const DeliveryCore&) = delete;

    void reconfigure(DeliverySettings settings);
    const DeliverySettings& settings() const { return settings_; }
    bool has_spool() const { return static_cast<bool>(spool_room_); }
    Phase phase() const { return phase_; }
    bool stopping() const { return phase_ != Phase::running; }
    bool finished() const { return phase_ >= Phase::drained; }

    // Admission. An accepted event is then push()ed (with a spool, once it is stored).
    AdmissionVerdict admit(const Event& event) const;
    std::uint64_t push(Event event, TimePoint now, std::uint64_t sequence = 0);
    // Events admitted into a batch whose spool write is still to come: counted against the limits
    // as if queued, from their admission until they are push()ed or the batch failed.
    void stage(std::size_t cost) {
        ++staged_;
        staged_bytes_ += cost;
    }
    void unstage(std::size_t cost) {
        --staged_;
        staged_bytes_ -= cost;
    }
    // Room for the largest event a line can make (intake reads a line only then, with block).
    bool has_room() const;
    // The limit that is reached, when this starts a queue-full episode (nullopt: none, or
    // already noted); room_again() ends the episode once there is room again.
    std::optional<FullLimit> note_full();
    bool room_again();

    // The scheduler's next step.
    CoreAction next(TimePoint now);
    // The verdict for a finished attempt (random_unit in [0,1) for jitter), and then, once the
    // caller has acted on it (the event is valid until then), its effect on the queues.
    AttemptVerdict decide(const CallQueues::Job& job, const AttemptOutcome& outcome, TimePoint now,
                          double random_unit) const;
    void settle(const CallQueues::Job& job, const AttemptVerdict& verdict, TimePoint now);

    // Graceful stop: false when it was not running. Then shutdown_step() until Finish.
    bool stop(std::chrono::milliseconds budget, TimePoint now);
    CoreAction shutdown_step(TimePoint now);
    // Immediate stop. nullopt when already aborted; else the events to write off (memory only:
    // every event, those in flight first in each call's order; with a spool they stay there).
    std::optional<std::vector<CallQueues::Pending>> abort();
    // The destination is removed (reload): like abort(), but every event is handed back to be
    // written off, with a spool too (the destination will not come back for them).
    std::optional<std::vector<CallQueues::Pending>> remove();

    // Health: the last finished event was given up and none was delivered since.
    void note_given_up(std::string failure);
    std::optional<std::string> unhealthy_reason(TimePoint now) const;
    std::size_t expire_idle(TimePoint now) { return queues_.expire_idle(now, settings_.call_idle_timeout); }

    CallQueues& queues() { return queues_; }
    const CallQueues& queues() const { return queues_; }

private:
    std::vector<CallQueues::Pending> take_everything();
    bool fits(std::size_t cost) const;
    std::size_t largest_event_cost() const;
    bool may_start() const;
    CoreAction drain_memory();

    DeliverySettings settings_;
    RetryPolicy policy_;
    std::set<std::string, std::less<>> forwarded_types_;
    SpoolRoom spool_room_;
    CallQueues queues_;
    Phase phase_ = Phase::running;
    TimePoint deadline_{};  // of the stop's budget
    FullLimit full_limit_ = FullLimit::none;
    std::size_t staged_ = 0;
    std::size_t staged_bytes_ = 0;
    std::optional<std::string> last_failure_;  // set while the last finished event was given up
};

}  // namespace avr_webhookd
