#pragma once

#include <avr_webhookd/common/event.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <string>

namespace avr_webhookd {

// The one narrow interface through which intake hands accepted events to delivery.
class EventSink {
public:
    enum class Admission {
        queued,         // taken for delivery
        filtered,       // valid, but its type is not forwarded (setting `types`)
        dead_lettered,  // the queue was full (queue_full = reject): written to the dead-letter file
        full,           // the queue is full and there is no dead-letter file: not taken
        shutting_down,  // arrived after the shutdown budget was spent: dead-lettered
        not_stored,     // the spool could not store it (disk full, I/O error): not taken
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

    virtual ~EventSink() = default;
    virtual Receipt submit(Event&& event) = 0;
    // With queue_full = block: intake waits here before each line while has_room() is false.
    virtual bool has_room() const = 0;
    virtual boost::asio::awaitable<void> wait_for_room() = 0;
};

}  // namespace avr_webhookd
