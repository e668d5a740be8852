#include <avr_webhookd/intake_server.hpp>
#include <avr_webhookd/detail/rethrow.hpp>

#include <avr_webhookd/event_parser.hpp>
#include <avr_webhookd/js_json.hpp>
#include <avr_webhookd/line_framer.hpp>
#include <avr_webhookd/unix_socket.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>

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

}  // namespace

struct IntakeServer::Connection {
    Connection(stream_protocol::socket socket_, std::uint64_t id_, const IntakeOptions& options)
        : socket(std::move(socket_)),
          id(id_),
          framer(options.max_line),
          parser(EventParserOptions{options.allow_unknown_types}),
          wake_writer(socket.get_executor()),
          writer_finished(socket.get_executor()) {}

    stream_protocol::socket socket;
    std::uint64_t id;
    LineFramer framer;
    EventParser parser;
    std::string pending_replies;
    std::string writing;
    asio::steady_timer wake_writer;
    asio::steady_timer writer_finished;
    bool closing = false;
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
    options.ack = config.ack;
    options.allow_unknown_types = config.allow_unknown_types;
    options.queue_full = config.queue_full;
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
    socket_inode_ = bind_unix_listener(acceptor_, options_.socket_path, options_.socket_mode, "socket", "socket", logger_);
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
        throw std::runtime_error("socket activation passed fd " + std::to_string(listening_fd) +
                                 ", which is not a listening Unix stream socket (check ListenStream= in the .socket unit)");
    acceptor_.assign(stream_protocol(), listening_fd);
}

void IntakeServer::start() {
    accepting_ = true;
    asio::co_spawn(io_, accept_loop(), detail::rethrow_exceptions);
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
        if (connections_.size() >= options_.max_connections) {
            const std::string refusal = "{\"ok\":false,\"error\":\"too many producer connections (max_connections=" +
                                        std::to_string(options_.max_connections) + ")\"}\n";
            boost::system::error_code ignored;
            socket.non_blocking(true, ignored);
            socket.write_some(asio::buffer(refusal), ignored);
            ++metrics_.producer_connections_refused;
            logger_.warn("intake: refused a producer connection: max_connections=" +
                         std::to_string(options_.max_connections) + " reached");
            continue;
        }
        auto connection = std::make_shared<Connection>(std::move(socket), next_connection_id_++, options_);
        connections_.insert(connection);
        logger_.debug("intake: producer connection " + std::to_string(connection->id) + " opened");
        asio::co_spawn(io_, serve(connection), detail::rethrow_exceptions);
    }
}

awaitable<void> IntakeServer::serve(std::shared_ptr<Connection> connection) {
    Connection& c = *connection;
    asio::co_spawn(io_, write_replies(connection), detail::rethrow_exceptions);
    std::vector<char> buffer(read_buffer_size);

    for (;;) {
        auto [ec, size] = co_await c.socket.async_read_some(asio::buffer(buffer), as_tuple(use_awaitable));
        if (ec) {
            if (ec != asio::error::eof && ec != asio::error::connection_reset && ec != asio::error::operation_aborted)
                logger_.warn("intake: read from producer connection " + std::to_string(c.id) + " failed: " + ec.message());
            break;
        }
        std::string_view data(buffer.data(), size);
        while (auto frame = c.framer.next(data)) co_await handle_frame(c, *frame);
    }
    if (auto frame = c.framer.finish()) co_await handle_frame(c, *frame);

    c.closing = true;
    c.wake_writer.cancel();
    if (!c.writer_done) {
        c.writer_finished.expires_after(close_linger);
        co_await c.writer_finished.async_wait(as_tuple(use_awaitable));
    }
    boost::system::error_code ignored;
    c.socket.close(ignored);
    if (c.dropped_replies > 0)
        logger_.warn("intake: producer connection " + std::to_string(c.id) + " did not read " +
                     std::to_string(c.dropped_replies) + " replies; they were dropped (its events were not)");
    logger_.debug("intake: producer connection " + std::to_string(c.id) + " closed after " +
                  std::to_string(c.framer.lines_seen()) + " lines");
    connections_.erase(connection);
    closed_signal_.notify_all();
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
    while (options_.queue_full == QueueFullPolicy::block && !sink_.has_room()) co_await sink_.wait_for_room();
    handle_line(c, frame.number, frame.text);
}

awaitable<void> IntakeServer::write_replies(std::shared_ptr<Connection> connection) {
    Connection& c = *connection;
    for (;;) {
        if (c.pending_replies.empty()) {
            if (c.closing) break;
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

void IntakeServer::queue_reply(Connection& c, std::string reply) {
    if (c.write_failed || c.pending_replies.size() + reply.size() > options_.max_reply_backlog) {
        if (c.dropped_replies++ == 0 && !c.write_failed)
            logger_.warn("intake: producer connection " + std::to_string(c.id) +
                         " is not reading its replies; dropping replies (events are not affected)");
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

void IntakeServer::handle_line(Connection& c, std::uint64_t number, std::string_view line) {
    ++metrics_.events_received;
    c.parser.set_options(EventParserOptions{options_.allow_unknown_types});  // a reload may have changed it
    auto result = c.parser.parse(line, std::chrono::system_clock::now(), ids_);
    if (auto* rejection = std::get_if<RejectReason>(&result)) {
        reject(c, number, rejection->reason, rejection->message);
        return;
    }
    Event& event = std::get<Event>(result);
    std::string id = options_.ack == AckMode::all ? event.id : std::string();
    switch (sink_.submit(std::move(event))) {
    case EventSink::Admission::queued:
    case EventSink::Admission::filtered:
        if (options_.ack == AckMode::all) {
            std::string reply = "{\"ok\":true,\"line\":" + std::to_string(number) + ",\"id\":";
            append_js_string(reply, id);
            reply.append("}\n");
            queue_reply(c, std::move(reply));
        }
        break;
    case EventSink::Admission::dead_lettered:
        reject(c, number, "queue_full", "queue full (max_queue reached): the event was written to the dead-letter file");
        break;
    case EventSink::Admission::shutting_down:
        reject(c, number, "shutting_down", "the daemon is shutting down: the event was written to the dead-letter file");
        break;
    case EventSink::Admission::full:
        reject(c, number, "queue_full", "queue full (max_queue reached) and no dead-letter file: the event was not accepted");
        break;
    }
}

}  // namespace avr_webhookd
