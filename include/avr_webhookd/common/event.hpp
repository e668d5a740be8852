#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace avr_webhookd {

// An accepted, validated event, ready to be delivered. Immutable once accepted.
struct Event {
    std::string id;         // the producer's "id", or a generated UUID; the same on every attempt
    std::string uuid;       // the call uuid in lower case (the queue key; the body keeps it as written)
    std::string type;       // event type, validated
    std::string timestamp;  // as given by the producer, or stamped at receipt
    // The exact POST body: {"uuid":...,"type":...,"timestamp":...,"payload":{...}}, compact,
    // serialized as JavaScript's JSON.stringify would print it.
    std::string body;
    std::chrono::steady_clock::time_point accepted_at{};    // for latency and max_age
    std::chrono::system_clock::time_point accepted_wall{};  // for logs and dead letters
    std::uint64_t spool_record = 0;                         // its record in the crash-safe spool; 0 when not spooled
    std::uint64_t answer_key = 0;  // nonzero: its producer waits for the receiver's answer (respond_types)
    // Only to this destination ("default" or a name): a dead-letter line replayed goes back to the
    // destination it failed for. "" = every destination whose `types` take it.
    std::string destination;
    // A dead-letter line sent again (it has "failure"): acknowledged with "ok" whatever `ack` is,
    // so `dead-letters replay` knows each line's fate, and never held for a routing answer.
    bool replayed = false;
};

}  // namespace avr_webhookd
