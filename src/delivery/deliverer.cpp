#include <avr_webhookd/delivery/deliverer.hpp>
#include <avr_webhookd/common/rethrow.hpp>

#include <avr_webhookd/delivery/failure_report.hpp>
#include <avr_webhookd/common/duration.hpp>
#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/common/url.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <stdexcept>

// The Asio shell around DeliveryCore: it runs the attempts, timers and signals, and carries out
// what the core decides (logs, metrics, dead letters, the spool).
namespace avr_webhookd {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

namespace {

std::string format_delay(std::chrono::milliseconds delay) {
    if (delay < std::chrono::seconds(10)) return std::to_string(delay.count()) + "ms";
    return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(delay).count()) + "s";
}

// How long a stop waits for the dead-letter thread to sync what it was given.
constexpr std::chrono::seconds dead_letter_flush_budget{30};

DeliveryCore::SpoolRoom spool_room(spool::Spool* spool) {
    if (!spool) return {};
    return [spool](std::size_t cost) { return spool->has_room(cost); };
}

}  // namespace

std::string Deliverer::describe(const Event& event) const {
    std::string text = event.type + " event " + event.id + " of call " + event.uuid;
    if (!spool_name_.empty()) text.append(" for destination ").append(name_);
    return text;
}

// The outcome recorded for an event that was given up without (another) attempt.
AttemptOutcome Deliverer::not_attempted(std::string code, std::string message) {
    AttemptOutcome outcome;
    outcome.code = std::move(code);
    outcome.message = std::move(message);
    return outcome;
}

std::string url_for_log(std::string_view url) { return redact_url(url); }

Deliverer::Deliverer(asio::io_context& io, const Config& config, Logger& logger, Metrics& metrics, spool::Spool* spool,
                     DestinationOptions destination)
    : io_(io),
      config_(config),
      logger_(logger),
      metrics_(metrics),
      name_(std::move(destination.name)),
      spool_name_(name_ == default_destination_name ? std::string{} : name_),
      stats_(metrics.destination(name_)),
      log_url_(url_for_log(config.url)),
      signer_(config.signature, config.secret),
      transport_(make_transport(io.get_executor(), config, logger, name_)),
      own_dead_letters_(destination.dead_letters
                            ? nullptr
                            : std::make_unique<DeadLetterWriter>(io.get_executor(), config.dead_letter,
                                                                 config.dead_letter_max_bytes)),
      dead_letters_(destination.dead_letters ? *destination.dead_letters : *own_dead_letters_),
      on_dead_letter_done_(std::move(destination.on_dead_letter_done)),
      spool_(spool),
      core_(DeliverySettings::from(config), spool_room(spool)),
      random_(std::random_device{}()),
      work_signal_(io.get_executor()),
      room_signal_(io.get_executor()),
      idle_signal_(io.get_executor()),
      written_signal_(io.get_executor()) {
    if (!spool_) return;
    configure_parking();
    // A Deliverer of a group (Destinations) leaves the spool's callbacks to the group, which
    // outlives it; one on its own takes them.
    if (!own_dead_letters_) return;
    spool_->on_room([this] { after_change(); });
    spool_->on_checkpoint([this] {
        spool::Spool::Numbering numbering;
        append_numbering(numbering);
        return numbering;
    });
}

Deliverer::~Deliverer() {
    if (own_dead_letters_) own_dead_letters_->finish(dead_letter_flush_budget);
    if (batch_written_ > 0)
        logger_.warn("shutdown: " + std::to_string(batch_written_) + " events written to " + dead_letters_.path());
}

void Deliverer::start() {
    asio::co_spawn(io_, schedule(), detail::rethrow_exceptions);
    asio::co_spawn(io_, expire_idle_calls(), detail::rethrow_exceptions);
}

EventSink::Receipt Deliverer::submit(Event&& event) {
    switch (core_.admit(event)) {
    case AdmissionVerdict::filtered:
        ++stats_.events_filtered;
        logger_.debug("delivery: " + describe(event) + " not forwarded: its type is not in `types`");
        return Admission::filtered;
    case AdmissionVerdict::too_late:  // too late to deliver, and its call's queue is already written out
        give_up(event, "shutdown", not_attempted("SHUTDOWN", "the event arrived while the daemon was shutting down"),
                0);
        return Admission::shutting_down;
    case AdmissionVerdict::full:
        return refuse_full(event);
    case AdmissionVerdict::accept:
        break;
    }
    if (spool_) return store_and_queue(std::move(event));  // after the stop: kept for the next start
    core_.push(std::move(event), Clock::now());
    if (config_.queue_full == QueueFullPolicy::block && !has_room()) note_queue_full();
    work_signal_.notify_all();
    return Admission::queued;
}

bool Deliverer::has_room() const { return core_.has_room(); }

// Logged and counted once each time the queue fills up, not per held or refused line.
void Deliverer::note_queue_full() {
    const auto limit = core_.note_full();
    if (!limit) return;
    const bool by_spool = *limit == FullLimit::spool;
    const bool by_events = *limit == FullLimit::events;
    ++stats_.queue_full[by_spool ? "spool_bytes" : by_events ? "events" : "bytes"];
    logger_.warn("delivery: queue full (" + std::to_string(core_.queues().queued()) + " events, " +
                 std::to_string(core_.queues().queued_bytes()) + " bytes; " +
                 (by_spool    ? "spool_max_bytes=" + std::to_string(config_.spool_max_bytes)
                  : by_events ? "max_queue=" + std::to_string(config_.max_queue)
                              : "max_queue_bytes=" + std::to_string(config_.max_queue_bytes)) +
                 "): " +
                 (config_.queue_full == QueueFullPolicy::block ? "producers wait until there is room"
                                                               : "new events are dead-lettered"));
}

awaitable<void> Deliverer::wait_for_room() { co_await room_signal_.wait(); }

// Starts what the core hands out and sleeps until it has more, until it says the loop is done.
awaitable<void> Deliverer::schedule() {
    for (;;) {
        const auto action = core_.next(Clock::now());
        if (const auto* start = std::get_if<core_action::StartAttempt>(&action))
            asio::co_spawn(io_, attempt(start->job), detail::rethrow_exceptions);
        else if (const auto* wake = std::get_if<core_action::WaitUntil>(&action))
            co_await work_signal_.wait_until(wake->at);
        else if (std::holds_alternative<core_action::Wait>(action)) co_await work_signal_.wait();
        else co_return;  // finished: drained or aborted
    }
}

// Counts an attempt on its transport, so that a retired one is released when its last attempt ends.
struct Deliverer::TransportUse {
    Deliverer& deliverer;
    const Transport* transport;
    std::weak_ptr<int> alive;  // the Deliverer's lifetime_
    TransportUse(Deliverer& owner, const Transport& used) : deliverer(owner), transport(&used), alive(owner.lifetime_) {
        ++deliverer.attempts_on_[transport];
    }
    ~TransportUse() {
        if (alive.expired()) return;  // destroyed with the io_context after the Deliverer
        if (const auto found = deliverer.attempts_on_.find(transport); found != deliverer.attempts_on_.end())
            if (--found->second == 0) deliverer.attempts_on_.erase(found);
        deliverer.release_retired_transports();
    }
    TransportUse(const TransportUse&) = delete;
    TransportUse& operator=(const TransportUse&) = delete;
};

void Deliverer::release_retired_transports() {
    std::erase_if(retired_transports_,
                  [this](const auto& transport) { return !attempts_on_.contains(transport.get()); });
}

// One event, one failure: an exception while attempting one event (a bug, bad_alloc in a
// helper) gives that event up as internal_error; its call moves on and the daemon keeps serving.
awaitable<void> Deliverer::attempt(CallQueues::Job job) {
    bool settled = false;  // the core settled the job (or abort() dealt with it)
    std::optional<std::string> failure;
    try {  // one coroutine frame per attempt: the steps around the request are plain functions
        const HeaderList headers = request_headers(job);
        ++stats_.delivery_attempts;
        AttemptOutcome outcome;
        {
            Transport& current = *transport_;  // a reload may retire it meanwhile
            const TransportUse use(*this, current);
            outcome = co_await current.send(*job.event, headers);
        }
        conclude(job, outcome, settled);
    } catch (const std::exception& error) {
        failure = error.what();
    } catch (...) {
        failure = "unknown exception";
    }
    if (failure && !settled && core_.phase() != DeliveryCore::Phase::aborted) fail_internally(job, *failure);
    after_change();
}

void Deliverer::fail_internally(const CallQueues::Job& job, std::string_view what) {
    const Event& event = *job.event;
    logger_.error("delivery: internal error while attempting " + describe(event) + " (attempt " +
                  std::to_string(job.attempt) + "): " + single_line(what) + "; the event is given up");
    try {
        stats_.count_failed_attempt("internal_error");
        give_up(event, "internal_error", not_attempted("INTERNAL_ERROR", "internal error: " + std::string(what)),
                job.attempt);
    } catch (...) {  // not even that worked (memory): the log is the event's last record
        try {
            logger_.error("delivery: could not dead-letter event " + event.id + "; the event was: " + event.body);
        } catch (...) {}
    }
    core_.settle(job, AttemptVerdict{AttemptVerdict::Kind::give_up, {}, "internal_error"}, Clock::now());
}

HeaderList Deliverer::request_headers(const CallQueues::Job& job) {
    const Event& event = *job.event;
    if (attempt_hook_) attempt_hook_(event);
    HeaderList headers;  // in the attempt's coroutine frame: no heap allocation for the usual headers
    headers.add("X-AVR-WEBHOOK-ID", event.id);
    headers.add("X-AVR-WEBHOOK-SEQUENCE", job.sequence);
    headers.add("X-AVR-WEBHOOK-ATTEMPT", static_cast<std::uint64_t>(job.attempt));
    if (!config_.agent_id.empty()) headers.add("X-AVR-AGENT-ID", config_.agent_id);
    const auto unix_seconds =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    signer_.headers(event.id, event.body, unix_seconds, headers);
    return headers;
}

// The core's verdict on the attempt, carried out.
void Deliverer::conclude(const CallQueues::Job& job, const AttemptOutcome& outcome, bool& settled) {
    const auto now = Clock::now();
    auto verdict = core_.decide(job, outcome, now, std::uniform_real_distribution<double>(0.0, 1.0)(random_));
    if (verdict.kind == AttemptVerdict::Kind::retry)  // sooner while a producer waits for the answer
        verdict.delay = answer_retry_delay(*job.event, outcome, verdict.delay, now);
    report(job, outcome, verdict, now);  // the event is valid until settle()
    // From here the job is settled; an exception after that must not settle it again.
    settled = true;
    core_.settle(job, verdict, now);
}

// Carries out a verdict: metrics, the log, the spool and the dead-letter file.
void Deliverer::report(const CallQueues::Job& job, const AttemptOutcome& outcome, const AttemptVerdict& verdict,
                       Clock::time_point now) {
    const Event& event = *job.event;
    switch (verdict.kind) {
    case AttemptVerdict::Kind::delivered:
        ++stats_.events_delivered;
        stats_.observe_delivery_latency(now - event.accepted_at);
        if (logger_.enabled(LogLevel::debug))
            logger_.debug("delivery: " + describe(event) + " delivered (" +
                          (outcome.message.empty() ? "HTTP " + std::to_string(outcome.status) : outcome.message) +
                          ", attempt " + std::to_string(job.attempt) + ", sequence " + std::to_string(job.sequence) +
                          ")");
        answer(event, outcome);
        forget_in_spool(event);
        return;
    case AttemptVerdict::Kind::retry:
        stats_.count_failed_attempt(to_string(outcome.kind));
        ++stats_.delivery_retries;
        stats_.recent_failures.add(failure_record(event, outcome, job.attempt, {}, config_.url));  // for /status
        logger_.warn("delivery: " + describe(event) + " attempt " + std::to_string(job.attempt) +
                     " failed: " + single_line(outcome.message) + " [" + outcome.code + "]; retrying in " +
                     format_delay(verdict.delay));
        return;
    case AttemptVerdict::Kind::give_up:
        stats_.count_failed_attempt(to_string(outcome.kind));
        give_up(event, verdict.reason, outcome, job.attempt);
        return;
    case AttemptVerdict::Kind::aborted:
        return;  // abort() dead-lettered it, or it stays in the spool
    }
}

void Deliverer::after_change() {
    work_signal_.notify_all();
    idle_signal_.notify_all();
    if (!has_room()) return;
    room_signal_.notify_all();
    if (core_.room_again()) logger_.info("delivery: the queue has room again");
}

awaitable<void> Deliverer::expire_idle_calls() {
    const auto period =
        std::clamp<Clock::duration>(config_.call_idle_timeout / 4, std::chrono::seconds(1), std::chrono::seconds(60));
    asio::steady_timer timer(io_);
    while (!core_.stopping()) {
        timer.expires_after(period);
        co_await timer.async_wait(as_tuple(use_awaitable));
        if (const auto expired = core_.expire_idle(Clock::now()))
            logger_.debug("delivery: freed " + std::to_string(expired) + " idle calls");
    }
}

// The core steps through the phases; this waits where it says and writes off what it hands back.
awaitable<void> Deliverer::shut_down(std::chrono::milliseconds budget) {
    if (!core_.stop(budget, Clock::now())) co_return;
    room_signal_.notify_all();
    work_signal_.notify_all();
    log_stop(budget);
    for (;;) {
        auto action = core_.shutdown_step(Clock::now());
        if (const auto* wake = std::get_if<core_action::WaitUntil>(&action)) {
            co_await idle_signal_.wait_until(wake->at);
        } else if (std::holds_alternative<core_action::Wait>(action)) {
            co_await idle_signal_.wait();
        } else if (auto* pending = std::get_if<core_action::DeadLetterAll>(&action)) {
            if (!pending->events.empty())
                logger_.warn("shutdown: " + std::to_string(pending->events.size()) +
                             " events not delivered within shutdown_timeout");
            dead_letter_all(pending->events, "shutdown",
                            not_attempted("SHUTDOWN", "the daemon stopped before the event could be delivered"));
        } else {
            break;
        }
    }
    if (core_.phase() == DeliveryCore::Phase::aborted) co_return;
    if (spool_) leave_in_spool();
    if (own_dead_letters_) co_await wait_for_dead_letters();  // a shared file: its owner waits for it
    transport_->close_idle();
    work_signal_.notify_all();
}

void Deliverer::log_stop(std::chrono::milliseconds budget) {
    const auto& queues = core_.queues();
    if (spool_ && queues.in_flight() > 0)
        logger_.info("shutdown: waiting up to " + format_duration(budget) + " for " +
                     std::to_string(queues.in_flight()) + " deliveries in flight");
    if (!spool_ && queues.queued() > 0)
        logger_.info("shutdown: delivering " + std::to_string(queues.queued()) + " queued events for up to " +
                     format_delay(budget));
}

void Deliverer::wake_all() {
    work_signal_.notify_all();
    idle_signal_.notify_all();
    room_signal_.notify_all();
}

void Deliverer::abort() {
    const auto pending = core_.abort();
    if (!pending) return;
    wake_all();
    if (spool_) {
        logger_.warn("shutdown: stopping at once; " + std::to_string(core_.queues().queued()) +
                     " undelivered events stay in the spool (one in flight may reach the receiver twice)");
        return;
    }
    dead_letter_all(*pending, "shutdown",
                    not_attempted("SHUTDOWN",
                                  "the daemon was stopped at once (second signal); an event "
                                  "in flight may have reached the receiver too"));
}

void Deliverer::remove() {
    const auto pending = core_.remove();
    if (!pending) return;
    wake_all();
    logger_.warn("reload: destination " + name_ + " removed; " + std::to_string(pending->size()) +
                 " undelivered events for it are dead-lettered (reason destination_removed)");
    dead_letter_all(*pending, "destination_removed",
                    not_attempted("DESTINATION_REMOVED",
                                  "the destination was removed from the configuration before the event could be "
                                  "delivered; an event in flight may have reached the receiver too"));
    transport_->close_idle();
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

void Deliverer::check_startable(const Config& config) { check_transport(config); }

void Deliverer::reconfigure(const Config& config) {
    if (transport_->accepts(config)) {
        transport_->update(config);
    } else {  // the url's scheme changed: attempts under way finish on the old transport, closed
        auto retired = std::exchange(transport_, make_transport(io_.get_executor(), config, logger_, name_));
        retired->retire();
        retired_transports_.push_back(std::move(retired));
        release_retired_transports();
    }
    core_.reconfigure(DeliverySettings::from(config));
    signer_ = Signer(config.signature, config.secret);
    log_url_ = url_for_log(config.url);
    dead_letters_.set_max_bytes(config.dead_letter_max_bytes);
    config_ = config;
    if (spool_) configure_parking();  // max_queue_bytes sets the resident budget
    after_change();
}

void Deliverer::update_gauges() {
    const auto& queues = core_.queues();
    stats_.in_flight = queues.in_flight();
    stats_.queued = queues.queued() - queues.in_flight();
    stats_.queued_bytes = queues.queued_bytes();
    stats_.live_calls = queues.live_calls();
    stats_.open_connections = transport_->open_connections();
    if (spool_) spool_->update_gauges();
    const auto oldest = queues.oldest_accepted();
    stats_.oldest_undelivered_age_seconds =
        oldest ? std::chrono::duration<double>(Clock::now() - *oldest).count() : 0.0;
}

std::optional<std::string> Deliverer::unhealthy_reason() const {
    if (spool_)
        if (auto reason = spool_->unhealthy_reason()) return reason;
    if (dead_letters_.full())
        return "the dead-letter file " + dead_letters_.path() +
               " is full (dead_letter_max_bytes=" + std::to_string(dead_letters_.max_bytes()) +
               "): given-up events are only logged";
    return core_.unhealthy_reason(Clock::now());
}

}  // namespace avr_webhookd
