#pragma once

#include <avr_webhookd/common/event.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>

namespace avr_webhookd {

// A call uuid as its 16 bytes: the key of every per-call map (a std::string key would cost a
// heap block per call for 36 characters).
using CallKey = std::array<std::uint8_t, 16>;

// Where an event's record lies in the crash-safe spool: what CallQueues keeps of an event it
// parked (its strings freed) so that it can be read back when it is about to be attempted. The
// queue does not interpret it; the spool side does (a spool::Locator plus the record id).
struct SpoolPlace {
    std::uint64_t record_id = 0;
    std::uint64_t segment = 0;
    std::uint64_t offset = 0;
    std::uint32_t length = 0;  // of the whole record; 0: not in a spool (never parked)
};

// Reads a parked event back (the spool side implements it; tests use a fake). Called on the
// queue's thread when the event is handed out for its first attempt or drained.
class EventLoader {
public:
    virtual ~EventLoader() = default;
    // The whole event as it was pushed (id, uuid, type, body, accepted_wall, spool_record), or
    // nullopt when it cannot be read back. A loader that returns nullopt has already reported
    // the event (logged, counted); the queue then drops it and moves the call on.
    virtual std::optional<Event> load(const CallKey& call, std::uint64_t sequence, const SpoolPlace& place) = 0;
};

}  // namespace avr_webhookd
