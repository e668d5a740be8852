#include <avr_webhookd/intake/intake_server.hpp>
#include <avr_webhookd/common/rethrow.hpp>

#include <avr_webhookd/intake/event_parser.hpp>
#include <avr_webhookd/common/js_json.hpp>
#include <avr_webhookd/intake/line_framer.hpp>
#include <avr_webhookd/common/unix_socket.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <deque>
#include <stdexcept>
#include <vector>

namespace avr_webhookd {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;
using stream_protocol = asio::local::stream_protocol;

namespace {

constexpr std::size_t read_buffer_size = 64 * 1024;
constexpr std::uint64_t rejections_logged_per_connection = 100;
constexpr auto close_linger = std::chrono::seconds(2);  // time to flush replies at close
// ... and, while "ok" replies still wait for the spool's fdatasync, at most this long.
constexpr auto durable_linger = std::chrono::seconds(30);

}  // namespace

struct IntakeServer::Connection {
    // Explicit, because eviction and shutdown must know whether lines are still being handled.
    enum class State {
        reading,           // waiting for bytes or handling the lines of a chunk
        waiting_for_room,  // holding a read line until the queue has room (queue_full = block)
        closing,           // read side done (EOF, stop(), eviction): flushing replies
    };

    Connection(stream_protocol::socket socket_, std::uint64_t id_, const IntakeOptions& options,
               std::optional<PeerCredentials> peer_)
        : socket(std::move(socket_)),
          id(id_),
          peer(std::move(peer_)),
          framer(options.max_line),
          parser(EventParserOptions{options.allow_unknown_types}),
          wake_writer(socket.get_executor()),
          writer_finished(socket.get_executor()) {}

    std::string name() const { return "producer connection " + std::to_string(id) + " (" + describe(peer) + ")"; }

    stream_protocol::socket socket;
    std::uint64_t id;
    std::optional<PeerCredentials> peer;
    State state = State::reading;
    std::chrono::steady_clock::time_point last_received = std::chrono::steady_clock::now();
    LineFramer framer;
    EventParser parser;
    std::string pending_replies;
    // Replies waiting until the spool is durable up to their ticket (an "ok" with spool_sync =
    // always), and every reply after them, so that replies keep the order of their lines.
    struct HeldReply {
        std::uint64_t ticket;
        std::string text;
    };
    std::deque<HeldReply> held_replies;
    std::size_t held_bytes = 0;
    std::string writing;
    asio::steady_timer wake_writer;
    asio::steady_timer writer_finished;
    bool writer_done = false;
    bool write_failed = false;
    std::uint64_t rejections = 0;
    std::uint64_t dropped_replies = 0;
};

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
    // answered, then the read ends as at EOF, and further writes fail on their side.
    for (const auto& connection : connections_) {
        boost::system::error_code ec;
        connection->socket.shutdown(stream_protocol::socket::shutdown_receive, ec);
        if (ec) connection->socket.cancel(ignored);
    }
}

void IntakeServer::update(const IntakeOptions& options) {
    options_.ack = options.ack;
    options_.allow_unknown_types = options.allow_unknown_types;
    options_.max_line = options.max_line;
    options_.queue_full = options.queue_full;
    options_.max_connections = options.max_connections;
    options_.partial_line_timeout = options.partial_line_timeout;
    options_.access = options.access;
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
            asio::steady_timer pause(io_, std::chrono::milliseconds(100));  // e.g. out of file descriptors
            co_await pause.async_wait(as_tuple(use_awaitable));
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
// cannot lock real producers out (issue 7, item 7). A connection qualifies when closing it loses
// nothing its producer sent: no line waiting for room, no unread bytes in the socket, and no
// partial line, unless the producer has been silent in the middle of a line for
// partial_line_timeout (then the partial line is answered as a rejected line at close, like any
// line cut off by end of stream). Connections that never completed a line go first (probes,
// abandoned clients), then the one silent longest, so a long-lived producer such as AVR Core's is
// the last to go.
bool IntakeServer::evict_idle_connection() {
    const auto now = std::chrono::steady_clock::now();
    std::shared_ptr<Connection> oldest;
    const auto rank = [](const Connection& c) { return std::pair(c.framer.lines_seen() > 0, c.last_received); };
    for (const auto& c : connections_) {
        if (c->state != Connection::State::reading) continue;
        if (c->framer.buffered() > 0 && now - c->last_received < options_.partial_line_timeout) continue;
        boost::system::error_code ec;
        if (c->socket.available(ec) > 0 || ec) continue;
        if (!oldest || rank(*c) < rank(*oldest)) oldest = c;
    }
    if (!oldest) return false;
    const auto idle =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - oldest->last_received);
    const std::string why = "connection closed: max_connections=" + std::to_string(options_.max_connections) +
                            " was reached and another producer connected; this one had been idle longest (" +
                            std::to_string(idle.count()) + "ms)";
    queue_reply(*oldest, "{\"ok\":false,\"error\":\"" + why + "\"}\n");
    oldest->state = Connection::State::closing;
    boost::system::error_code ec;
    oldest->socket.shutdown(stream_protocol::socket::shutdown_receive, ec);  // its read ends as at EOF
    if (ec) oldest->socket.cancel(ec);
    ++metrics_.producer_connections_evicted;
    logger_.warn("intake: closed " + oldest->name() + ", idle for " + std::to_string(idle.count()) +
                 "ms, to make room for a new producer (max_connections=" + std::to_string(options_.max_connections) +
                 ")");
    return true;
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
    connection->held_replies.clear();  // so that its writer ends: nothing will release them now
    connection->held_bytes = 0;
    boost::system::error_code ignored;
    connection->socket.close(ignored);
    connection->wake_writer.cancel();
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
    const auto linger_until = std::chrono::steady_clock::now() + close_linger;
    const auto held_until = std::chrono::steady_clock::now() + durable_linger;
    while (!c.writer_done && std::chrono::steady_clock::now() < (c.held_replies.empty() ? linger_until : held_until)) {
        c.writer_finished.expires_at(c.held_replies.empty() ? linger_until : held_until);
        co_await c.writer_finished.async_wait(as_tuple(use_awaitable));
    }
    if (!c.held_replies.empty())
        logger_.warn("intake: " + c.name() + " closed with " + std::to_string(c.held_replies.size()) +
                     " replies still waiting for the spool's fdatasync; their events are stored and will be "
                     "delivered, but the producer was not told");
    if (c.dropped_replies > 0)
        logger_.warn("intake: " + c.name() + " did not read " + std::to_string(c.dropped_replies) +
                     " replies; they were dropped (its events were not)");
    logger_.debug("intake: " + c.name() + " closed after " + std::to_string(c.framer.lines_seen()) + " lines");
    forget(connection);
}

awaitable<void> IntakeServer::read_lines(Connection& c) {
    std::vector<char> buffer(read_buffer_size);
    for (;;) {
        auto [ec, size] = co_await c.socket.async_read_some(asio::buffer(buffer), as_tuple(use_awaitable));
        if (ec) {
            if (ec != asio::error::eof && ec != asio::error::connection_reset && ec != asio::error::operation_aborted)
                logger_.warn("intake: read from " + c.name() + " failed: " + ec.message());
            break;
        }
        c.last_received = std::chrono::steady_clock::now();
        std::string_view data(buffer.data(), size);
        while (auto frame = c.framer.next(data)) co_await handle_frame(c, *frame);
    }
    if (auto frame = c.framer.finish()) co_await handle_frame(c, *frame);
}

awaitable<void> IntakeServer::handle_frame(Connection& c, const LineFramer::Frame& frame) {
    if (frame.kind == LineFramer::FrameKind::too_long) {
        ++metrics_.events_received;
        reject(c, frame.number, "line_too_long",
               "line too long: more than max_line=" + std::to_string(c.framer.max_line()) +
                   " bytes; the rest of the line was skipped");
        co_return;
    }
    // queue_full = block: hold this producer (and only it) until delivery makes room.
    if (options_.queue_full == QueueFullPolicy::block && !sink_.has_room()) {
        const auto previous = c.state;
        c.state = Connection::State::waiting_for_room;
        while (options_.queue_full == QueueFullPolicy::block && !sink_.has_room()) co_await sink_.wait_for_room();
        c.state = previous;
    }
    handle_line(c, frame.number, frame.text);
}

awaitable<void> IntakeServer::write_replies(std::shared_ptr<Connection> connection) {
    Connection& c = *connection;
    for (;;) {
        if (c.pending_replies.empty()) {
            if (c.state == Connection::State::closing && c.held_replies.empty()) break;
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

void IntakeServer::queue_reply(Connection& c, std::string reply, std::uint64_t ticket) {
    if (c.write_failed || c.pending_replies.size() + c.held_bytes + reply.size() > options_.max_reply_backlog) {
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
    std::string id = options_.ack == AckMode::all ? event.id : std::string();
    const auto receipt = sink_.submit(std::move(event));
    submitted = true;
    switch (receipt.admission) {
    case EventSink::Admission::queued:
    case EventSink::Admission::filtered:
        if (options_.ack == AckMode::all) {
            std::string reply = "{\"ok\":true,\"line\":" + std::to_string(number) + ",\"id\":";
            append_js_string(reply, id);
            reply.append("}\n");
            queue_reply(c, std::move(reply), receipt.ticket);  // "ok" only once the spool keeps it
        }
        break;
    case EventSink::Admission::not_stored:
        reject(c, number, "spool_write_failed", receipt.detail);
        break;
    case EventSink::Admission::dead_lettered:
        reject(c, number, "queue_full",
               "queue full (max_queue reached): the event was written to the dead-letter file");
        break;
    case EventSink::Admission::shutting_down:
        reject(c, number, "shutting_down",
               "the daemon is shutting down: the event was written to the dead-letter file");
        break;
    case EventSink::Admission::full:
        reject(c, number, "queue_full",
               "queue full (max_queue reached) and no dead-letter file: the event was not accepted");
        break;
    }
}

}  // namespace avr_webhookd
