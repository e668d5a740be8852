#pragma once

#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/common/signal.hpp>
#include <avr_webhookd/intake/event_sink.hpp>
#include <avr_webhookd/intake/line_framer.hpp>
#include <avr_webhookd/ops/logger.hpp>
#include <avr_webhookd/ops/metrics.hpp>
#include <avr_webhookd/intake/producer_access.hpp>
#include <avr_webhookd/intake/reply_backlog.hpp>
#include <avr_webhookd/common/uuid.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace avr_webhookd {

struct IntakeOptions {
    std::string socket_path;
    unsigned socket_mode = 0660;
    std::size_t max_line = 65536;
    unsigned max_connections = 256;
    std::chrono::milliseconds partial_line_timeout{30000};  // silent mid-line this long: evictable
    AckMode ack = AckMode::errors;
    bool allow_unknown_types = false;
    QueueFullPolicy queue_full = QueueFullPolicy::block;
    std::size_t max_reply_backlog = 64 * 1024;                 // reply bytes kept per producer (see ReplyBacklog)
    ProducerAccess access;                                     // producer_uids / producer_gids
    std::vector<std::string> respond_types{"call_initiated"};  // answered with the receiver's reply
    std::chrono::milliseconds respond_timeout{2500};
};

IntakeOptions intake_options(const Config& config);

// The Unix-socket intake: accepts producers, frames their NDJSON, validates each line and hands
// accepted events to the EventSink. Replies go back on the same connection, in line order. A
// reply the producer was promised (every one with ack = all, a routing answer) is never dropped:
// a producer that does not read them is paused (its lines wait) at max_reply_backlog. With
// ack = errors a producer that never reads loses rejection replies, never events.
class IntakeServer {
public:
    IntakeServer(boost::asio::io_context& io, IntakeOptions options, EventSink& sink, Logger& logger, Metrics& metrics);
    ~IntakeServer();

    // Creates the socket's directory if needed and binds with socket_mode. A stale socket file
    // (no listener) is replaced; a live one means another instance runs: std::runtime_error.
    void bind();
    // Socket activation: takes over an already listening socket (it is never unlinked by us).
    void adopt(int listening_fd);

    void start();
    // Stops accepting; open connections read what is already buffered, then close.
    void stop();

    // Reloaded options, all but socket_path and socket_mode (restart-only): ack,
    // allow_unknown_types, queue_full, max_connections and max_reply_backlog apply at once,
    // max_line and the allow-list to connections opened afterwards.
    void update(IntakeOptions options);

    // Completes when every producer connection has closed, or at `deadline`.
    boost::asio::awaitable<void> wait_until_closed(std::chrono::steady_clock::time_point deadline);

    // The crash-safe spool is durable up to `ticket`: "ok" replies waiting for it go out.
    void durable_through(std::uint64_t ticket);

    std::size_t connection_count() const { return connections_.size(); }
    // Lines read from producers and not yet handed to the sink (waiting for room), for the log.
    std::size_t connections_waiting_for_room() const;
    // Connections whose lines wait until their replies are read or released (max_reply_backlog).
    std::size_t connections_paused_for_replies() const;
    bool accepting() const { return accepting_; }

private:
    struct Connection;
    boost::asio::awaitable<void> accept_loop();
    // Whether a just-accepted socket may be served; a refused one gets a reply line and is closed.
    bool admit(boost::asio::local::stream_protocol::socket& socket, const std::optional<PeerCredentials>& peer);
    bool evict_idle_connection();
    bool evictable(const Connection& connection, std::chrono::steady_clock::time_point now) const;
    std::size_t open_connections() const;
    boost::asio::awaitable<void> serve(std::shared_ptr<Connection> connection);
    boost::asio::awaitable<void> read_lines(Connection& connection);
    boost::asio::awaitable<void> write_replies(std::shared_ptr<Connection> connection);
    // Waits while ReplyBacklog::gate() pauses the connection; false when it must stop reading
    // instead (evicted, closed, or still paused close_linger after stop()).
    boost::asio::awaitable<bool> wait_for_reply_room(Connection& connection);
    void wake_reader(Connection& connection);
    // A frame that must wait for room (queue_full = block) goes through the coroutine; every other
    // frame is handled at once, without a coroutine frame per line.
    bool must_wait_for_room() const;
    boost::asio::awaitable<void> wait_then_handle(Connection& connection, const LineFramer::Frame& frame);
    void handle_frame(Connection& connection, const LineFramer::Frame& frame);
    void handle_line(Connection& connection, std::uint64_t number, std::string_view line);
    void accept_line(Connection& connection, std::uint64_t number, std::string_view line, bool& submitted);
    // respond_types: submits the event for an answer and replies once it comes or times out.
    EventSink::Receipt submit_for_answer(Connection& connection, std::uint64_t number, Event&& event);
    // Completion of a connection's coroutines: an exception ends that connection only.
    std::function<void(std::exception_ptr)> connection_guard(std::shared_ptr<Connection> connection, std::string what);
    void forget(const std::shared_ptr<Connection>& connection);
    void reject(Connection& connection, std::uint64_t number, std::string_view reason, std::string_view message);
    // A best-effort reply is dropped (and counted) past max_reply_backlog; a promised one never.
    void queue_reply(Connection& connection, std::string_view reply, ReplyBacklog::Kind kind, std::uint64_t ticket = 0);
    void queue_ok(Connection& connection, std::uint64_t number, std::string_view id, std::uint64_t ticket);
    // Group writes (intake_batch.cpp): the lines of one read share one spool write.
    void begin_batch(Connection& connection);
    void defer_staged(Connection& connection, std::uint64_t number, std::string_view id, bool acknowledge);
    bool batch_full(const Connection& connection) const;
    void end_batch(Connection& connection);
    void abandon_batch(Connection& connection) noexcept;
    void queue_answer(Connection& connection, std::string_view reply, std::uint64_t ticket);
    void note_added(Connection& connection, ReplyBacklog::Added added);
    ReplyBacklog::Kind rejection_kind() const;
    void release_replies(Connection& connection);
    void remove_socket_file();

    boost::asio::io_context& io_;
    IntakeOptions options_;
    EventSink& sink_;
    Logger& logger_;
    Metrics& metrics_;
    UuidGenerator ids_;
    detail::Signal closed_signal_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
    std::set<std::shared_ptr<Connection>> connections_;
    std::uint64_t next_connection_id_ = 1;
    std::uint64_t durable_ = 0;  // see durable_through
    bool accepting_ = false;
    // The connection whose lines are in the sink's open batch (EventSink::begin_batch), if any: a
    // batch never outlives the handling of one read, so at most one connection holds it.
    Connection* batch_owner_ = nullptr;
    bool bound_by_us_ = false;
    unsigned long long socket_inode_ = 0;
};

}  // namespace avr_webhookd
