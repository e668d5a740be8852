#include <avr_webhookd/delivery/spool_loader.hpp>

#include <avr_webhookd/queue/call_queues.hpp>
#include <avr_webhookd/spool/record.hpp>
#include <avr_webhookd/spool/spool_error.hpp>

#include <string>
#include <utility>

namespace avr_webhookd {

std::optional<Event> SpoolEventLoader::load(const CallKey& call, std::uint64_t sequence, const SpoolPlace& place) {
    spool::StoredEvent stored;
    std::string body;
    Event event;
    auto error = spool_.read_event(locator_of(place), stored, body);
    if (!error) error = to_event(call, place, std::move(stored), std::move(body), event);
    if (error) {
        report(call, sequence, place, error);
        return std::nullopt;
    }
    return event;
}

EventLoader::Status SpoolEventLoader::try_load(const CallKey& call, std::uint64_t sequence, const SpoolPlace& place,
                                               Event& event) {
    spool::StoredEvent stored;
    std::string body;
    std::error_code error;
    switch (spool_.try_read_event(locator_of(place), *this, stored, body, error)) {
    case spool::BlockReader::Status::reading:
        return Status::reading;
    case spool::BlockReader::Status::ready:
        error = to_event(call, place, std::move(stored), std::move(body), event);
        break;
    case spool::BlockReader::Status::failed:
        break;
    }
    if (!error) return Status::loaded;
    report(call, sequence, place, error);
    return Status::unreadable;
}

std::error_code SpoolEventLoader::to_event(const CallKey& call, const SpoolPlace& place, spool::StoredEvent&& stored,
                                           std::string&& body, Event& event) const {
    // A record that checks out but is not the one parked there would deliver another event.
    if (stored.record_id != place.record_id || call_key(stored.call) != call)
        return make_error_code(spool::SpoolErrc::corrupt_record);
    event.id = std::move(stored.event_id);
    event.uuid = std::move(stored.call);
    event.type = std::move(stored.type);
    event.body = std::move(body);
    event.spool_record = stored.record_id;
    event.accepted_wall = std::chrono::system_clock::time_point(std::chrono::milliseconds(stored.accepted_ms));
    return {};
}

void SpoolEventLoader::report(const CallKey& call, std::uint64_t sequence, const SpoolPlace& place,
                              std::error_code error) {
    ++metrics_.spool_unreadable_events;
    // The spool's own verdicts (damaged, gone) will not change; an I/O error may pass, and the
    // record read again at the next start.
    const bool lost = error.category() == spool::spool_category();
    logger_.error("spool: queued event (record " + std::to_string(place.record_id) + ", sequence " +
                  std::to_string(sequence) + " of call " + uuid_text(call) + ") cannot be read back from segment " +
                  std::to_string(place.segment) + " at byte " + std::to_string(place.offset) + " (" + error.message() +
                  "); " +
                  (lost ? "the event is lost"
                        : "it stays in the spool and is delivered after the next start; the call moves on"));
    if (lost) spool_.done(place.record_id);
}

std::size_t SpoolEventLoader::estimated_cost(const spool::Locator& at) {
    // The record holds id, call, type and body plus a fixed part; event_cost adds the timestamp
    // (inside the body here) and the overhead: near enough until the event is loaded.
    return at.length + CallQueues::event_overhead_bytes;
}

}  // namespace avr_webhookd
