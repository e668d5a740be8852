#pragma once

#include <avr_webhookd/common/event.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <string>

namespace avr_webhookd {

// The one narrow interface through which intake hands accepted events to delivery.
class EventSink {
public:
    enum class Admission {
        queued,               // taken for delivery
        filtered,             // valid, but its type is not forwarded (setting `types`)
        dead_lettered,        // the queue was full (queue_full = reject): written to the dead-letter file
        full,                 // the queue is full and there is no dead-letter file: not taken
        shutting_down,        // arrived after the shutdown budget was spent: dead-lettered
        not_stored,           // the spool could not store it (disk full, I/O error): not taken
        unknown_destination,  // its "destination" names no configured destination: not taken
        staged,               // in a batch: taken or refused with the batch, as end_batch() says
    };

    struct Receipt {
        Receipt(Admission a, std::uint64_t t = 0, std::string why = {})  // NOLINT: an Admission is a Receipt
            : admission(a), ticket(t), detail(std::move(why)) {}
        Admission admission;
        // With the crash-safe spool (spool_sync = always): acknowledge the event only once
        // durable_through() reached this ticket; 0 = at once.
        std::uint64_t ticket = 0;
        std::string detail;  // for not_stored: why, for the producer
        bool operator==(Admission other) const { return admission == other; }
    };

    // The receiver's answer to an event of a respond type (respond_types), for its producer.
    struct Answer {
        int status = 0;     // the final HTTP status; 0 when no response ended the event
        std::string body;   // the response's body (at most 64 KiB)
        std::string error;  // without a status: why no answer will come (given up, not forwarded)
    };
    // Called at most once, on the event loop, when the event's delivery has an outcome: a final
    // response (delivered or given up) or a give-up without one. Not called when the event is
    // refused (the Receipt says so) or left in the spool at a stop.
    using AnswerHandler = std::function<void(Answer)>;

    virtual ~EventSink() = default;
    virtual Receipt submit(Event&& event) = 0;
    // The same, for an event whose producer waits for the receiver's answer. A sink that cannot
    // answer never calls on_answer; the intake's respond_timeout covers that.
    virtual Receipt submit_for_answer(Event&& event, AnswerHandler on_answer) {
        (void)on_answer;
        return submit(std::move(event));
    }
    // Group writes: between begin_batch() and end_batch() (called on the loop with no wait in
    // between) submit() may answer `staged` for an event the spool must store: it is then written
    // with the batch's others at end_batch(), and queued (end_batch() says queued, with the ticket
    // that acknowledges them all) or refused (not_stored, with why) together. Every other answer
    // is final at once. submit_for_answer() is never called inside a batch.
    virtual void begin_batch() {}
    virtual Receipt end_batch() { return Receipt(Admission::queued); }
    // With queue_full = block: intake waits here before each line while has_room() is false.
    virtual bool has_room() const = 0;
    virtual boost::asio::awaitable<void> wait_for_room() = 0;
};

}  // namespace avr_webhookd
