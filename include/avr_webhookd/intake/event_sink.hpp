#pragma once

#include <avr_webhookd/common/event.hpp>

#include <boost/asio/awaitable.hpp>

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
    };

    virtual ~EventSink() = default;
    virtual Admission submit(Event&& event) = 0;
    // With queue_full = block: intake waits here before each line while has_room() is false.
    virtual bool has_room() const = 0;
    virtual boost::asio::awaitable<void> wait_for_room() = 0;
};

}  // namespace avr_webhookd
