#pragma once

#include <avr_webhookd/queue/call_queues.hpp>
#include <avr_webhookd/queue/staged_numbers.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/dead_letter/dead_letter.hpp>
#include <avr_webhookd/common/signal.hpp>
#include <avr_webhookd/intake/event_sink.hpp>
#include <avr_webhookd/delivery/delivery_core.hpp>
#include <avr_webhookd/delivery/transport.hpp>
#include <avr_webhookd/ops/logger.hpp>
#include <avr_webhookd/ops/metrics.hpp>
#include <avr_webhookd/delivery/signature.hpp>
#include <avr_webhookd/spool/spool.hpp>

#include <boost/asio/io_context.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace avr_webhookd {

// The URL as logs may show it: the query string, which may carry a token, is redacted.
std::string url_for_log(std::string_view url);

// Which destination a Deliverer serves, and what it shares with the others.
struct DestinationOptions {
    std::string name{default_destination_name};
    DeadLetterWriter* dead_letters = nullptr;  // the file every destination writes to; nullptr: its own
    // With a shared file: called on the loop whenever one of its lines was synced or not written
    // (the owner waits for the file at shutdown, not each Deliverer).
    std::function<void()> on_dead_letter_done;
};

// Delivery to one destination: the Asio shell around DeliveryCore (which decides admission, verdicts, retries and
// the shutdown phases) with the destination's Transport (an HTTP POST or a NATS JetStream publish),
// the dead-letter file and the spool. Every accepted
// event ends delivered or dead-lettered (and logged); none is dropped.
class Deliverer final : public EventSink {
public:
    // Throws std::runtime_error for start-up errors (bad URL, unreadable ca_file or NKey seed,
    // dead-letter file not writable).
    // With a spool, every accepted event is stored there before it is queued, and removed from it
    // once delivered or durably dead-lettered; a stop leaves undelivered events in it.
    // `config` is the destination's own (config_for); its metrics are metrics.destination(name).
    Deliverer(boost::asio::io_context& io, const Config& config, Logger& logger, Metrics& metrics,
              spool::Spool* spool = nullptr, DestinationOptions destination = {});
    // Completes the dead-letter lines still being written (after an abort() the loop has stopped).
    ~Deliverer() override;

    Receipt submit(Event&& event) override;
    Receipt submit_for_answer(Event&& event, AnswerHandler on_answer) override;
    bool has_room() const override;
    boost::asio::awaitable<void> wait_for_room() override;
    // Group writes, for Destinations' batches (EventSink::begin_batch; a Deliverer used as a sink
    // on its own stores each event at once): after open_batch(), an event the spool must store is
    // staged (its record appended, counted against the queue's limits) instead of stored and
    // queued, until Destinations has written the spool they share and calls commit_batch().
    void open_batch() { batching_ = true; }
    bool has_staged() const { return !staged_.empty(); }
    // The batch's write succeeded (queue the staged events) or failed (the spool dropped their
    // records: forget them). Ends the batch.
    void commit_batch(bool written);
    static std::string not_stored_detail(std::error_code error);

    // Queues the undelivered events the spool held at start, in their order and with their ids
    // and sequence numbers, ahead of anything new. Call before start().
    void restore_from_spool();
    // The same one record at a time, for Destinations, which splits the spool's records by
    // destination: an undelivered event, a call's numbering, or a record no destination takes
    // (given up and dead-lettered with `reason`, naming `destination`).
    void restore(const spool::RecoveredEvent& record);
    void continue_numbering(std::string_view call, std::uint64_t last);
    void give_up_record(const spool::RecoveredEvent& record, std::string_view reason, std::string_view destination,
                        std::string_view message);
    // An event the other destinations took but this one could not store (submit said
    // not_stored): written to the dead-letter file (reason spool_write_failed) or logged whole, so
    // the producer's acknowledgement holds for this destination too.
    void write_off_unstored(const Event& event, std::string_view why);
    // Each call's last sequence number for the spool's checkpoint (keys as spool::numbering_key).
    void append_numbering(spool::Spool::Numbering& numbering) const;
    void start();

    // Graceful shutdown. Without a spool: keeps delivering until nothing is queued or `budget`
    // has passed, then dead-letters what is left (reason "shutdown") and waits for attempts in
    // flight to end. With a spool: starts nothing new, lets attempts in flight end within
    // `budget`, and leaves every undelivered event in the spool for the next start.
    boost::asio::awaitable<void> shut_down(std::chrono::milliseconds budget);
    // Immediate shutdown (second signal): without a spool dead-letters everything, in-flight
    // events included; with one, leaves it all in the spool.
    void abort();
    // The destination was removed by a reload: everything queued or in flight is dead-lettered
    // with reason destination_removed (with or without a spool) and nothing new starts.
    void remove();
    // The spool deleted segments: a queue held by spool_max_bytes may have room again.
    void spool_has_room() { after_change(); }
    const std::string& name() const { return name_; }
    const std::string& url() const { return config_.url; }  // as configured: redact before showing it

    // Applies a reloaded configuration to the next attempts; queued events keep their order.
    void reconfigure(const Config& config);
    // Throws what the constructor or reconfigure() would for `config` (a bad url, a ca_file that
    // is no PEM bundle ...), changing nothing: a reload checks every destination before applying any.
    static void check_startable(const Config& config);

    void update_gauges();
    // Why delivery is unhealthy, or nullopt when it is fine (for /healthz).
    std::optional<std::string> unhealthy_reason() const;

    const CallQueues& queues() const { return core_.queues(); }
    const Transport& transport() const { return *transport_; }
    std::size_t dead_letters_pending() const { return dead_letters_.pending(); }

    // Test seam: runs at the start of every attempt. An exception from it is handled like any
    // unexpected one while attempting an event: that event is given up as internal_error.
    void set_attempt_hook(std::function<void(const Event&)> hook) { attempt_hook_ = std::move(hook); }

private:
    boost::asio::awaitable<void> schedule();
    boost::asio::awaitable<void> attempt(CallQueues::Job job);
    HeaderList request_headers(const CallQueues::Job& job);  // runs the attempt hook first
    void conclude(const CallQueues::Job& job, const AttemptOutcome& outcome, bool& settled);
    void report(const CallQueues::Job& job, const AttemptOutcome& outcome, const AttemptVerdict& verdict,
                CallQueues::TimePoint now);
    void fail_internally(const CallQueues::Job& job, std::string_view what);
    void note_queue_full();
    void on_dead_letter_outcome(const DeadLetterWriter::Outcome& outcome, const std::string& what, bool quiet,
                                std::uint64_t spool_record);
    Receipt refuse_full(const Event& event);
    void retry_dead_letter(const std::string& line, const std::string& what, std::uint64_t spool_record);
    boost::asio::awaitable<void> write_dead_letters_again();
    struct PendingDeadLetter {
        std::string line;
        std::string what;
        std::uint64_t spool_record;
    };
    std::vector<PendingDeadLetter> dead_letter_retries_;
    void log_stop(std::chrono::milliseconds budget);
    void leave_in_spool();
    boost::asio::awaitable<void> wait_for_dead_letters();
    boost::asio::awaitable<void> expire_idle_calls();
    void give_up(const Event& event, std::string_view reason, const AttemptOutcome& last, int attempts,
                 bool quiet = false);
    void dead_letter(const Event& event, std::string_view reason, const AttemptOutcome& last, int attempts,
                     bool quiet = false);
    // Gives every pending event up with `reason` (quietly: one summary line, not one per event).
    void dead_letter_all(const std::vector<CallQueues::Pending>& pending, std::string_view reason,
                         const AttemptOutcome& outcome);
    // After abort() or remove(): every waiter (scheduler, shutdown, producers waiting for room)
    // looks at the core's phase again.
    void wake_all();
    void after_change();
    // respond_types (deliverer_answers.cpp): the producer's answer once the event has an outcome,
    // and quicker retries while it still waits for one.
    void answer(const Event& event, const AttemptOutcome& outcome);
    std::chrono::milliseconds answer_retry_delay(const Event& event, const AttemptOutcome& outcome,
                                                 std::chrono::milliseconds delay,
                                                 std::chrono::steady_clock::time_point now) const;
    std::unordered_map<std::uint64_t, AnswerHandler> answers_;  // by Event::answer_key
    std::uint64_t next_answer_key_ = 1;
    static AttemptOutcome not_attempted(std::string code, std::string message);
    std::string describe(const Event& event) const;

    boost::asio::io_context& io_;
    Config config_;
    Logger& logger_;
    Metrics& metrics_;
    std::string name_;
    std::string spool_name_;  // "" for the default destination (its records are as before destinations)
    DeliveryMetrics& stats_;  // metrics_.destination(name_)
    std::string log_url_;
    Signer signer_;
    std::unique_ptr<Transport> transport_;
    // Replaced by a reload that changed the url's scheme: retired (closed), and kept only while
    // attempts still use them (attempts_on_).
    std::vector<std::unique_ptr<Transport>> retired_transports_;
    std::unordered_map<const Transport*, std::size_t> attempts_on_;  // attempts under way per transport
    struct TransportUse;
    void release_retired_transports();
    std::unique_ptr<DeadLetterWriter> own_dead_letters_;  // when not shared
    DeadLetterWriter& dead_letters_;
    std::function<void()> on_dead_letter_done_;
    spool::Spool* spool_ = nullptr;
    // The decisions: admission, verdicts, retries, the shutdown phases; this class executes them.
    DeliveryCore core_;
    std::mt19937_64 random_;
    detail::Signal work_signal_;     // new work, a finished attempt, or shutdown
    detail::Signal room_signal_;     // the queue dropped below max_queue
    detail::Signal idle_signal_;     // an attempt ended (shutdown waits on it)
    detail::Signal written_signal_;  // a dead-letter line was synced or not written
    void forget_in_spool(const Event& event);
    Receipt store_and_queue(Event&& event);
    void queue_stored(Event&& event, std::uint64_t sequence, const SpoolPlace& place);
    std::uint64_t staged_sequence(const CallKey& key) const;
    struct Staged {
        Event event;
        std::uint64_t sequence;
        SpoolPlace place;
        std::size_t cost;
    };
    std::vector<Staged> staged_;    // the open batch's events, in order
    StagedNumbers staged_numbers_;  // each call's last number among them
    bool batching_ = false;
    void configure_parking();
    std::unique_ptr<EventLoader> spool_loader_;  // reads parked events back (with a spool)
    std::size_t batch_written_ = 0;              // shutdown dead letters synced, for one summary line
    std::function<void(const Event&)> attempt_hook_;
    // Last, so it goes first: an attempt's frame destroyed after the Deliverer (the io_context's
    // shutdown destroys suspended coroutines) sees it expired and touches nothing of it.
    std::shared_ptr<int> lifetime_ = std::make_shared<int>(0);
};

}  // namespace avr_webhookd
