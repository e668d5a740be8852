#include <avr_webhookd/intake/refusal.hpp>

namespace avr_webhookd {

std::optional<Refusal> refusal_of(const EventSink::Receipt& receipt) {
    switch (receipt.admission) {
    case EventSink::Admission::queued:
    case EventSink::Admission::filtered:
    case EventSink::Admission::staged:
        return std::nullopt;
    case EventSink::Admission::not_stored:
        return Refusal{"spool_write_failed", receipt.detail};
    case EventSink::Admission::dead_lettered:
        return Refusal{"queue_full", "queue full (max_queue reached): the event was written to the dead-letter file"};
    case EventSink::Admission::shutting_down:
        return Refusal{"shutting_down", "the daemon is shutting down: the event was written to the dead-letter file"};
    case EventSink::Admission::unknown_destination:
        return Refusal{"unknown_destination", receipt.detail};
    case EventSink::Admission::full:
        return Refusal{"queue_full",
                       "queue full (max_queue reached) and no dead-letter file: the event was not accepted"};
    }
    return Refusal{"internal_error", "unknown admission"};
}

}  // namespace avr_webhookd
