#pragma once

#include <avr_webhookd/intake/event_sink.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

// Why the sink did not take an event, in the words every intake answers with: `reason` is the
// metrics label and the error class, `message` what the producer is told.
struct Refusal {
    std::string_view reason;
    std::string message;
};

// nullopt when the event was taken (queued, or filtered by `types`).
std::optional<Refusal> refusal_of(const EventSink::Receipt& receipt);

}  // namespace avr_webhookd
