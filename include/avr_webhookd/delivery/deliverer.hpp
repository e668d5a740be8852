#pragma once

#include <avr_webhookd/queue/call_queues.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/dead_letter/dead_letter.hpp>
#include <avr_webhookd/common/signal.hpp>
#include <avr_webhookd/intake/event_sink.hpp>
#include <avr_webhookd/delivery/http_client.hpp>
#include <avr_webhookd/ops/logger.hpp>
#include <avr_webhookd/ops/metrics.hpp>
#include <avr_webhookd/delivery/retry_policy.hpp>
#include <avr_webhookd/delivery/signature.hpp>
#include <avr_webhookd/spool/spool.hpp>

#include <boost/asio/io_context.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace avr_webhookd {

// The URL as logs may show it: the query string, which may carry a token, is redacted.
std::string url_for_log(std::string_view url);

// Delivery: owns the per-call queues, the retry policy, the HTTP client and the dead-letter
// file. Every accepted event ends delivered or dead-lettered (and logged); none is dropped.
class Deliverer final : public EventSink {
public:
    // Throws std::runtime_error for start-up errors (bad URL, unreadable ca_file, dead-letter
    // file not writable).
    // With a spool, every accepted event is stored there before it is queued, and removed from it
    // once delivered or durably dead-lettered; a stop leaves undelivered events in it.
    Deliverer(boost::asio::io_context& io, const Config& config, Logger& logger, Metrics& metrics,
              spool::Spool* spool = nullptr);
    // Completes the dead-letter lines still being written (after an abort() the loop has stopped).
    ~Deliverer() override;

    Receipt submit(Event&& event) override;
    bool has_room() const override;
    boost::asio::awaitable<void> wait_for_room() override;

    // Queues the undelivered events the spool held at start, in their order and with their ids
    // and sequence numbers, ahead of anything new. Call before start().
    void restore_from_spool();
    void start();

    // Graceful shutdown. Without a spool: keeps delivering until nothing is queued or `budget`
    // has passed, then dead-letters what is left (reason "shutdown") and waits for attempts in
    // flight to end. With a spool: starts nothing new, lets attempts in flight end within
    // `budget`, and leaves every undelivered event in the spool for the next start.
    boost::asio::awaitable<void> shut_down(std::chrono::milliseconds budget);
    // Immediate shutdown (second signal): without a spool dead-letters everything, in-flight
    // events included; with one, leaves it all in the spool.
    void abort();

    // Applies a reloaded configuration to the next attempts; queued events keep their order.
    void reconfigure(const Config& config);

    void update_gauges();
    // Why delivery is unhealthy, or nullopt when it is fine (for /healthz).
    std::optional<std::string> unhealthy_reason() const;

    const CallQueues& queues() const { return queues_; }
    const HttpClient& client() const { return client_; }
    std::size_t dead_letters_pending() const { return dead_letters_.pending(); }

    // Test seam: runs at the start of every attempt. An exception from it is handled like any
    // unexpected one while attempting an event: that event is given up as internal_error.
    void set_attempt_hook(std::function<void(const Event&)> hook) { attempt_hook_ = std::move(hook); }

private:
    boost::asio::awaitable<void> schedule();
    boost::asio::awaitable<void> attempt(CallQueues::Job job);
    boost::asio::awaitable<void> try_attempt(const CallQueues::Job& job, bool& settled);
    void fail_internally(const CallQueues::Job& job, std::string_view what);
    bool fits(std::size_t cost) const;
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
    boost::asio::awaitable<void> leave_in_spool(std::chrono::steady_clock::time_point deadline,
                                                std::chrono::milliseconds budget);
    boost::asio::awaitable<void> wait_for_dead_letters();
    boost::asio::awaitable<void> expire_idle_calls();
    void give_up(const Event& event, std::string_view reason, const AttemptOutcome& last, int attempts,
                 bool quiet = false);
    void dead_letter(const Event& event, std::string_view reason, const AttemptOutcome& last, int attempts,
                     bool quiet = false);
    void dead_letter_all(const std::vector<CallQueues::Pending>& pending, const AttemptOutcome& outcome);
    void after_change();
    static HttpClientOptions client_options(const Config& config);
    static AttemptOutcome not_attempted(std::string code, std::string message);

    boost::asio::io_context& io_;
    Config config_;
    Logger& logger_;
    Metrics& metrics_;
    std::string log_url_;
    RetryPolicy policy_;
    Signer signer_;
    HttpClient client_;
    DeadLetterWriter dead_letters_;
    CallQueues queues_;
    std::set<std::string, std::less<>> forwarded_types_;
    std::mt19937_64 random_;
    detail::Signal work_signal_;     // new work, a finished attempt, or shutdown
    detail::Signal room_signal_;     // the queue dropped below max_queue
    detail::Signal idle_signal_;     // an attempt ended (shutdown waits on it)
    detail::Signal written_signal_;  // a dead-letter line was synced or not written
    // running -> draining (stop asked: no room limit; with a spool nothing new starts)
    //         -> abandoning (budget spent: nothing starts; without a spool failures are dead-lettered)
    //         -> drained (queues written out or left in the spool; later events go straight there)
    // and aborted (second signal) from any phase. The scheduler runs until drained or aborted.
    enum class Phase { running, draining, abandoning, drained, aborted };
    Phase phase_ = Phase::running;
    bool stopping() const { return phase_ != Phase::running; }
    bool abandoning() const { return phase_ >= Phase::abandoning; }
    bool finished() const { return phase_ >= Phase::drained; }
    // Attempts may start: running, or (without a spool) draining.
    bool may_start() const { return phase_ == Phase::running || (phase_ == Phase::draining && !spool_); }
    void forget_in_spool(const Event& event);
    Receipt store_and_queue(Event&& event);
    void configure_parking();
    void give_up_invalid_record(const spool::RecoveredEvent& record);
    std::unique_ptr<EventLoader> spool_loader_;  // reads parked events back (with a spool)
    spool::Spool* spool_ = nullptr;
    std::size_t batch_written_ = 0;  // shutdown dead letters synced, for one summary line
    enum class FullLimit { none, events, bytes, spool } full_limit_ = FullLimit::none;  // logged once per episode
    std::function<void(const Event&)> attempt_hook_;
    // Health: the last finished event was given up while the receiver failed, nothing since.
    bool last_given_up_ = false;
    std::string last_failure_;
};

}  // namespace avr_webhookd
