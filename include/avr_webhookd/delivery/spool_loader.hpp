#pragma once

#include <avr_webhookd/ops/logger.hpp>
#include <avr_webhookd/ops/metrics.hpp>
#include <avr_webhookd/queue/event_loader.hpp>
#include <avr_webhookd/spool/spool.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace avr_webhookd {

// Reads parked events back from the crash-safe spool for CallQueues. A record that cannot be
// read is reported here, never a crash nor a silent loss: an error log naming the record, the
// call and its sequence number, and avr_webhookd_spool_unreadable_events_total. A damaged record
// (checksum mismatch) is forgotten in the spool, as a damaged record found at start is; after an
// I/O error the record stays in the spool, so the next start delivers it.
class SpoolEventLoader final : public EventLoader {
public:
    SpoolEventLoader(spool::Spool& spool, Logger& logger, Metrics& metrics)
        : spool_(spool), logger_(logger), metrics_(metrics) {}

    std::optional<Event> load(const CallKey& call, std::uint64_t sequence, const SpoolPlace& place) override;

    static SpoolPlace place_of(std::uint64_t record_id, const spool::Locator& at) {
        return SpoolPlace{record_id, at.segment, at.offset, at.length};
    }
    static spool::Locator locator_of(const SpoolPlace& place) {
        return spool::Locator{place.segment, place.offset, place.length};
    }
    // Whole events (event_cost bytes) kept in the queues before new ones are parked: enough to
    // keep every call that is not backlogged in memory, small beside a backlog of parked ones.
    static std::size_t resident_budget(std::size_t max_queue_bytes) {
        return std::min<std::size_t>(max_queue_bytes / 2, 16u << 20);
    }
    // An event's event_cost() estimated from its record's length (before its body is read).
    static std::size_t estimated_cost(const spool::Locator& at);

private:
    void report(const CallKey& call, std::uint64_t sequence, const SpoolPlace& place, std::error_code error);

    spool::Spool& spool_;
    Logger& logger_;
    Metrics& metrics_;
};

}  // namespace avr_webhookd
