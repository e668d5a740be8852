#include <avr_webhookd/delivery/deliverer.hpp>

#include <avr_webhookd/delivery/failure_report.hpp>
#include <avr_webhookd/delivery/spool_loader.hpp>
#include <avr_webhookd/spool/spool_error.hpp>

#include <algorithm>
#include <cctype>
#include <stdexcept>

// The Deliverer's side of the crash-safe spool: storing before queueing, forgetting after
// delivery, restoring at start and leaving events in the spool at a stop.
namespace avr_webhookd {

using Clock = std::chrono::steady_clock;

// Stored in the spool (written at once, or with its batch) before it is queued, with the
// sequence number the queue is about to give it, so that numbering continues after a restart.
EventSink::Receipt Deliverer::store_and_queue(Event&& event) {
    const auto key = call_key(event.uuid);
    if (!key) throw std::invalid_argument("delivery: not a canonical call uuid: " + event.uuid);
    const auto sequence = staged_sequence(*key);
    const auto stored =
        batching_ ? spool_->append(event, sequence, spool_name_) : spool_->store(event, sequence, spool_name_);
    if (stored.error == spool::SpoolErrc::spool_full) return refuse_full(event);
    if (stored.error) return Receipt(Admission::not_stored, 0, not_stored_detail(stored.error));
    event.spool_record = stored.record_id;
    const auto place = SpoolEventLoader::place_of(stored.record_id, stored.locator);
    if (batching_) {
        const auto cost = CallQueues::event_cost(event);
        staged_.push_back(Staged{std::move(event), sequence, place, cost});
        core_.stage(cost);
        staged_numbers_.set(*key, sequence);
        return Admission::staged;
    }
    queue_stored(std::move(event), sequence, place);
    return Receipt(Admission::queued, stored.ticket);
}

std::string Deliverer::not_stored_detail(std::error_code error) {
    return "the spool could not store the event (" + error.message() + "): it was not accepted; send it again later";
}

void Deliverer::queue_stored(Event&& event, std::uint64_t sequence, const SpoolPlace& place) {
    core_.queues().push(std::move(event), Clock::now(), sequence, place);
    if (config_.queue_full == QueueFullPolicy::block && !has_room()) note_queue_full();
    work_signal_.notify_all();
}

// A call's next number counts its events staged before this one (none outside a batch).
std::uint64_t Deliverer::staged_sequence(const CallKey& key) const {
    const auto last = staged_numbers_.last(key);
    return last ? *last + 1 : core_.queues().next_sequence(key);
}

// In staging order, which is each call's order: the sequence numbers staged_sequence() gave. The
// batch is over whatever happens here: should queueing throw (bad_alloc), the events not queued
// stay in the spool, delivered after a restart.
void Deliverer::commit_batch(bool written) {
    batching_ = false;
    staged_numbers_.clear();
    std::vector<Staged> staged;
    staged.swap(staged_);
    for (const auto& event : staged) core_.unstage(event.cost);
    if (written)
        for (auto& event : staged) queue_stored(std::move(event.event), event.sequence, event.place);
    staged.clear();
    staged_.swap(staged);  // its capacity, for the next batch
}

// With a spool, events behind others are parked (kept as their spool place) and read back when
// they are about to be attempted, so a backlog costs little memory.
void Deliverer::configure_parking() {
    if (!spool_loader_)
        spool_loader_ = std::make_unique<SpoolEventLoader>(*spool_, logger_, metrics_, [this] {
            core_.queues().loads_ready();
            work_signal_.notify_all();
        });
    core_.queues().set_loader(spool_loader_.get(), SpoolEventLoader::resident_budget(config_));
}

void Deliverer::forget_in_spool(const Event& event) {
    if (spool_ && event.spool_record != 0) spool_->done(event.spool_record);
}

// Events come back in log order, which is each call's order, parked: no body is read until an
// event is about to be attempted (the recovery scan verified every record's checksum). Numbering
// goes on after the highest sequence each call had, also for calls whose events were all done.
// (A Deliverer alone takes every record; Destinations splits them by destination.)
// The records are popped as they are queued, so that a large backlog is not held twice.
void Deliverer::restore_from_spool() {
    if (!spool_) return;
    auto& recovery = spool_->recovered();
    const auto restored = recovery.events.size();
    for (; !recovery.events.empty(); recovery.events.pop_front()) restore(recovery.events.front());
    for (const auto& [call, last] : recovery.last_sequence) continue_numbering(call, last);
    spool_->release_recovered();
    if (restored > 0) logger_.info("spool: " + std::to_string(restored) + " events queued again for delivery");
}

void Deliverer::restore(const spool::RecoveredEvent& record) {
    if (!record.canonical_call) {
        give_up_record(record, "invalid_record", name_, "the spool record's call uuid is not canonical");
        return;
    }
    const CallKey& key = record.call;
    auto& queues = core_.queues();
    const auto now = Clock::now();
    const auto accepted_wall = std::chrono::system_clock::time_point(std::chrono::milliseconds(record.accepted_ms));
    const auto age =
        std::max(std::chrono::system_clock::now() - accepted_wall, std::chrono::system_clock::duration::zero());
    // A sequence below one already given (a record written twice after a failed write) gets
    // a fresh number rather than breaking the call's order.
    const bool in_order = record.sequence >= queues.next_sequence(key);
    queues.push_parked(key, SpoolEventLoader::place_of(record.record_id, record.locator),
                       SpoolEventLoader::estimated_cost(record.locator),
                       now - std::chrono::duration_cast<Clock::duration>(age), in_order ? record.sequence : 0);
}

void Deliverer::continue_numbering(std::string_view call, std::uint64_t last) {
    if (const auto key = call_key(call)) core_.queues().continue_numbering(*key, last, Clock::now());
}

void Deliverer::append_numbering(spool::Spool::Numbering& numbering) const {
    core_.queues().for_each_numbering([&](const CallKey& key, std::uint64_t last) {
        if (last > 0) numbering.emplace_back(spool::numbering_key(spool_name_, uuid_text(key)), last);
    });
}

// A record that cannot be queued (its call uuid is not canonical, or its destination is gone) is
// given up, so that its body is kept in the dead-letter file (or the log).
void Deliverer::give_up_record(const spool::RecoveredEvent& record, std::string_view reason,
                               std::string_view destination, std::string_view message) {
    spool::StoredEvent stored;
    Event event;
    if (const auto error = spool_->read_event(record.locator, stored, event.body)) {
        ++metrics_.spool_unreadable_events;
        logger_.error("spool: record " + std::to_string(record.record_id) + " in segment " +
                      std::to_string(record.locator.segment) + " at byte " + std::to_string(record.locator.offset) +
                      " cannot be read (" + error.message() + "); the event is lost");
        spool_->done(record.record_id);
        return;
    }
    event.id = std::move(stored.event_id);
    event.uuid = std::move(stored.call);
    event.type = std::move(stored.type);
    event.spool_record = record.record_id;
    event.accepted_wall = std::chrono::system_clock::time_point(std::chrono::milliseconds(record.accepted_ms));
    auto code = std::string(reason);
    std::transform(code.begin(), code.end(), code.begin(), [](unsigned char c) { return std::toupper(c); });
    event.destination = destination;  // the dead-letter line names the destination it was for
    // Not a delivery failure: the destination's health is not touched.
    const auto outcome = not_attempted(std::move(code), std::string(message));
    if (destination != name_)
        logger_.error("spool: event " + event.id + " of call " + event.uuid + " was stored for destination " +
                      std::string(destination) + " (" + std::string(message) + "); it is dead-lettered:");
    logger_.block(LogLevel::error, failure_block(event.type, outcome, log_url_));
    dead_letter(event, reason, outcome, 0);
}

// With a spool nothing new starts at a stop, and every event not delivered within its budget
// stays in the spool for the next start.
void Deliverer::leave_in_spool() {
    if (const auto left = core_.queues().queued())
        logger_.warn("shutdown: " + std::to_string(left) + " undelivered events stay in the spool " +
                     spool_->path().string() + " and are delivered after the next start");
}

}  // namespace avr_webhookd
