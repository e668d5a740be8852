#include <avr_webhookd/delivery/delivery_core.hpp>

#include <algorithm>
#include <iterator>
#include <utility>

namespace avr_webhookd {

DeliverySettings DeliverySettings::from(const Config& config) {
    DeliverySettings settings;
    settings.concurrency = config.concurrency;
    settings.max_queue = config.max_queue;
    settings.max_queue_bytes = config.max_queue_bytes;
    settings.max_line = config.max_line;
    settings.queue_full = config.queue_full;
    settings.retry = RetrySettings{config.retry, config.retry_base, config.retry_max_delay, config.max_age};
    settings.types = config.types;
    settings.timeout = config.timeout;
    settings.call_idle_timeout = config.call_idle_timeout;
    return settings;
}

DeliveryCore::DeliveryCore(DeliverySettings settings, SpoolRoom spool_room)
    : settings_(std::move(settings)),
      policy_(settings_.retry),
      forwarded_types_(settings_.types.begin(), settings_.types.end()),
      spool_room_(std::move(spool_room)) {}

void DeliveryCore::reconfigure(DeliverySettings settings) {
    settings_ = std::move(settings);
    policy_ = RetryPolicy(settings_.retry);
    forwarded_types_ = std::set<std::string, std::less<>>(settings_.types.begin(), settings_.types.end());
}

// ---- admission ----

AdmissionVerdict DeliveryCore::admit(const Event& event) const {
    if (!forwarded_types_.empty() && !forwarded_types_.contains(event.type)) return AdmissionVerdict::filtered;
    if (finished() && has_spool()) return AdmissionVerdict::accept;  // kept in the spool for the next start
    if (finished()) return AdmissionVerdict::too_late;               // its call's queue is already written out
    // With queue_full = block intake only reads a line when has_room(), which leaves room for the
    // largest possible event; a line from before a max_line reload may overshoot by itself.
    if (!(settings_.queue_full == QueueFullPolicy::block && has_room()) && !fits(CallQueues::event_cost(event)))
        return AdmissionVerdict::full;
    return AdmissionVerdict::accept;
}

std::uint64_t DeliveryCore::push(Event event, TimePoint now, std::uint64_t sequence) {
    return sequence == 0 ? queues_.push(std::move(event), now) : queues_.push(std::move(event), now, sequence);
}

// Whether an event of `cost` bytes may be queued now. An empty queue takes any one event, so an
// event larger than max_queue_bytes is still delivered, alone. A stop lifts every limit.
bool DeliveryCore::fits(std::size_t cost) const {
    if (stopping()) return true;
    if (spool_room_ && !spool_room_(cost)) return false;
    const std::size_t queued = queues_.queued() + staged_;
    if (queued >= settings_.max_queue) return false;
    return queued == 0 || queues_.queued_bytes() + staged_bytes_ + cost <= settings_.max_queue_bytes;
}

// A line's event comes to at most twice max_line (its body and strings) plus the overhead.
std::size_t DeliveryCore::largest_event_cost() const {
    return 2 * settings_.max_line + CallQueues::event_overhead_bytes;
}

bool DeliveryCore::has_room() const { return fits(largest_event_cost()); }

std::optional<FullLimit> DeliveryCore::note_full() {
    if (full_limit_ != FullLimit::none) return std::nullopt;
    const bool by_spool = spool_room_ && !spool_room_(largest_event_cost());
    const bool by_events = !by_spool && queues_.queued() + staged_ >= settings_.max_queue;
    full_limit_ = by_spool ? FullLimit::spool : by_events ? FullLimit::events : FullLimit::bytes;
    return full_limit_;
}

bool DeliveryCore::room_again() {
    if (full_limit_ == FullLimit::none || !has_room()) return false;
    full_limit_ = FullLimit::none;
    return true;
}

// ---- scheduling and verdicts ----

// Attempts may start while running and, without a spool, while draining; with a spool nothing new
// starts once the stop began, and once the budget is spent nothing starts at all.
bool DeliveryCore::may_start() const { return phase_ == Phase::running || (phase_ == Phase::draining && !has_spool()); }

CoreAction DeliveryCore::next(TimePoint now) {
    if (finished()) return core_action::Finish{};
    const bool slot_free = may_start() && queues_.in_flight() < settings_.concurrency;
    if (slot_free)
        if (auto job = queues_.take(now)) return core_action::StartAttempt{*job};
    // With every slot busy, only a finished attempt can let more work start.
    if (const auto due = slot_free ? queues_.next_due() : std::nullopt) return core_action::WaitUntil{*due};
    return core_action::Wait{};
}

AttemptVerdict DeliveryCore::decide(const CallQueues::Job& job, const AttemptOutcome& outcome, TimePoint now,
                                    double random_unit) const {
    if (phase_ == Phase::aborted) return AttemptVerdict{AttemptVerdict::Kind::aborted, {}, {}};
    const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(now - job.event->accepted_at);
    Decision decision = policy_.decide(job.attempt, outcome, age, random_unit);
    switch (decision.verdict) {
    case Verdict::delivered:
        return AttemptVerdict{AttemptVerdict::Kind::delivered, {}, {}};
    case Verdict::give_up:
        return AttemptVerdict{AttemptVerdict::Kind::give_up, {}, std::move(decision.reason)};
    case Verdict::retry:
        break;
    }
    // The budget is spent (memory only): no retry, it is written off now. With a spool a stop
    // leaves it waiting for its retry, among the events left there.
    if (phase_ >= Phase::abandoning && !has_spool())
        return AttemptVerdict{AttemptVerdict::Kind::give_up, {}, "shutdown"};
    return AttemptVerdict{AttemptVerdict::Kind::retry, decision.delay, {}};
}

void DeliveryCore::settle(const CallQueues::Job& job, const AttemptVerdict& verdict, TimePoint now) {
    switch (verdict.kind) {
    case AttemptVerdict::Kind::delivered:
        last_failure_.reset();
        queues_.finish(job, now);
        return;
    case AttemptVerdict::Kind::give_up:
        queues_.finish(job, now);
        return;
    case AttemptVerdict::Kind::retry:
        queues_.retry_at(job, now + verdict.delay);
        return;
    case AttemptVerdict::Kind::aborted:
        return;  // abort() took care of it
    }
}

// ---- shutdown ----

bool DeliveryCore::stop(std::chrono::milliseconds budget, TimePoint now) {
    if (phase_ != Phase::running) return false;
    phase_ = Phase::draining;
    deadline_ = now + budget;
    return true;
}

// Without a spool queued events keep being delivered until none is left or the budget is spent;
// then attempts in flight end (a failure is given up at once), and only then is the rest written
// off, so each call's events stay in order in the dead-letter file. With a spool attempts in flight
// get the budget, and every event not delivered by then stays in the spool.
CoreAction DeliveryCore::shutdown_step(TimePoint now) {
    switch (phase_) {
    case Phase::running:
        return core_action::Wait{};  // not stopping: nothing to step
    case Phase::draining:
        if (has_spool()) {
            if (queues_.in_flight() > 0 && now < deadline_) return core_action::WaitUntil{deadline_};
            phase_ = Phase::drained;
            return core_action::Finish{};
        }
        if (queues_.queued() > 0 && now < deadline_) return core_action::WaitUntil{deadline_};
        phase_ = Phase::abandoning;
        return drain_memory();
    case Phase::abandoning:
        return drain_memory();
    case Phase::drained:
    case Phase::aborted:
        return core_action::Finish{};
    }
    return core_action::Finish{};
}

CoreAction DeliveryCore::drain_memory() {
    if (queues_.in_flight() > 0) return core_action::Wait{};
    auto pending = queues_.drain();
    phase_ = Phase::drained;  // stops the scheduler
    return core_action::DeadLetterAll{std::move(pending)};
}

std::optional<std::vector<CallQueues::Pending>> DeliveryCore::abort() {
    if (phase_ == Phase::aborted) return std::nullopt;
    phase_ = Phase::aborted;
    if (has_spool()) return std::vector<CallQueues::Pending>{};
    return take_everything();
}

std::optional<std::vector<CallQueues::Pending>> DeliveryCore::remove() {
    if (phase_ == Phase::aborted) return std::nullopt;
    phase_ = Phase::aborted;
    return take_everything();
}

std::vector<CallQueues::Pending> DeliveryCore::take_everything() {
    std::vector<CallQueues::Pending> pending;
    for (const auto& [event, attempt] : queues_.in_flight_events())  // each call's head comes first
        pending.push_back(CallQueues::Pending{*event, 0, attempt});
    auto queued = queues_.drain();
    std::move(queued.begin(), queued.end(), std::back_inserter(pending));
    return pending;
}

// ---- health ----

void DeliveryCore::note_given_up(std::string failure) { last_failure_ = std::move(failure); }

std::optional<std::string> DeliveryCore::unhealthy_reason(TimePoint now) const {
    if (last_failure_) return "the last event was given up (" + *last_failure_ + ") and none has been delivered since";
    const auto oldest = queues_.oldest_accepted();
    const auto stuck_after =
        std::max<Clock::duration>(std::chrono::minutes(5), settings_.retry.max_delay * 2 + settings_.timeout);
    if (oldest && now - *oldest > stuck_after)
        return "the oldest undelivered event has waited " +
               std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - *oldest).count()) + "s";
    return std::nullopt;
}

}  // namespace avr_webhookd
