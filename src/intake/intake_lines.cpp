// The Unix-socket intake's reading side: bytes to framed lines, each line validated and handed
// to the EventSink, one reply per line as `ack` asks.
#include "intake_connection.hpp"

#include <avr_webhookd/intake/event_parser.hpp>
#include <avr_webhookd/intake/refusal.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <vector>

namespace avr_webhookd {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;
using namespace intake_limits;

// Before each read and each line, the pause rule (ReplyBacklog::gate) may hold the connection
// until its replies are read; a line is never half handled, so the unread rest of a chunk simply
// waits in `buffer`.
awaitable<void> IntakeServer::read_lines(Connection& c) {
    struct BatchGuard {  // leaving by an exception, a batch open for this connection ends here
        IntakeServer& server;
        Connection& connection;
        ~BatchGuard() { server.abandon_batch(connection); }
    } guard{*this, c};
    std::vector<char> buffer(read_buffer_size);
    const auto paused = [&c] { return c.replies.gate() != ReplyBacklog::Gate::read; };
    for (;;) {
        if (paused() && !co_await wait_for_reply_room(c)) co_return;
        auto [ec, size] = co_await c.socket.async_read_some(asio::buffer(buffer), as_tuple(use_awaitable));
        if (ec) {
            if (ec != asio::error::eof && ec != asio::error::connection_reset && ec != asio::error::operation_aborted)
                logger_.warn("intake: read from " + c.name() + " failed: " + ec.message());
            break;
        }
        c.last_received = std::chrono::steady_clock::now();
        std::string_view data(buffer.data(), size);
        // The lines of this read form one batch (intake_batch.cpp), ended before any wait.
        while (auto frame = c.framer.next(data)) {
            if (batch_full(c)) end_batch(c);
            if (paused()) {
                end_batch(c);
                if (paused() && !co_await wait_for_reply_room(c)) co_return;
            }
            if (must_wait_for_room()) {
                end_batch(c);
                co_await wait_then_handle(c, *frame);
            } else {
                handle_frame(c, *frame);
            }
        }
        end_batch(c);
    }
    if (auto frame = c.framer.finish()) {
        if (paused() && !co_await wait_for_reply_room(c)) co_return;
        if (must_wait_for_room()) co_await wait_then_handle(c, *frame);
        else handle_frame(c, *frame);
        end_batch(c);
    }
}

bool IntakeServer::must_wait_for_room() const {
    return options_.queue_full == QueueFullPolicy::block && !sink_.has_room();
}

// queue_full = block: hold this producer (and only it) until delivery makes room.
awaitable<void> IntakeServer::wait_then_handle(Connection& c, const LineFramer::Frame& frame) {
    if (frame.kind != LineFramer::FrameKind::too_long) {
        const auto previous = c.state;
        c.state = Connection::State::waiting_for_room;
        while (must_wait_for_room()) co_await sink_.wait_for_room();
        c.state = previous;
    }
    handle_frame(c, frame);
}

void IntakeServer::handle_frame(Connection& c, const LineFramer::Frame& frame) {
    if (frame.kind == LineFramer::FrameKind::too_long) {
        ++metrics_.events_received;
        reject(c, frame.number, "line_too_long",
               "line too long: more than max_line=" + std::to_string(c.framer.max_line()) +
                   " bytes; the rest of the line was skipped");
        return;
    }
    handle_line(c, frame.number, frame.text);
}

// One line, one outcome: an exception while handling it (a bug, or bad_alloc) rejects that line
// only, and the connection and the daemon go on.
void IntakeServer::handle_line(Connection& c, std::uint64_t number, std::string_view line) {
    ++metrics_.events_received;
    bool submitted = false;
    std::string failure;
    try {
        accept_line(c, number, line, submitted);
        return;
    } catch (const std::exception& error) {
        failure = Logger::sanitize(error.what());
    }
    if (submitted) {  // the event is queued; only its "ok" reply was lost
        logger_.error("intake: " + c.name() + " line " + std::to_string(number) +
                      ": internal error after the event was queued: " + failure + "; its reply was not sent");
        return;
    }
    logger_.error("intake: " + c.name() + " line " + std::to_string(number) +
                  ": internal error while handling it: " + failure + "; the line was rejected");
    reject(c, number, "internal_error",
           "internal error while handling this line (" + failure + "): the event was not accepted; send it again");
}

void IntakeServer::accept_line(Connection& c, std::uint64_t number, std::string_view line, bool& submitted) {
    c.parser.set_options(EventParserOptions{options_.allow_unknown_types});  // a reload may have changed it
    auto result = c.parser.parse(line, std::chrono::system_clock::now(), ids_);
    if (auto* rejection = std::get_if<RejectReason>(&result)) {
        reject(c, number, rejection->reason, rejection->message);
        return;
    }
    Event& event = std::get<Event>(result);
    // Numbers are re-serialised as JSON.stringify prints them (1e20 becomes 21 digits), so a body
    // can outgrow its line; the queue's bounds count on at most twice max_line.
    if (event.body.size() > 2 * options_.max_line) {
        reject(c, number, "too_large",
               "the event is larger than 2 x max_line=" + std::to_string(options_.max_line) +
                   " bytes once its numbers are written out as JSON.stringify does");
        return;
    }
    const bool respond = !event.replayed && std::find(options_.respond_types.begin(), options_.respond_types.end(),
                                                      event.type) != options_.respond_types.end();
    const bool acknowledge = options_.ack == AckMode::all || event.replayed;
    std::string& id = c.id_text;
    id.assign(acknowledge ? std::string_view(event.id) : std::string_view());
    // A producer waiting for a routing answer gets it after the replies before it (no batch).
    if (respond) end_batch(c);
    else begin_batch(c);
    const auto receipt = respond ? submit_for_answer(c, number, std::move(event)) : sink_.submit(std::move(event));
    submitted = true;
    if (receipt.admission == EventSink::Admission::staged) {
        defer_staged(c, number, id, acknowledge);  // its reply comes with the batch's outcome
    } else if (const auto refused = refusal_of(receipt)) {
        reject(c, number, refused->reason, refused->message);
    } else if (respond) {
        // Its one reply is the answer (intake_answers.cpp), whatever `ack` is.
    } else if (acknowledge) {
        queue_ok(c, number, id, receipt.ticket);
    }
}

}  // namespace avr_webhookd
