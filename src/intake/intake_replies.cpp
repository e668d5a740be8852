// The Unix-socket intake's replies: queued per connection in line order (ReplyBacklog), held
// until the spool has made their events durable, written by one writer coroutine per connection;
// and the pause of a connection's reading while its promised replies fill max_reply_backlog.
#include "intake_connection.hpp"

#include <avr_webhookd/common/js_json.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>

namespace avr_webhookd {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;
using namespace intake_limits;

awaitable<void> IntakeServer::write_replies(std::shared_ptr<Connection> connection) {
    Connection& c = *connection;
    while (!c.replies.failed()) {
        if (!c.replies.has_ready()) {
            if (c.state == Connection::State::closing && c.replies.settled()) break;
            c.wake_writer.expires_at(asio::steady_timer::time_point::max());
            co_await c.wake_writer.async_wait(as_tuple(use_awaitable));
            continue;
        }
        c.replies.take(c.writing);
        auto [ec, written] = co_await asio::async_write(c.socket, asio::buffer(c.writing), as_tuple(use_awaitable));
        if (ec) {
            c.replies.fail();  // nobody reads them now; the lines are still taken
        } else {
            c.replies.written();
            c.last_written = std::chrono::steady_clock::now();
        }
        wake_reader(c);
    }
    c.writer_done = true;
    c.writer_finished.cancel();
}

void IntakeServer::durable_through(std::uint64_t ticket) {
    durable_ = std::max(durable_, ticket);
    for (const auto& connection : connections_)
        if (connection->replies.held_count() > 0) release_replies(*connection);
}

void IntakeServer::release_replies(Connection& c) {
    if (!c.replies.release(durable_)) return;
    c.wake_writer.cancel();
    wake_reader(c);
}

ReplyBacklog::Kind IntakeServer::rejection_kind() const {
    return options_.ack == AckMode::all ? ReplyBacklog::Kind::promised : ReplyBacklog::Kind::best_effort;
}

// While the connection holds the open batch, behind the batch's replies (intake_batch.cpp).
void IntakeServer::queue_reply(Connection& c, std::string_view reply, ReplyBacklog::Kind kind, std::uint64_t ticket) {
    if (batch_owner_ == &c) {
        c.deferred.push_back(Connection::Deferred{0, false, false, kind, ticket, c.deferred_text.size(), reply.size()});
        c.deferred_text.append(reply);
        c.deferred_bound += reply.size();
        return;
    }
    note_added(c, c.replies.add(reply, kind, ticket, durable_));
}

void IntakeServer::queue_answer(Connection& c, std::string_view reply, std::uint64_t ticket) {
    note_added(c, c.replies.answer(reply, ticket, durable_));
    wake_reader(c);  // its reservation may have been what paused the connection
}

void IntakeServer::note_added(Connection& c, ReplyBacklog::Added added) {
    if (added == ReplyBacklog::Added::ready) {
        c.wake_writer.cancel();
    } else if (added == ReplyBacklog::Added::dropped) {
        ++metrics_.producer_replies_dropped;
        if (c.replies.dropped() == 1 && !c.replies.failed())
            logger_.warn("intake: " + c.name() + " is not reading its replies; dropping rejection replies past " +
                         "max_reply_backlog=" + std::to_string(c.replies.limit()) +
                         " (ack = errors; events are not affected)");
    }
}

void IntakeServer::wake_reader(Connection& c) {
    if (c.state == Connection::State::paused_for_replies) c.wake_reader.cancel();
}

// ack = all: a producer's lines wait while the replies it was promised fill max_reply_backlog,
// until it reads them (or the spool's fdatasync releases them, or routing answers come). This
// connection only: every other producer goes on.
awaitable<bool> IntakeServer::wait_for_reply_room(Connection& c) {
    c.state = Connection::State::paused_for_replies;
    c.paused_since = std::chrono::steady_clock::now();
    bool counted = false;
    std::optional<std::chrono::steady_clock::time_point> stop_deadline;
    for (;;) {
        const auto gate = c.replies.gate();
        if (gate == ReplyBacklog::Gate::read) break;
        if (gate == ReplyBacklog::Gate::wait_for_reader && !counted) {
            counted = true;
            ++metrics_.producer_reads_paused;
            if (c.pauses++ == 0)
                logger_.info("intake: " + c.name() + " has " + std::to_string(c.replies.bytes()) +
                             " bytes of replies it has not read (max_reply_backlog=" +
                             std::to_string(c.replies.limit()) + "); its lines are read as it reads its replies");
        }
        // Stopping while the replies wait for the spool's fdatasync or for routing answers, not for
        // the producer: take no more lines, and let serve()'s linger send those replies as they come.
        if (!accepting_ && gate == ReplyBacklog::Gate::wait_for_release) co_return false;
        const auto now = std::chrono::steady_clock::now();
        if (!accepting_ && !stop_deadline) stop_deadline = now + close_linger;
        // Closed (eviction, an error), or the daemon stops and the producer still does not read:
        // the lines it wrote after its unread replies are not taken; none of them was acknowledged.
        if (c.state == Connection::State::closing) co_return false;
        if (stop_deadline && now >= *stop_deadline) {
            logger_.warn("intake: " + c.name() + " did not read its replies within " +
                         std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(close_linger).count()) +
                         "ms of the stop; the lines it wrote after them were not taken");
            c.replies.fail();  // and its writer, stuck on the full socket, gives up at once
            boost::system::error_code ignored;
            c.socket.cancel(ignored);
            co_return false;
        }
        c.wake_reader.expires_at(stop_deadline.value_or(asio::steady_timer::time_point::max()));
        co_await c.wake_reader.async_wait(as_tuple(use_awaitable));
        if (c.state == Connection::State::closing) co_return false;
    }
    c.state = Connection::State::reading;
    co_return true;
}

void IntakeServer::reject(Connection& c, std::uint64_t number, std::string_view reason, std::string_view message) {
    metrics_.count_rejected(reason);
    std::string& reply = c.reply_text;
    reply.assign("{\"ok\":false,\"line\":");
    reply.append(std::to_string(number)).append(",\"error\":");
    append_js_string(reply, message);
    reply.append("}\n");
    queue_reply(c, reply, rejection_kind());
    const auto count = ++c.rejections;
    if (count <= rejections_logged_per_connection) {
        logger_.warn("intake: connection " + std::to_string(c.id) + " line " + std::to_string(number) +
                     " rejected: " + Logger::sanitize(message));
    } else if (count == rejections_logged_per_connection + 1) {
        logger_.warn("intake: connection " + std::to_string(c.id) +
                     " keeps sending bad lines; further rejections are counted in metrics and logged at debug level");
    } else {
        logger_.debug("intake: connection " + std::to_string(c.id) + " line " + std::to_string(number) +
                      " rejected: " + Logger::sanitize(message));
    }
}

}  // namespace avr_webhookd
