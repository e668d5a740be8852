#include <avr_webhookd/delivery/deliverer.hpp>
#include <avr_webhookd/common/rethrow.hpp>

#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/delivery/failure_report.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

// The Deliverer's dead letters: giving an event up, handing its line to the writer thread, and
// acting on the outcome (the spool forgets the event; a line that could not be written is tried
// again while the spool keeps the event).
namespace avr_webhookd {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;

namespace {

// A dead-letter line whose write failed is written again this often while the spool keeps its
// event, up to this many lines.
constexpr std::chrono::seconds dead_letter_retry_period{5};
constexpr std::size_t max_dead_letter_retries = 10000;

}  // namespace

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

void Deliverer::write_off_unstored(const Event& event, std::string_view why) {
    logger_.error("delivery: " + describe(event) + " was taken by other destinations but could not be stored for " +
                  name_ + " (" + std::string(why) + "): it is dead-lettered for " + name_);
    dead_letter(event, "spool_write_failed", not_attempted("SPOOL_WRITE_FAILED", std::string(why)), 0);
}

void Deliverer::give_up(const Event& event, std::string_view reason, const AttemptOutcome& last, int attempts,
                        bool quiet) {
    // The block stays in the specification's format; the line before it names the destination.
    if (!spool_name_.empty()) logger_.error("delivery: destination " + name_ + " gave up " + describe(event) + ":");
    logger_.block(LogLevel::error, failure_block(event.type, last, log_url_, transport_->method()));
    core_.note_given_up(std::string(reason) + ": " + single_line(last.message));
    dead_letter(event, reason, last, attempts, quiet);
}

// The line goes to the writer thread; the event counts as dead-lettered once its fate is known.
// `quiet` (a shutdown batch) leaves the per-event success line out for one summary line.
void Deliverer::dead_letter(const Event& event, std::string_view reason, const AttemptOutcome& last, int attempts,
                            bool quiet) {
    answer(event, last);
    stats_.recent_failures.add(failure_record(event, last, attempts, reason, config_.url));  // for /status
    std::string line =
        dead_letter_line(event.id, event.body, reason, last, attempts, std::chrono::system_clock::now(),
                         event.destination.empty() ? std::string_view(name_) : std::string_view(event.destination));
    if (!dead_letters_.enabled()) {
        ++stats_.events_dead_lettered;
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
    ++stats_.events_dead_lettered;
    written_signal_.notify_all();
    if (on_dead_letter_done_) on_dead_letter_done_();
    if (spool_ && spool_record != 0 && outcome.result != DeadLetterWriter::Result::failed) spool_->done(spool_record);
    switch (outcome.result) {
    case DeadLetterWriter::Result::written:
        if (quiet) ++batch_written_;
        else logger_.warn("delivery: " + what + "; written to " + dead_letters_.path());
        return;
    case DeadLetterWriter::Result::overflow:
        ++stats_.dead_letter_overflow;
        logger_.error("delivery: " + what + "; the dead-letter file " + dead_letters_.path() +
                      " is full (dead_letter_max_bytes=" + std::to_string(dead_letters_.max_bytes()) +
                      "), so this log line is its only record: " + outcome.line);
        return;
    case DeadLetterWriter::Result::failed:
        ++stats_.dead_letter_write_failures;
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
    while (!dead_letter_retries_.empty() && core_.phase() != DeliveryCore::Phase::aborted) {
        timer.expires_after(dead_letter_retry_period);
        co_await timer.async_wait(as_tuple(use_awaitable));
        auto retries = std::exchange(dead_letter_retries_, {});
        for (auto& item : retries)
            dead_letters_.append(std::move(item.line), [this, what = std::move(item.what), record = item.spool_record](
                                                           const DeadLetterWriter::Outcome& outcome) {
                --stats_.events_dead_lettered;  // counted once, when it was first given up
                on_dead_letter_outcome(outcome, what, false, record);
            });
    }
}

void Deliverer::dead_letter_all(const std::vector<CallQueues::Pending>& pending, std::string_view reason,
                                const AttemptOutcome& outcome) {
    for (const auto& item : pending) give_up(item.event, reason, outcome, item.attempts_made, true);
}

}  // namespace avr_webhookd
