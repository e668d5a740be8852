#include <avr_webhookd/queue/call_queues.hpp>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <stdexcept>
#include <string>

namespace avr_webhookd {

std::size_t CallQueues::CallKeyHash::operator()(const CallKey& key) const noexcept {
    // Random v4 uuids are uniform already; mixing both halves also spreads hand-made ones.
    std::uint64_t high = 0;
    std::uint64_t low = 0;
    std::memcpy(&high, key.data(), 8);
    std::memcpy(&low, key.data() + 8, 8);
    return static_cast<std::size_t>((high ^ (low * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull >> 7);
}

std::size_t CallQueues::event_cost(const Event& event) {
    return event.body.size() + event.id.size() + event.uuid.size() + event.type.size() + event.timestamp.size() +
           event_overhead_bytes;
}

// What makes a backlog cheap with a spool: a parked event costs its entry and a share of a deque block.
static_assert(sizeof(CallQueues::Entry) <= 56);

std::uint64_t CallQueues::push(Event event, TimePoint now) { return push(std::move(event), now, 0); }

std::uint64_t CallQueues::next_sequence(const CallKey& key) const {
    if (const auto active = active_.find(key); active != active_.end()) return active->second.next_sequence;
    if (const auto idle = idle_.find(key); idle != idle_.end()) return idle->second.next_sequence;
    return 1;
}

void CallQueues::continue_numbering(const CallKey& key, std::uint64_t last, TimePoint now) {
    if (const auto active = active_.find(key); active != active_.end()) {
        active->second.next_sequence = std::max(active->second.next_sequence, last + 1);
        return;
    }
    if (const auto idle = idle_.find(key); idle != idle_.end()) {
        idle->second.next_sequence = std::max(idle->second.next_sequence, last + 1);
        return;
    }
    Call call;
    call.key = key;
    call.next_sequence = last + 1;
    make_idle(call, now);
}

std::uint64_t CallQueues::push(Event event, TimePoint now, std::uint64_t restored_sequence) {
    return push(std::move(event), now, restored_sequence, SpoolPlace{});
}

std::uint64_t CallQueues::push(Event event, TimePoint now, std::uint64_t restored_sequence, const SpoolPlace& place) {
    const auto key = call_key(event.uuid);
    if (!key) throw std::invalid_argument("call queues: not a canonical call uuid: " + event.uuid);
    (void)now;  // an active call never expires; its last activity counts from when it goes idle
    Entry entry = parked_entry(place, event.accepted_at, event_cost(event));
    // A head is about to be taken: reading it back would only cost a read. Behind the head,
    // whole events are kept while they fit the budget, so a queue that is not backlogged never
    // waits for the disk.
    const bool behind_head = active_.contains(*key);
    // An event whose producer waits for the answer keeps its answer key: it stays whole.
    const bool park = loader_ && place.length != 0 && behind_head && event.answer_key == 0 &&
                      resident_bytes_ + entry.cost > resident_budget_;
    if (!park) entry.event = std::make_unique<Event>(std::move(event));
    return push_entry(*key, std::move(entry), restored_sequence);
}

std::uint64_t CallQueues::push_parked(const CallKey& key, const SpoolPlace& place, std::size_t cost,
                                      TimePoint accepted_at, std::uint64_t restored_sequence) {
    if (!loader_ || place.length == 0) throw std::logic_error("call queues: parking needs a loader and a spool place");
    return push_entry(key, parked_entry(place, accepted_at, cost), restored_sequence);
}

CallQueues::Entry CallQueues::parked_entry(const SpoolPlace& place, TimePoint accepted_at, std::size_t cost) {
    Entry entry;
    entry.accepted_at = accepted_at;
    entry.record_id = place.record_id;
    entry.segment = place.segment;
    entry.offset = place.offset;
    entry.length = place.length;
    entry.cost = static_cast<std::uint32_t>(cost);
    return entry;
}

// The call's Call, created (and woken from idle, its counter going on) when it has none.
CallQueues::Call& CallQueues::activate(const CallKey& key, bool& inserted) {
    auto [position, created] = active_.try_emplace(key);
    Call& call = position->second;
    inserted = created;
    if (created) {
        call.key = key;
        if (auto idle = idle_.find(key); idle != idle_.end()) {
            call.next_sequence = idle->second.next_sequence;
            unlink(idle->second);
            idle_.erase(idle);
        }
    }
    return call;
}

std::uint64_t CallQueues::push_entry(const CallKey& key, Entry entry, std::uint64_t restored_sequence) {
    if (restored_sequence != 0 && restored_sequence < next_sequence(key))
        throw std::invalid_argument("call queues: restored sequence " + std::to_string(restored_sequence) +
                                    " below the call's next " + std::to_string(next_sequence(key)));
    bool inserted = false;
    Call& call = activate(key, inserted);
    if (restored_sequence != 0) call.next_sequence = restored_sequence;
    entry.sequence = call.next_sequence++;
    queued_bytes_ += held_bytes(entry);
    if (entry.event) resident_bytes_ += entry.cost;
    else ++parked_;
    const std::uint64_t sequence = entry.sequence;
    call.events.push_back(std::move(entry));
    ++queued_;
    if (inserted) {
        add_head(call);
        call.state = Call::State::ready;
        ready_.push_back(&call);
    }
    return sequence;
}

// Reads a parked entry back; false when the loader could not (it reported the event).
bool CallQueues::load(Call& call, Entry& entry) {
    if (entry.event) return true;
    auto loaded = loader_ ? loader_->load(call.key, entry.sequence, entry.place()) : std::nullopt;
    if (!loaded) return false;
    hold_loaded(entry, std::move(*loaded));
    return true;
}

void CallQueues::hold_loaded(Entry& entry, Event&& loaded) {
    loaded.accepted_at = entry.accepted_at;  // the queue's clock, not the record's wall time
    queued_bytes_ -= parked_event_bytes;
    --parked_;
    entry.cost = static_cast<std::uint32_t>(event_cost(loaded));
    entry.event = std::make_unique<Event>(std::move(loaded));
    queued_bytes_ += entry.cost;
    resident_bytes_ += entry.cost;
}

void CallQueues::loads_ready() {
    for (Call* call : loading_) {
        call->state = Call::State::ready;
        ready_.push_back(call);
    }
    loading_.clear();
}

std::optional<CallQueues::Job> CallQueues::take(TimePoint now) {
    // Due retries go before new work, earliest due first.
    std::size_t promoted = 0;
    while (!delayed_.empty() && delayed_.top().due <= now) {
        Call* call = delayed_.top().call;
        call->state = Call::State::ready;
        ready_.insert(ready_.begin() + static_cast<std::ptrdiff_t>(promoted++), call);
        delayed_.pop();
    }
    while (!ready_.empty()) {
        Call* call = ready_.front();
        Entry& head = call->events.front();
        if (!head.event) {
            Event loaded;
            const auto status = loader_ ? loader_->try_load(call->key, head.sequence, head.place(), loaded)
                                        : EventLoader::Status::unreadable;
            if (status == EventLoader::Status::reading) {  // waits aside until loads_ready()
                ready_.pop_front();
                call->state = Call::State::loading;
                loading_.push_back(call);
                continue;
            }
            if (status == EventLoader::Status::unreadable) {  // reported: dropped, the call moves on
                ready_.pop_front();
                pop_head(*call);
                move_on(*call, now);
                continue;
            }
            hold_loaded(head, std::move(loaded));
        }
        ready_.pop_front();
        call->state = Call::State::in_flight;
        ++in_flight_;
        return Job{call, head.event.get(), head.sequence, call->attempt};
    }
    return std::nullopt;
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
    Call& call = *job.call;
    if (call.events.front().event->type == "call_ended") call.ended = true;
    pop_head(call);
    move_on(call, now);
}

// The call's head is gone: its next event becomes ready, or the call is freed or goes idle.
void CallQueues::move_on(Call& call, TimePoint now) {
    call.attempt = 1;
    if (!call.events.empty()) {
        add_head(call);
        call.state = Call::State::ready;
        ready_.push_back(&call);
    } else if (call.ended) {
        active_.erase(call.key);
    } else {
        make_idle(call, now);
    }
}

std::optional<CallQueues::TimePoint> CallQueues::next_due() const {
    if (delayed_.empty()) return std::nullopt;
    return delayed_.top().due;
}

std::size_t CallQueues::expire_idle(TimePoint now, Clock::duration idle) {
    std::size_t expired = 0;
    while (idle_oldest_ && now - idle_oldest_->last_activity >= idle) {
        IdleCall& oldest = *idle_oldest_;
        const CallKey key = *oldest.key;
        unlink(oldest);
        idle_.erase(key);
        ++expired;
    }
    return expired;
}

std::vector<CallQueues::Pending> CallQueues::drain() {
    std::vector<Pending> pending;
    ready_.clear();
    loading_.clear();
    while (!delayed_.empty()) delayed_.pop();
    heads_.clear();
    std::size_t kept_bytes = 0;
    for (auto position = active_.begin(); position != active_.end();) {
        Call& call = position->second;
        // An event in flight is not taken: its attempt still decides its fate.
        const bool keep_head = call.state == Call::State::in_flight;
        int attempts_made = keep_head ? 0 : call.attempt - 1;
        for (std::size_t i = keep_head ? 1 : 0; i < call.events.size(); ++i) {
            Entry& entry = call.events[i];
            // Parked ones are read back; one that cannot be was reported by the loader.
            if (load(call, entry)) pending.push_back(Pending{std::move(*entry.event), entry.sequence, attempts_made});
            attempts_made = 0;
        }
        call.events.erase(call.events.begin() + (keep_head ? 1 : 0), call.events.end());
        if (keep_head) {
            add_head(call);
            kept_bytes += call.events.front().cost;
            ++position;
        } else {
            position = active_.erase(position);
        }
    }
    queued_bytes_ = resident_bytes_ = kept_bytes;  // the heads in flight, which are whole
    parked_ = 0;
    idle_.clear();
    idle_oldest_ = idle_newest_ = nullptr;
    queued_ = in_flight_;  // only the heads being attempted remain
    return pending;
}

std::vector<CallQueues::InFlight> CallQueues::in_flight_events() const {
    std::vector<InFlight> events;
    for (const auto& [key, call] : active_)
        if (call.state == Call::State::in_flight) events.push_back({call.events.front().event.get(), call.attempt});
    return events;
}

std::optional<CallQueues::TimePoint> CallQueues::oldest_accepted() const {
    if (heads_.empty()) return std::nullopt;
    return heads_.begin()->first;
}

void CallQueues::pop_head(Call& call) {
    const Entry& head = call.events.front();
    heads_.erase(Head{head.accepted_at, &call});
    queued_bytes_ -= held_bytes(head);
    if (head.event) resident_bytes_ -= head.cost;
    else --parked_;
    --queued_;
    call.events.pop_front();
}

void CallQueues::add_head(const Call& call) { heads_.insert(Head{call.events.front().accepted_at, &call}); }

// The call's FIFO is empty: it shrinks to an IdleCall at the newest end of the activity list.
void CallQueues::make_idle(Call& call, TimePoint now) {
    const CallKey key = call.key;
    const std::uint64_t next_sequence = call.next_sequence;
    active_.erase(key);
    auto [position, inserted] = idle_.try_emplace(key);
    assert(inserted);
    IdleCall& idle = position->second;
    idle.next_sequence = next_sequence;
    idle.last_activity = now;
    idle.key = &position->first;
    idle.older = idle_newest_;
    idle.newer = nullptr;
    if (idle_newest_) idle_newest_->newer = &idle;
    idle_newest_ = &idle;
    if (!idle_oldest_) idle_oldest_ = &idle;
}

void CallQueues::unlink(IdleCall& idle) {
    if (idle.older) idle.older->newer = idle.newer;
    else idle_oldest_ = idle.newer;
    if (idle.newer) idle.newer->older = idle.older;
    else idle_newest_ = idle.older;
    idle.older = idle.newer = nullptr;
}

}  // namespace avr_webhookd
