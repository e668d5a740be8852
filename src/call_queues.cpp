#include <avr_webhookd/call_queues.hpp>

#include <algorithm>
#include <cassert>

namespace avr_webhookd {

std::uint64_t CallQueues::push(Event event, TimePoint now) {
    auto [position, inserted] = calls_.try_emplace(event.uuid);
    Call& call = position->second;
    if (inserted) call.uuid = position->first;
    const std::uint64_t sequence = call.next_sequence++;
    call.events.emplace_back(std::move(event), sequence);
    call.last_activity = now;
    ++queued_;
    if (call.state == Call::State::idle) {
        call.state = Call::State::ready;
        ready_.push_back(&call);
    }
    return sequence;
}

std::optional<CallQueues::Job> CallQueues::take(TimePoint now) {
    // Due retries go before new work, earliest due first.
    std::size_t promoted = 0;
    while (!delayed_.empty() && delayed_.top().due <= now) {
        ready_.insert(ready_.begin() + static_cast<std::ptrdiff_t>(promoted++), delayed_.top().call);
        delayed_.pop();
    }
    if (ready_.empty()) return std::nullopt;
    Call* call = ready_.front();
    ready_.pop_front();
    call->state = Call::State::in_flight;
    ++in_flight_;
    auto& [event, sequence] = call->events.front();
    return Job{call, &event, sequence, call->attempt};
}

void CallQueues::retry_at(const Job& job, TimePoint due) {
    assert(in_flight_ > 0);
    --in_flight_;
    ++job.call->attempt;
    job.call->state = Call::State::waiting_retry;
    delayed_.push(Delayed{due, delayed_order_++, job.call});
}

void CallQueues::finish(const Job& job, TimePoint now) {
    assert(in_flight_ > 0);
    --in_flight_;
    --queued_;
    Call* call = job.call;
    if (call->events.front().first.type == "call_ended") call->ended = true;
    call->events.pop_front();
    call->attempt = 1;
    call->last_activity = now;
    if (!call->events.empty()) {
        call->state = Call::State::ready;
        ready_.push_back(call);
    } else if (call->ended) {
        erase(call);
    } else {
        call->state = Call::State::idle;
    }
}

std::optional<CallQueues::TimePoint> CallQueues::next_due() const {
    if (delayed_.empty()) return std::nullopt;
    return delayed_.top().due;
}

std::size_t CallQueues::expire_idle(TimePoint now, Clock::duration idle) {
    return std::erase_if(calls_, [&](const auto& entry) {
        const Call& call = entry.second;
        return call.state == Call::State::idle && call.events.empty() && now - call.last_activity >= idle;
    });
}

std::vector<CallQueues::Pending> CallQueues::drain() {
    std::vector<Pending> pending;
    ready_.clear();
    while (!delayed_.empty()) delayed_.pop();
    for (auto position = calls_.begin(); position != calls_.end();) {
        Call& call = position->second;
        // An event in flight is not taken: its attempt still decides its fate.
        const bool keep_head = call.state == Call::State::in_flight;
        int attempts_made = keep_head ? 0 : call.attempt - 1;
        for (std::size_t i = keep_head ? 1 : 0; i < call.events.size(); ++i) {
            auto& [event, sequence] = call.events[i];
            pending.push_back(Pending{std::move(event), sequence, attempts_made});
            attempts_made = 0;
        }
        call.events.erase(call.events.begin() + (keep_head ? 1 : 0), call.events.end());
        if (keep_head) {
            ++position;
        } else {
            position = calls_.erase(position);
        }
    }
    queued_ = in_flight_;  // only the heads being attempted remain
    return pending;
}

std::vector<CallQueues::InFlight> CallQueues::in_flight_events() const {
    std::vector<InFlight> events;
    for (const auto& [uuid, call] : calls_)
        if (call.state == Call::State::in_flight) events.push_back({&call.events.front().first, call.attempt});
    return events;
}

std::optional<CallQueues::TimePoint> CallQueues::oldest_accepted() const {
    std::optional<TimePoint> oldest;
    for (const auto& [uuid, call] : calls_)
        if (!call.events.empty() && (!oldest || call.events.front().first.accepted_at < *oldest))
            oldest = call.events.front().first.accepted_at;
    return oldest;
}

void CallQueues::erase(Call* call) { calls_.erase(call->uuid); }

}  // namespace avr_webhookd
