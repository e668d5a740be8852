#include <avr_webhookd/delivery/deliverer.hpp>

#include <avr_webhookd/spool/spool_error.hpp>

#include <stdexcept>

// The Deliverer's side of the crash-safe spool: storing before queueing, forgetting after
// delivery, restoring at start and leaving events in the spool at a stop.
namespace avr_webhookd {

using Clock = std::chrono::steady_clock;

// Stored in the spool (written at once) before it is queued, with the sequence number the queue
// is about to give it, so that numbering continues after a restart.
EventSink::Receipt Deliverer::store_and_queue(Event&& event) {
    const auto key = call_key(event.uuid);
    if (!key) throw std::invalid_argument("delivery: not a canonical call uuid: " + event.uuid);
    auto& queues = core_.queues();
    const auto sequence = queues.next_sequence(*key);
    const auto stored = spool_->store(event, sequence);
    if (stored.error == spool::SpoolErrc::spool_full) return refuse_full(event);
    if (stored.error)
        return Receipt(Admission::not_stored, 0,
                       "the spool could not store the event (" + stored.error.message() +
                           "): it was not accepted; send it again later");
    event.spool_record = stored.record_id;
    queues.push(std::move(event), Clock::now(), sequence);
    if (config_.queue_full == QueueFullPolicy::block && !has_room()) note_queue_full();
    work_signal_.notify_all();
    return Receipt(Admission::queued, stored.ticket);
}

void Deliverer::forget_in_spool(const Event& event) {
    if (spool_ && event.spool_record != 0) spool_->done(event.spool_record);
}

// Events come back in log order, which is each call's order; numbering goes on after the
// highest sequence each call had, also for calls whose events were all done.
void Deliverer::restore_from_spool() {
    if (!spool_) return;
    const auto& recovery = spool_->recovered();
    auto& queues = core_.queues();
    const auto now = Clock::now();
    const auto wall_now = std::chrono::system_clock::now();
    std::size_t restored = 0;
    for (const auto& record : recovery.events) {
        Event event;
        event.id = record.event_id;
        event.uuid = record.call;
        event.type = record.type;
        event.spool_record = record.record_id;
        event.accepted_wall = std::chrono::system_clock::time_point(std::chrono::milliseconds(record.accepted_ms));
        const auto age = std::max(wall_now - event.accepted_wall, std::chrono::system_clock::duration::zero());
        event.accepted_at = now - std::chrono::duration_cast<Clock::duration>(age);
        if (const auto error = spool_->read_body(record.locator, event.body)) {
            if (error != spool::SpoolErrc::corrupt_record)  // an I/O error: do not start without it
                throw spool::SpoolOpenError(spool::SpoolOpenError::Kind::cannot_create,
                                            "spool: the body of event " + event.id + " cannot be read (" +
                                                error.message() + "); not starting without it");
            logger_.error("spool: the body of event " + event.id + " of call " + event.uuid +
                          " is damaged (checksum mismatch); the event is lost");
            spool_->done(record.record_id);
            continue;
        }
        if (!call_key(event.uuid)) {  // cannot be queued: given up, so that its body is kept
            give_up(event, "invalid_record",
                    not_attempted("INVALID_RECORD", "the spool record's call uuid is not canonical"), 0);
            continue;
        }
        // A sequence below one already given (a record written twice after a failed write) gets
        // a fresh number rather than breaking the call's order.
        const bool in_order = record.sequence >= queues.next_sequence(*call_key(event.uuid));
        queues.push(std::move(event), now, in_order ? record.sequence : 0);
        ++restored;
    }
    for (const auto& [call, last] : recovery.last_sequence)
        if (const auto key = call_key(call)) queues.continue_numbering(*key, last, now);
    spool_->release_recovered();
    if (restored > 0) logger_.info("spool: " + std::to_string(restored) + " events queued again for delivery");
}

// With a spool nothing new starts at a stop, and every event not delivered within its budget
// stays in the spool for the next start.
void Deliverer::leave_in_spool() {
    if (const auto left = core_.queues().queued())
        logger_.warn("shutdown: " + std::to_string(left) + " undelivered events stay in the spool " +
                     spool_->path().string() + " and are delivered after the next start");
}

}  // namespace avr_webhookd
