#pragma once

#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/ops/logger.hpp>
#include <avr_webhookd/ops/metrics.hpp>
#include <avr_webhookd/queue/event_loader.hpp>
#include <avr_webhookd/spool/spool.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>

namespace avr_webhookd {

// Reads parked events back from the crash-safe spool for CallQueues: try_load through the spool's
// BlockReader, which reads off the event loop (on_ready runs on the loop once a read the queue
// waited for has ended), load (at a drain) directly. A record that cannot be read is reported
// here, never a crash nor a silent loss: an error log naming the record, the call and its
// sequence number, and avr_webhookd_spool_unreadable_events_total. A damaged record (checksum
// mismatch) is forgotten in the spool, as a damaged record found at start is; after an I/O error
// the record stays in the spool, so the next start delivers it.
class SpoolEventLoader final : public EventLoader, private spool::BlockReader::Waiter {
public:
    SpoolEventLoader(spool::Spool& spool, Logger& logger, Metrics& metrics, std::function<void()> on_ready)
        : spool_(spool), logger_(logger), metrics_(metrics), on_ready_(std::move(on_ready)) {}
    ~SpoolEventLoader() override { spool_.forget_waiter(*this); }

    std::optional<Event> load(const CallKey& call, std::uint64_t sequence, const SpoolPlace& place) override;
    Status try_load(const CallKey& call, std::uint64_t sequence, const SpoolPlace& place, Event& event) override;

    static SpoolPlace place_of(std::uint64_t record_id, const spool::Locator& at) {
        return SpoolPlace{record_id, at.segment, at.offset, at.length};
    }
    static spool::Locator locator_of(const SpoolPlace& place) {
        return spool::Locator{place.segment, place.offset, place.length};
    }
    // Whole events (event_cost bytes) kept in the queues before new ones are parked: a burst
    // that fits is never read back, and a backlog past it costs a parked entry an event. Half of
    // max_queue_bytes at most, so that parked events always have room beside them.
    static std::size_t resident_budget(const Config& config) {
        return static_cast<std::size_t>(std::min(config.max_queue_bytes / 2, config.spool_resident_bytes));
    }
    // An event's event_cost() estimated from its record's length (before its body is read).
    static std::size_t estimated_cost(const spool::Locator& at);

private:
    void records_read() override {
        if (on_ready_) on_ready_();
    }
    // The record read back as the queue's event, or the error it is reported with.
    std::error_code to_event(const CallKey& call, const SpoolPlace& place, spool::StoredEvent&& stored,
                             std::string&& body, Event& event) const;
    void report(const CallKey& call, std::uint64_t sequence, const SpoolPlace& place, std::error_code error);

    spool::Spool& spool_;
    Logger& logger_;
    Metrics& metrics_;
    std::function<void()> on_ready_;
};

}  // namespace avr_webhookd
