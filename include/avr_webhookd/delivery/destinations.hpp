#pragma once

#include <avr_webhookd/common/signal.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/dead_letter/dead_letter.hpp>
#include <avr_webhookd/delivery/deliverer.hpp>
#include <avr_webhookd/intake/event_sink.hpp>
#include <avr_webhookd/ops/logger.hpp>
#include <avr_webhookd/ops/metrics.hpp>
#include <avr_webhookd/spool/spool.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd {

// Fan-out: one event stream to every destination whose `types` take each event. Each destination
// is a Deliverer of its own (per-call queues, sequence numbers, retries, keep-alive pool, health
// and metrics), so one that is down or slow builds its own backlog while the others deliver. They
// share the dead-letter file and the spool, where each destination's copy of an event is a record
// of its own: an event is done when every destination that took it delivered or gave up its copy.
class Destinations final : public EventSink {
public:
    // Throws std::runtime_error for start-up errors of any destination (see Deliverer).
    Destinations(boost::asio::io_context& io, const Config& config, Logger& logger, Metrics& metrics,
                 spool::Spool* spool = nullptr);
    // Completes the dead-letter lines still being written, while every destination still exists.
    ~Destinations() override;

    // To the destinations whose `types` take it (only to event.destination when that is set):
    // queued when at least one queued it (the others' refusals are dead-lettered or logged).
    Receipt submit(Event&& event) override;
    // The answer comes from respond_destination; the others get the event as a notification.
    Receipt submit_for_answer(Event&& event, AnswerHandler on_answer) override;
    // queue_full = block waits for the fullest destination: nothing is dropped for any of them.
    bool has_room() const override;
    boost::asio::awaitable<void> wait_for_room() override;
    // Group writes (see EventSink): one spool write for every destination's staged copies; the
    // copies an event's other destinations could not store are written off only once it is taken.
    void begin_batch() override;
    Receipt end_batch() override;

    // Hands each undelivered spool record to its destination; records of a destination no longer
    // configured are dead-lettered with reason destination_removed. Call before start().
    void restore_from_spool();
    void start();
    // Every destination's graceful shutdown (Deliverer::shut_down), side by side.
    boost::asio::awaitable<void> shut_down(std::chrono::milliseconds budget);
    void abort();
    // Adds, changes and removes destinations; a removed one's events are dead-lettered with
    // reason destination_removed. Throws (changing nothing) when a new destination cannot start.
    void reconfigure(const Config& config);

    void update_gauges();
    // The first unhealthy destination, named when there are several.
    std::optional<std::string> unhealthy_reason() const;

    Deliverer* find(std::string_view name) const;
    std::vector<const Deliverer*> active() const;  // the configured ones, the default first
    std::size_t size() const { return active_.size(); }
    std::size_t dead_letters_pending() const { return dead_letters_->pending(); }

private:
    std::unique_ptr<Deliverer> make(const Config& config, const Destination& destination);
    void wire_spool();
    Receipt fan_out(Event&& event, const AnswerHandler* on_answer);
    struct WriteOff {
        Deliverer* target;
        Event copy;
        std::string why;
    };
    std::vector<WriteOff> batch_write_offs_;  // inside a batch: done at its end if it is taken
    bool batching_ = false;

    boost::asio::io_context& io_;
    Config config_;
    Logger& logger_;
    Metrics& metrics_;
    spool::Spool* spool_;
    std::unique_ptr<DeadLetterWriter> dead_letters_;  // shared; outlives every Deliverer
    detail::Signal dead_letter_done_;                 // one of its lines was synced or not written
    std::vector<std::unique_ptr<Deliverer>> active_;  // the default destination first
    // Removed by a reload: kept until the daemon ends, since their last attempts may still run.
    std::vector<std::unique_ptr<Deliverer>> removed_;
    bool started_ = false;
};

}  // namespace avr_webhookd
