#pragma once

#include <avr_webhookd/common/event.hpp>
#include <avr_webhookd/common/uuid.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>

namespace avr_webhookd {

// A call uuid as its 16 bytes: the key of every per-call map (a std::string key would cost a
// heap block per call for 36 characters).
using CallKey = UuidBytes;

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
// queue's thread when the event is about to be handed out for its first attempt (try_load, which
// does not wait for the disk) or drained (load).
class EventLoader {
public:
    enum class Status {
        loaded,      // `event` holds it
        reading,     // being read off the queue's thread: the loader's owner calls
                     // CallQueues::loads_ready() once it is in, and the queue asks again
        unreadable,  // it cannot be read back (the loader reported it)
    };

    virtual ~EventLoader() = default;
    // The whole event as it was pushed (id, uuid, type, body, accepted_wall, spool_record), or
    // nullopt when it cannot be read back. A loader that returns nullopt has already reported
    // the event (logged, counted); the queue then drops it and moves the call on. May wait for
    // the disk.
    virtual std::optional<Event> load(const CallKey& call, std::uint64_t sequence, const SpoolPlace& place) = 0;
    // The same without waiting for the disk; by default load().
    virtual Status try_load(const CallKey& call, std::uint64_t sequence, const SpoolPlace& place, Event& event) {
        auto loaded = load(call, sequence, place);
        if (!loaded) return Status::unreadable;
        event = std::move(*loaded);
        return Status::loaded;
    }
};

}  // namespace avr_webhookd
