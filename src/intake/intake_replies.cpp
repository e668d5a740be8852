// The Unix-socket intake's replies: queued per connection in line order, held until the spool
// has made their events durable, written by one writer coroutine per connection.
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
    for (;;) {
        if (c.pending_replies.empty()) {
            if (c.state == Connection::State::closing && c.held_replies.empty() && c.answers_waiting == 0) break;
            c.wake_writer.expires_at(asio::steady_timer::time_point::max());
            co_await c.wake_writer.async_wait(as_tuple(use_awaitable));
            continue;
        }
        c.writing.clear();
        c.writing.swap(c.pending_replies);
        auto [ec, written] = co_await asio::async_write(c.socket, asio::buffer(c.writing), as_tuple(use_awaitable));
        if (ec) {
            c.write_failed = true;
            break;
        }
    }
    c.writer_done = true;
    c.writer_finished.cancel();
}

void IntakeServer::durable_through(std::uint64_t ticket) {
    durable_ = std::max(durable_, ticket);
    for (const auto& connection : connections_)
        if (!connection->held_replies.empty()) release_replies(*connection);
}

void IntakeServer::release_replies(Connection& c) {
    bool released = false;
    while (!c.held_replies.empty() && c.held_replies.front().ticket <= durable_) {
        auto& front = c.held_replies.front();
        c.held_bytes -= front.text.size();
        c.pending_replies.append(front.text);
        c.held_replies.pop_front();
        released = true;
    }
    if (released) c.wake_writer.cancel();
}

void IntakeServer::queue_reply(Connection& c, std::string reply, std::uint64_t ticket, ReplyKind kind) {
    const auto backlog = c.pending_replies.size() + c.held_bytes + (kind == ReplyKind::answer ? 0 : reply.size());
    if (c.write_failed || backlog > options_.max_reply_backlog) {
        ++metrics_.producer_replies_dropped;
        if (c.dropped_replies++ == 0 && !c.write_failed)
            logger_.warn("intake: " + c.name() +
                         " is not reading its replies; dropping replies (events are not affected)");
        return;
    }
    if (ticket > durable_ || !c.held_replies.empty()) {
        c.held_bytes += reply.size();
        c.held_replies.push_back(Connection::HeldReply{ticket, std::move(reply)});
        return;
    }
    c.pending_replies.append(reply);
    c.wake_writer.cancel();
}

void IntakeServer::reject(Connection& c, std::uint64_t number, std::string_view reason, std::string_view message) {
    metrics_.count_rejected(reason);
    std::string reply = "{\"ok\":false,\"line\":" + std::to_string(number) + ",\"error\":";
    append_js_string(reply, message);
    reply.append("}\n");
    queue_reply(c, std::move(reply));
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
