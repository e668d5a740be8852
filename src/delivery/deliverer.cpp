#include <avr_webhookd/delivery/deliverer.hpp>
#include <avr_webhookd/common/rethrow.hpp>

#include <avr_webhookd/delivery/failure_report.hpp>
#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/common/url.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <stdexcept>

namespace avr_webhookd {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

namespace {

Url parse_url_or_throw(const std::string& text) {
    std::string error;
    auto url = parse_url(text, &error);
    if (!url) throw std::runtime_error("invalid setting url: " + error);
    return *url;
}

RetrySettings retry_settings(const Config& config) {
    return RetrySettings{config.retry, config.retry_base, config.retry_max_delay, config.max_age};
}

std::string format_delay(std::chrono::milliseconds delay) {
    if (delay < std::chrono::seconds(10)) return std::to_string(delay.count()) + "ms";
    return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(delay).count()) + "s";
}


// A dead-letter line whose write failed is written again this often while the spool keeps its
// event, up to this many lines.
constexpr std::chrono::seconds dead_letter_retry_period{5};
constexpr std::size_t max_dead_letter_retries = 10000;

// How long a stop waits for the dead-letter thread to sync what it was given.
constexpr std::chrono::seconds dead_letter_flush_budget{30};

std::string describe(const Event& event) { return event.type + " event " + event.id + " of call " + event.uuid; }

}  // namespace

// The outcome recorded for an event that was given up without (another) attempt.
AttemptOutcome Deliverer::not_attempted(std::string code, std::string message) {
    AttemptOutcome outcome;
    outcome.code = std::move(code);
    outcome.message = std::move(message);
    return outcome;
}

std::string url_for_log(std::string_view url) { return redact_url(url); }

HttpClientOptions Deliverer::client_options(const Config& config) {
    HttpClientOptions options;
    options.url = parse_url_or_throw(config.url);
    options.timeout = config.timeout;
    options.tls_verify = config.tls_verify;
    options.ca_file = config.ca_file;
    options.max_idle_connections = config.concurrency;
    return options;
}

Deliverer::Deliverer(asio::io_context& io, const Config& config, Logger& logger, Metrics& metrics, spool::Spool* spool)
    : io_(io),
      config_(config),
      logger_(logger),
      metrics_(metrics),
      log_url_(url_for_log(config.url)),
      policy_(retry_settings(config)),
      signer_(config.signature, config.secret),
      client_(io.get_executor(), client_options(config), logger),
      dead_letters_(io.get_executor(), config.dead_letter, config.dead_letter_max_bytes),
      forwarded_types_(config.types.begin(), config.types.end()),
      random_(std::random_device{}()),
      work_signal_(io.get_executor()),
      room_signal_(io.get_executor()),
      idle_signal_(io.get_executor()),
      written_signal_(io.get_executor()),
      spool_(spool) {
    if (spool_) {
        configure_parking();
        spool_->on_room([this] { after_change(); });
        spool_->on_checkpoint([this] {
            spool::Spool::Numbering numbering;
            queues_.for_each_numbering([&](const CallKey& key, std::uint64_t last) {
                if (last > 0) numbering.emplace_back(uuid_text(key), last);
            });
            return numbering;
        });
    }
}

Deliverer::~Deliverer() {
    dead_letters_.finish(dead_letter_flush_budget);
    if (batch_written_ > 0)
        logger_.warn("shutdown: " + std::to_string(batch_written_) + " events written to " + dead_letters_.path());
}

void Deliverer::start() {
    asio::co_spawn(io_, schedule(), detail::rethrow_exceptions);
    asio::co_spawn(io_, expire_idle_calls(), detail::rethrow_exceptions);
}

EventSink::Receipt Deliverer::submit(Event&& event) {
    if (!forwarded_types_.empty() && !forwarded_types_.contains(event.type)) {
        ++metrics_.events_filtered;
        logger_.debug("delivery: " + describe(event) + " not forwarded: its type is not in `types`");
        return Admission::filtered;
    }
    if (finished() && spool_) return store_and_queue(std::move(event));  // kept for the next start
    if (finished()) {  // too late to deliver, and its call's queue is already written out
        give_up(event, "shutdown", not_attempted("SHUTDOWN", "the event arrived while the daemon was shutting down"),
                0);
        return Admission::shutting_down;
    }
    const auto cost = CallQueues::event_cost(event);
    // With queue_full = block intake only reads a line when has_room(), which leaves room for the
    // largest possible event; a line from before a max_line reload may overshoot by itself.
    if (!(config_.queue_full == QueueFullPolicy::block && has_room()) && !fits(cost)) return refuse_full(event);
    if (spool_) return store_and_queue(std::move(event));
    queues_.push(std::move(event), Clock::now());
    if (config_.queue_full == QueueFullPolicy::block && !has_room()) note_queue_full();
    work_signal_.notify_all();
    return Admission::queued;
}

// The queue (or the spool) is full: the event is dead-lettered as queue_full; with no file the
// log keeps the whole event.
EventSink::Receipt Deliverer::refuse_full(const Event& event) {
    note_queue_full();
    dead_letter(event, "queue_full",
                not_attempted("QUEUE_FULL",
                              "queue full (max_queue=" + std::to_string(config_.max_queue) +
                                  ", max_queue_bytes=" + std::to_string(config_.max_queue_bytes) +
                                  (spool_ ? ", spool_max_bytes=" + std::to_string(config_.spool_max_bytes) : "") + ")"),
                0);
    // A full dead-letter file only logs the event: the producer must not hear it was filed.
    return dead_letters_.enabled() && !dead_letters_.full() ? Admission::dead_lettered : Admission::full;
}

// Whether an event of `cost` bytes may be queued now. An empty queue takes any one event, so an
// event larger than max_queue_bytes is still delivered, alone.
bool Deliverer::fits(std::size_t cost) const {
    if (stopping()) return true;
    if (spool_ && !spool_->has_room(cost)) return false;
    if (queues_.queued() >= config_.max_queue) return false;
    return queues_.queued() == 0 || queues_.queued_bytes() + cost <= config_.max_queue_bytes;
}

// Room for the largest event a line can make: its body and strings come to at most twice max_line.
bool Deliverer::has_room() const { return fits(2 * config_.max_line + CallQueues::event_overhead_bytes); }

// Logged and counted once each time the queue fills up, not per held or refused line.
void Deliverer::note_queue_full() {
    if (full_limit_ != FullLimit::none) return;
    const bool by_spool = spool_ && !spool_->has_room(2 * config_.max_line + CallQueues::event_overhead_bytes);
    const bool by_events = !by_spool && queues_.queued() >= config_.max_queue;
    full_limit_ = by_spool ? FullLimit::spool : by_events ? FullLimit::events : FullLimit::bytes;
    ++metrics_.queue_full[by_spool ? "spool_bytes" : by_events ? "events" : "bytes"];
    logger_.warn("delivery: queue full (" + std::to_string(queues_.queued()) + " events, " +
                 std::to_string(queues_.queued_bytes()) + " bytes; " +
                 (by_spool    ? "spool_max_bytes=" + std::to_string(config_.spool_max_bytes)
                  : by_events ? "max_queue=" + std::to_string(config_.max_queue)
                              : "max_queue_bytes=" + std::to_string(config_.max_queue_bytes)) +
                 "): " +
                 (config_.queue_full == QueueFullPolicy::block ? "producers wait until there is room"
                                                               : "new events are dead-lettered"));
}

awaitable<void> Deliverer::wait_for_room() { co_await room_signal_.wait(); }

awaitable<void> Deliverer::schedule() {
    while (!finished()) {
        const auto now = Clock::now();
        // Once the shutdown budget is spent nothing new starts: what is queued is dead-lettered
        // (or, with a spool, stays there); with a spool nothing new starts once the stop began.
        while (may_start() && queues_.in_flight() < config_.concurrency) {
            auto job = queues_.take(now);
            if (!job) break;
            asio::co_spawn(io_, attempt(*job), detail::rethrow_exceptions);
        }
        // With every slot busy, only a finished attempt can let more work start.
        const auto due = may_start() && queues_.in_flight() < config_.concurrency ? queues_.next_due() : std::nullopt;
        if (due) co_await work_signal_.wait_until(*due);
        else co_await work_signal_.wait();
    }
}

// One event, one failure: an exception while attempting one event (a bug, bad_alloc in a
// helper) gives that event up as internal_error; its call moves on and the daemon keeps serving.
awaitable<void> Deliverer::attempt(CallQueues::Job job) {
    bool settled = false;  // finish() or retry_at() was called for the job
    std::optional<std::string> failure;
    try {
        co_await try_attempt(job, settled);
    } catch (const std::exception& error) {
        failure = error.what();
    } catch (...) {
        failure = "unknown exception";
    }
    if (failure && !settled && phase_ != Phase::aborted) fail_internally(job, *failure);
    after_change();
}

void Deliverer::fail_internally(const CallQueues::Job& job, std::string_view what) {
    const Event& event = *job.event;
    logger_.error("delivery: internal error while attempting " + describe(event) + " (attempt " +
                  std::to_string(job.attempt) + "): " + single_line(what) + "; the event is given up");
    try {
        metrics_.count_failed_attempt("internal_error");
        give_up(event, "internal_error", not_attempted("INTERNAL_ERROR", "internal error: " + std::string(what)),
                job.attempt);
    } catch (...) {  // not even that worked (memory): the log is the event's last record
        try {
            logger_.error("delivery: could not dead-letter event " + event.id + "; the event was: " + event.body);
        } catch (...) {}
    }
    queues_.finish(job, Clock::now());
}

awaitable<void> Deliverer::try_attempt(const CallQueues::Job& job, bool& settled) {
    const Event& event = *job.event;
    if (attempt_hook_) attempt_hook_(event);
    HeaderList headers;
    headers.reserve(8);
    headers.emplace_back("X-AVR-WEBHOOK-ID", event.id);
    headers.emplace_back("X-AVR-WEBHOOK-SEQUENCE", std::to_string(job.sequence));
    headers.emplace_back("X-AVR-WEBHOOK-ATTEMPT", std::to_string(job.attempt));
    if (!config_.agent_id.empty()) headers.emplace_back("X-AVR-AGENT-ID", config_.agent_id);
    const auto unix_seconds =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    signer_.headers(event.id, event.body, unix_seconds, headers);

    ++metrics_.delivery_attempts;
    const AttemptOutcome outcome = co_await client_.post(event.body, headers);
    if (phase_ == Phase::aborted) {  // abort() dead-lettered this event, or it stays in the spool
        settled = true;
        co_return;
    }

    const auto now = Clock::now();
    const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(now - event.accepted_at);
    const Decision decision =
        policy_.decide(job.attempt, outcome, age, std::uniform_real_distribution<double>(0.0, 1.0)(random_));
    // From here the job is settled in each branch; an exception after that must not settle it again.

    switch (decision.verdict) {
    case Verdict::delivered:
        ++metrics_.events_delivered;
        metrics_.observe_delivery_latency(now - event.accepted_at);
        last_given_up_ = false;
        if (logger_.enabled(LogLevel::debug))
            logger_.debug("delivery: " + describe(event) + " delivered (HTTP " + std::to_string(outcome.status) +
                          ", attempt " + std::to_string(job.attempt) + ", sequence " + std::to_string(job.sequence) +
                          ")");
        forget_in_spool(event);
        settled = true;
        queues_.finish(job, now);
        break;
    case Verdict::retry:
        metrics_.count_failed_attempt(to_string(outcome.kind));
        if (abandoning() && !spool_) {  // the budget is spent: dead-lettered now
            give_up(event, "shutdown", outcome, job.attempt);
            settled = true;
            queues_.finish(job, now);
            break;
        }
        // With a spool a stop leaves it waiting for its retry, counted among those left there.
        ++metrics_.delivery_retries;
        logger_.warn("delivery: " + describe(event) + " attempt " + std::to_string(job.attempt) +
                     " failed: " + single_line(outcome.message) + " [" + outcome.code + "]; retrying in " +
                     format_delay(decision.delay));
        settled = true;
        queues_.retry_at(job, now + decision.delay);
        break;
    case Verdict::give_up:
        metrics_.count_failed_attempt(to_string(outcome.kind));
        give_up(event, decision.reason, outcome, job.attempt);
        settled = true;
        queues_.finish(job, now);
        break;
    }
}

void Deliverer::give_up(const Event& event, std::string_view reason, const AttemptOutcome& last, int attempts,
                        bool quiet) {
    logger_.block(LogLevel::error, failure_block(event.type, last, log_url_));
    last_given_up_ = true;
    last_failure_ = std::string(reason) + ": " + single_line(last.message);
    dead_letter(event, reason, last, attempts, quiet);
}

// The line goes to the writer thread; the event counts as dead-lettered once its fate is known.
// `quiet` (a shutdown batch) leaves the per-event success line out for one summary line.
void Deliverer::dead_letter(const Event& event, std::string_view reason, const AttemptOutcome& last, int attempts,
                            bool quiet) {
    std::string line = dead_letter_line(event.id, event.body, reason, last, attempts, std::chrono::system_clock::now());
    if (!dead_letters_.enabled()) {
        ++metrics_.events_dead_lettered;
        // No file: the log is the only record left, so the whole event goes there.
        logger_.error("delivery: " + describe(event) + " given up (" + std::string(reason) +
                      "); dead_letter is off, the event was: " + line);
        forget_in_spool(event);
        return;
    }
    std::string what = describe(event) + " given up after " + std::to_string(attempts) + " attempt" +
                       (attempts == 1 ? "" : "s") + " (" + std::string(reason) + ")";
    dead_letters_.append(std::move(line), [this, what = std::move(what), quiet,
                                           record = event.spool_record](const DeadLetterWriter::Outcome& outcome) {
        on_dead_letter_outcome(outcome, what, quiet, record);
    });
}

// The spool forgets the event once its dead-letter line is synced, or once the log holds it
// because the file is full. A line that could not be written keeps the event in the spool: the
// next start tries it again.
void Deliverer::on_dead_letter_outcome(const DeadLetterWriter::Outcome& outcome, const std::string& what, bool quiet,
                                       std::uint64_t spool_record) {
    ++metrics_.events_dead_lettered;
    written_signal_.notify_all();
    if (spool_ && spool_record != 0 && outcome.result != DeadLetterWriter::Result::failed) spool_->done(spool_record);
    switch (outcome.result) {
    case DeadLetterWriter::Result::written:
        if (quiet) ++batch_written_;
        else logger_.warn("delivery: " + what + "; written to " + dead_letters_.path());
        return;
    case DeadLetterWriter::Result::overflow:
        ++metrics_.dead_letter_overflow;
        logger_.error("delivery: " + what + "; the dead-letter file " + dead_letters_.path() +
                      " is full (dead_letter_max_bytes=" + std::to_string(dead_letters_.max_bytes()) +
                      "), so this log line is its only record: " + outcome.line);
        return;
    case DeadLetterWriter::Result::failed:
        ++metrics_.dead_letter_write_failures;
        logger_.error("delivery: " + what + "; " + outcome.error + "; the event was: " + outcome.line);
        // The spool still has it: the line is written again later, and only then is it forgotten.
        if (spool_ && spool_record != 0) retry_dead_letter(outcome.line, what, spool_record);
        return;
    }
}

// Bounded: beyond max_dead_letter_retries the event stays in the spool and is tried again
// (delivered, then dead-lettered) after the next start.
void Deliverer::retry_dead_letter(const std::string& line, const std::string& what, std::uint64_t spool_record) {
    if (dead_letter_retries_.size() >= max_dead_letter_retries) return;
    dead_letter_retries_.push_back(PendingDeadLetter{line, what, spool_record});
    if (dead_letter_retries_.size() == 1) asio::co_spawn(io_, write_dead_letters_again(), detail::rethrow_exceptions);
}

awaitable<void> Deliverer::write_dead_letters_again() {
    asio::steady_timer timer(io_);
    while (!dead_letter_retries_.empty() && phase_ != Phase::aborted) {
        timer.expires_after(dead_letter_retry_period);
        co_await timer.async_wait(as_tuple(use_awaitable));
        auto retries = std::exchange(dead_letter_retries_, {});
        for (auto& item : retries)
            dead_letters_.append(std::move(item.line), [this, what = std::move(item.what), record = item.spool_record](
                                                           const DeadLetterWriter::Outcome& outcome) {
                --metrics_.events_dead_lettered;  // counted once, when it was first given up
                on_dead_letter_outcome(outcome, what, false, record);
            });
    }
}

void Deliverer::after_change() {
    work_signal_.notify_all();
    idle_signal_.notify_all();
    if (!has_room()) return;
    room_signal_.notify_all();
    if (full_limit_ != FullLimit::none) {
        full_limit_ = FullLimit::none;
        logger_.info("delivery: the queue has room again");
    }
}

awaitable<void> Deliverer::expire_idle_calls() {
    const auto period =
        std::clamp<Clock::duration>(config_.call_idle_timeout / 4, std::chrono::seconds(1), std::chrono::seconds(60));
    asio::steady_timer timer(io_);
    while (!stopping()) {
        timer.expires_after(period);
        co_await timer.async_wait(as_tuple(use_awaitable));
        if (const auto expired = queues_.expire_idle(Clock::now(), config_.call_idle_timeout))
            logger_.debug("delivery: freed " + std::to_string(expired) + " idle calls");
    }
}

awaitable<void> Deliverer::shut_down(std::chrono::milliseconds budget) {
    if (phase_ != Phase::running) co_return;
    phase_ = Phase::draining;
    room_signal_.notify_all();
    const auto deadline = Clock::now() + budget;
    if (spool_) {
        co_await leave_in_spool(deadline, budget);
        co_return;
    }
    if (queues_.queued() > 0)
        logger_.info("shutdown: delivering " + std::to_string(queues_.queued()) + " queued events for up to " +
                     format_delay(budget));
    while (queues_.queued() > 0 && Clock::now() < deadline && phase_ != Phase::aborted)
        co_await idle_signal_.wait_until(deadline);
    if (phase_ == Phase::aborted) co_return;

    // Budget spent: attempts in flight end (a failure is dead-lettered at once, no retry), and
    // only then is the rest written, so each call's events stay in order in the file.
    phase_ = Phase::abandoning;
    while (queues_.in_flight() > 0 && phase_ != Phase::aborted) co_await idle_signal_.wait();
    if (phase_ == Phase::aborted) co_return;
    auto pending = queues_.drain();
    phase_ = Phase::drained;  // stops the scheduler
    if (!pending.empty())
        logger_.warn("shutdown: " + std::to_string(pending.size()) + " events not delivered within shutdown_timeout");
    dead_letter_all(pending, not_attempted("SHUTDOWN", "the daemon stopped before the event could be delivered"));
    co_await wait_for_dead_letters();
    client_.close_idle();
    work_signal_.notify_all();
}

void Deliverer::abort() {
    if (phase_ == Phase::aborted) return;
    phase_ = Phase::aborted;
    work_signal_.notify_all();
    idle_signal_.notify_all();
    room_signal_.notify_all();
    if (spool_) {
        logger_.warn("shutdown: stopping at once; " + std::to_string(queues_.queued()) +
                     " undelivered events stay in the spool (one in flight may reach the receiver twice)");
        return;
    }
    std::vector<CallQueues::Pending> pending;
    for (const auto& [event, attempt] : queues_.in_flight_events())  // each call's head comes first
        pending.push_back(CallQueues::Pending{*event, 0, attempt});
    auto queued = queues_.drain();
    std::move(queued.begin(), queued.end(), std::back_inserter(pending));
    dead_letter_all(pending, not_attempted("SHUTDOWN",
                                           "the daemon was stopped at once (second signal); an event "
                                           "in flight may have reached the receiver too"));
}

void Deliverer::dead_letter_all(const std::vector<CallQueues::Pending>& pending, const AttemptOutcome& outcome) {
    for (const auto& item : pending) give_up(item.event, "shutdown", outcome, item.attempts_made, true);
}

// Bounded: a hung disk must not keep the daemon from stopping; ~Deliverer reports what is left.
awaitable<void> Deliverer::wait_for_dead_letters() {
    const auto deadline = Clock::now() + dead_letter_flush_budget;
    while (dead_letters_.pending() > 0 && Clock::now() < deadline) co_await written_signal_.wait_until(deadline);
    if (dead_letters_.pending() > 0)
        logger_.error("shutdown: " + std::to_string(dead_letters_.pending()) + " dead-letter lines not synced after " +
                      format_delay(dead_letter_flush_budget));
    if (batch_written_ > 0)
        logger_.warn("shutdown: " + std::to_string(batch_written_) + " events written to " + dead_letters_.path());
    batch_written_ = 0;
}

void Deliverer::reconfigure(const Config& config) {
    client_.update(client_options(config));
    policy_ = RetryPolicy(retry_settings(config));
    signer_ = Signer(config.signature, config.secret);
    forwarded_types_ = std::set<std::string, std::less<>>(config.types.begin(), config.types.end());
    log_url_ = url_for_log(config.url);
    dead_letters_.set_max_bytes(config.dead_letter_max_bytes);
    config_ = config;
    if (spool_) configure_parking();  // max_queue_bytes sets the resident budget
    after_change();
}

void Deliverer::update_gauges() {
    metrics_.in_flight = queues_.in_flight();
    metrics_.queued = queues_.queued() - queues_.in_flight();
    metrics_.queued_bytes = queues_.queued_bytes();
    metrics_.live_calls = queues_.live_calls();
    metrics_.open_connections = client_.open_connections();
    if (spool_) spool_->update_gauges();
    const auto oldest = queues_.oldest_accepted();
    metrics_.oldest_undelivered_age_seconds =
        oldest ? std::chrono::duration<double>(Clock::now() - *oldest).count() : 0.0;
}

std::optional<std::string> Deliverer::unhealthy_reason() const {
    if (spool_)
        if (auto reason = spool_->unhealthy_reason()) return reason;
    if (dead_letters_.full())
        return "the dead-letter file " + dead_letters_.path() +
               " is full (dead_letter_max_bytes=" + std::to_string(dead_letters_.max_bytes()) +
               "): given-up events are only logged";
    if (last_given_up_) return "the last event was given up (" + last_failure_ + ") and none has been delivered since";
    const auto oldest = queues_.oldest_accepted();
    const auto stuck_after =
        std::max<Clock::duration>(std::chrono::minutes(5), config_.retry_max_delay * 2 + config_.timeout);
    if (oldest && Clock::now() - *oldest > stuck_after)
        return "the oldest undelivered event has waited " +
               std::to_string(std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - *oldest).count()) + "s";
    return std::nullopt;
}

}  // namespace avr_webhookd
