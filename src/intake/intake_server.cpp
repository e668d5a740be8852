// The Unix-socket intake: the listening socket, admitting and evicting producer connections, and
// each connection's life. Reading lines is in intake_lines.cpp, replies in intake_replies.cpp.
#include "intake_connection.hpp"

#include <avr_webhookd/common/accept_pause.hpp>
#include <avr_webhookd/common/js_json.hpp>
#include <avr_webhookd/common/rethrow.hpp>
#include <avr_webhookd/common/unix_socket.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <stdexcept>

namespace avr_webhookd {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;
using stream_protocol = asio::local::stream_protocol;
using namespace intake_limits;
using namespace std::chrono_literals;

IntakeOptions intake_options(const Config& config) {
    IntakeOptions options;
    options.socket_path = config.socket;
    options.socket_mode = config.socket_mode;
    options.max_line = config.max_line;
    options.max_connections = config.max_connections;
    options.partial_line_timeout = config.partial_line_timeout;
    options.ack = config.ack;
    options.allow_unknown_types = config.allow_unknown_types;
    options.queue_full = config.queue_full;
    options.access = ProducerAccess{config.producer_uids, config.producer_gids};
    options.respond_types = config.respond_types;
    options.respond_timeout = config.respond_timeout;
    options.max_reply_backlog = config.max_reply_backlog;
    return options;
}

IntakeServer::IntakeServer(asio::io_context& io, IntakeOptions options, EventSink& sink, Logger& logger,
                           Metrics& metrics)
    : io_(io),
      options_(std::move(options)),
      sink_(sink),
      logger_(logger),
      metrics_(metrics),
      closed_signal_(io.get_executor()),
      acceptor_(io) {}

awaitable<void> IntakeServer::wait_until_closed(std::chrono::steady_clock::time_point deadline) {
    while (!connections_.empty() && std::chrono::steady_clock::now() < deadline)
        co_await closed_signal_.wait_until(deadline);
}

IntakeServer::~IntakeServer() { remove_socket_file(); }

void IntakeServer::bind() {
    socket_inode_ =
        bind_unix_listener(acceptor_, options_.socket_path, options_.socket_mode, "socket", "socket", logger_);
    bound_by_us_ = true;
}

void IntakeServer::adopt(int listening_fd) {
    int domain = 0, type = 0, listening = 0;
    socklen_t length = sizeof domain;
    ::getsockopt(listening_fd, SOL_SOCKET, SO_DOMAIN, &domain, &length);
    length = sizeof type;
    ::getsockopt(listening_fd, SOL_SOCKET, SO_TYPE, &type, &length);
    length = sizeof listening;
    ::getsockopt(listening_fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length);
    if (domain != AF_UNIX || type != SOCK_STREAM || !listening)
        throw std::runtime_error(
            "socket activation passed fd " + std::to_string(listening_fd) +
            ", which is not a listening Unix stream socket (check ListenStream= in the .socket unit)");
    acceptor_.assign(stream_protocol(), listening_fd);
}

void IntakeServer::start() {
    accepting_ = true;
    asio::co_spawn(io_, accept_loop(), detail::rethrow_exceptions);  // a bug in the daemon's own loop
}

void IntakeServer::stop() {
    if (!accepting_) return;
    accepting_ = false;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    remove_socket_file();
    // Producers are cut off at the read side: what they already wrote is still read and
    // answered, then the read ends as at EOF, and further writes fail on their side. One paused
    // for its replies has close_linger to read them (wait_for_reply_room).
    for (const auto& connection : connections_) {
        boost::system::error_code ec;
        connection->socket.shutdown(stream_protocol::socket::shutdown_receive, ec);
        if (ec) connection->socket.cancel(ignored);
        wake_reader(*connection);
    }
}

// Everything but the socket itself applies: the daemon refuses a reload that changes a
// restart-only setting, so naming only those here keeps new options reloadable by default.
void IntakeServer::update(IntakeOptions options) {
    options.socket_path = options_.socket_path;
    options.socket_mode = options_.socket_mode;
    options_ = std::move(options);
    for (const auto& connection : connections_) {
        connection->replies.set_limit(options_.max_reply_backlog);
        wake_reader(*connection);
    }
}

std::size_t IntakeServer::open_connections() const {
    return static_cast<std::size_t>(std::count_if(connections_.begin(), connections_.end(), [](const auto& c) {
        return c->state != Connection::State::closing;
    }));
}

std::size_t IntakeServer::connections_waiting_for_room() const {
    return static_cast<std::size_t>(std::count_if(connections_.begin(), connections_.end(), [](const auto& c) {
        return c->state == Connection::State::waiting_for_room;
    }));
}

std::size_t IntakeServer::connections_paused_for_replies() const {
    return static_cast<std::size_t>(std::count_if(connections_.begin(), connections_.end(), [](const auto& c) {
        return c->state == Connection::State::paused_for_replies;
    }));
}

void IntakeServer::remove_socket_file() {
    if (!bound_by_us_) return;
    bound_by_us_ = false;
    remove_own_socket_file(options_.socket_path, socket_inode_);
}

awaitable<void> IntakeServer::accept_loop() {
    while (accepting_) {
        auto [ec, socket] = co_await acceptor_.async_accept(as_tuple(use_awaitable));
        if (!accepting_) break;
        if (ec) {
            logger_.warn("intake: accept failed: " + ec.message());
            co_await detail::pause_after_accept_error(io_.get_executor());
            continue;
        }
        auto peer = peer_credentials(socket.native_handle());
        if (!admit(socket, peer)) continue;
        auto connection =
            std::make_shared<Connection>(std::move(socket), next_connection_id_++, options_, std::move(peer));
        connections_.insert(connection);
        // Debug, not info: producers such as `socat` open one connection per event, and the
        // refusals that matter are logged as warnings with the same credentials.
        logger_.debug("intake: " + connection->name() + " opened");
        asio::co_spawn(io_, serve(connection), connection_guard(connection, "intake"));
    }
}

namespace {

void refuse(stream_protocol::socket& socket, std::string_view reason) {
    std::string reply = "{\"ok\":false,\"error\":";
    append_js_string(reply, reason);
    reply.append("}\n");
    boost::system::error_code ignored;
    socket.non_blocking(true, ignored);
    socket.write_some(asio::buffer(reply), ignored);
}

}  // namespace

bool IntakeServer::admit(stream_protocol::socket& socket, const std::optional<PeerCredentials>& peer) {
    if (!options_.access.allows(peer)) {
        refuse(socket, "producer not allowed: its uid and groups are not in producer_uids / producer_gids");
        ++metrics_.producer_connections_denied;
        logger_.warn("intake: refused a producer connection from " + describe(peer) + ": not in producer_uids (" +
                     format_id_list(options_.access.uids) + ") or producer_gids (" +
                     format_id_list(options_.access.gids) + ")");
        return false;
    }
    if (open_connections() < options_.max_connections || evict_idle_connection()) return true;
    refuse(socket, "too many producer connections (max_connections=" + std::to_string(options_.max_connections) + ")");
    ++metrics_.producer_connections_refused;
    logger_.warn("intake: refused a producer connection from " + describe(peer) + ": max_connections=" +
                 std::to_string(options_.max_connections) + " reached and every connection is busy");
    return false;
}

// At max_connections, an idle connection makes room for a new producer, so silent sockets
// cannot lock real producers out (issue 7, item 7). Connections that never completed a line go
// first (probes, abandoned clients), then the one silent longest, so a long-lived producer such as
// AVR Core's is the last to go.
bool IntakeServer::evict_idle_connection() {
    const auto now = std::chrono::steady_clock::now();
    std::shared_ptr<Connection> oldest;
    const auto rank = [](const Connection& c) { return std::pair(c.framer.lines_seen() > 0, c.last_received); };
    for (const auto& c : connections_)
        if (evictable(*c, now) && (!oldest || rank(*c) < rank(*oldest))) oldest = c;
    if (!oldest) return false;
    const bool paused = oldest->state == Connection::State::paused_for_replies;
    const auto idle = std::chrono::duration_cast<std::chrono::milliseconds>(
        now - (paused ? std::max(oldest->last_written, oldest->paused_since) : oldest->last_received));
    const std::string why = "connection closed: max_connections=" + std::to_string(options_.max_connections) +
                            " was reached and another producer connected; this one had been idle longest (" +
                            std::to_string(idle.count()) + "ms" + (paused ? " without reading its replies" : "") + ")";
    queue_reply(*oldest, "{\"ok\":false,\"error\":\"" + why + "\"}\n", ReplyBacklog::Kind::promised);
    oldest->state = Connection::State::closing;
    boost::system::error_code ec;
    oldest->socket.shutdown(stream_protocol::socket::shutdown_receive, ec);  // its read ends as at EOF
    if (ec) oldest->socket.cancel(ec);
    oldest->wake_reader.cancel();  // a paused one stops waiting: the lines it holds were never acknowledged
    ++metrics_.producer_connections_evicted;
    logger_.warn("intake: closed " + oldest->name() + ", idle for " + std::to_string(idle.count()) + "ms" +
                 (paused ? " without reading its replies (its unread lines were not taken)" : "") +
                 ", to make room for a new producer (max_connections=" + std::to_string(options_.max_connections) +
                 ")");
    return true;
}

// A connection qualifies when closing it loses nothing its producer was told was taken:
// - reading: no unread bytes in the socket, and no partial line unless the producer has been
//   silent in the middle of a line for partial_line_timeout (then the partial line is answered as
//   a rejected line at close, like any line cut off by end of stream);
// - paused for replies: its producer has not read a byte of them for partial_line_timeout (the
//   lines it wrote meanwhile were never acknowledged; it must send them again in any case).
// Never one holding a line for a full queue.
bool IntakeServer::evictable(const Connection& c, std::chrono::steady_clock::time_point now) const {
    if (c.state == Connection::State::paused_for_replies)
        return c.replies.gate() == ReplyBacklog::Gate::wait_for_reader &&
               now - std::max(c.last_written, c.paused_since) >= options_.partial_line_timeout;
    if (c.state != Connection::State::reading) return false;
    if (c.framer.buffered() > 0 && now - c.last_received < options_.partial_line_timeout) return false;
    boost::system::error_code ec;
    return c.socket.available(ec) == 0 && !ec;
}

std::function<void(std::exception_ptr)> IntakeServer::connection_guard(std::shared_ptr<Connection> connection,
                                                                       std::string what) {
    return [this, connection = std::move(connection), what = std::move(what)](std::exception_ptr error) {
        if (!error) return;
        std::string message = "unknown exception";
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& exception) {
            message = exception.what();
        } catch (...) {}
        ++metrics_.producer_connection_errors;
        logger_.error(what + ": internal error on " + connection->name() + ": " + Logger::sanitize(message) +
                      "; the connection was closed, the daemon keeps serving");
        forget(connection);
    };
}

void IntakeServer::forget(const std::shared_ptr<Connection>& connection) {
    connection->state = Connection::State::closing;
    connection->replies.fail();  // so that its writer ends: nothing will write them now
    boost::system::error_code ignored;
    connection->socket.close(ignored);
    connection->wake_writer.cancel();
    connection->wake_reader.cancel();
    if (connections_.erase(connection) > 0) closed_signal_.notify_all();
}

awaitable<void> IntakeServer::serve(std::shared_ptr<Connection> connection) {
    Connection& c = *connection;
    asio::co_spawn(io_, write_replies(connection), connection_guard(connection, "intake replies"));
    std::optional<std::string> failure;
    try {
        co_await read_lines(c);
    } catch (const std::exception& error) {  // a bug or bad_alloc: this connection ends, not the daemon
        failure = error.what();
    }
    if (failure) {
        ++metrics_.producer_connection_errors;
        logger_.error("intake: internal error on " + c.name() + ": " + Logger::sanitize(*failure) +
                      "; the connection was closed after " + std::to_string(c.framer.lines_seen()) +
                      " lines, the daemon keeps serving");
    }

    c.state = Connection::State::closing;
    c.wake_writer.cancel();
    // Replies still waiting for the spool (a slow or failing disk) get longer than the rest.
    // A producer that half-closed after its call_initiated still gets the answer.
    const auto linger_until = std::chrono::steady_clock::now() + close_linger +
                              (c.replies.answers_expected() > 0 ? options_.respond_timeout : 0ms);
    const auto held_until = std::chrono::steady_clock::now() + durable_linger;
    const auto until = [&] { return c.replies.held_count() == 0 ? linger_until : held_until; };
    while (!c.writer_done && std::chrono::steady_clock::now() < until()) {
        c.writer_finished.expires_at(until());
        co_await c.writer_finished.async_wait(as_tuple(use_awaitable));
    }
    if (c.replies.held_count() > 0)
        logger_.warn("intake: " + c.name() + " closed with " + std::to_string(c.replies.held_count()) +
                     " replies still waiting for the spool's fdatasync; their events are stored and will be "
                     "delivered, but the producer was not told");
    else if (!c.writer_done && c.replies.bytes() > 0)
        logger_.warn("intake: " + c.name() + " closed before it read " + std::to_string(c.replies.bytes()) +
                     " bytes of its replies (the events of those lines were taken all the same)");
    if (c.replies.dropped() > 0)
        logger_.warn("intake: " + c.name() + " did not read " + std::to_string(c.replies.dropped()) +
                     " replies; they were dropped (its events were not)");
    logger_.debug("intake: " + c.name() + " closed after " + std::to_string(c.framer.lines_seen()) + " lines");
    forget(connection);
}

}  // namespace avr_webhookd
