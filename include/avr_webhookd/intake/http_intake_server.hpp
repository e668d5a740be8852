#pragma once

#include <avr_webhookd/common/http_request_reader.hpp>
#include <avr_webhookd/common/signal.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/intake/event_sink.hpp>
#include <avr_webhookd/intake/http_intake_handler.hpp>
#include <avr_webhookd/ops/logger.hpp>
#include <avr_webhookd/ops/metrics.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace avr_webhookd {

// An HTTP intake request past a bound is answered (431, 413 or 400, see HttpRequestReader) and
// its connection closed.
struct HttpIntakeLimits {
    std::size_t max_header_bytes = 16 * 1024;   // request line and header fields: 431 and close beyond
    std::size_t max_request_bytes = 96 * 1024;  // http_max_request_bytes (resolved): every byte of one request
    std::size_t max_header_fields = 100;        // http_max_header_fields: 431 and close beyond
    unsigned max_connections = 256;             // http_max_connections
    // http_request_timeout: from connect, or from the previous response on a keep-alive
    // connection, to a complete request; also the bound on writing a response and on waiting
    // for room in a full queue.
    std::chrono::milliseconds request_timeout{10000};
    std::chrono::milliseconds durable_wait{30000};  // for the spool's fdatasync before answering 503
};

struct HttpIntakeServerOptions {
    std::string listen;  // http_listen, HOST:PORT (port 0: any free port)
    HttpIntakeOptions handling;
    HttpIntakeLimits limits;
};

HttpIntakeServerOptions http_intake_server_options(const Config& config);

// The drop-in HTTP intake: AVR Core's own webhook POSTs over HTTP/1.1 with keep-alive, each
// request read by HttpRequestReader within its bounds, handled by HttpIntakeHandler (both
// sans-io) and answered 200 only once its event is durable in the spool. Every read and write
// has a deadline; at max_connections the connection idle longest makes room, else the new one is
// closed.
class HttpIntakeServer {
public:
    HttpIntakeServer(boost::asio::io_context& io, HttpIntakeServerOptions options, EventSink& sink, Logger& logger,
                     Metrics& metrics);
    ~HttpIntakeServer();
    HttpIntakeServer(const HttpIntakeServer&) = delete;
    HttpIntakeServer& operator=(const HttpIntakeServer&) = delete;

    // Resolves and binds `listen`; std::runtime_error when it cannot.
    void bind();
    void start();
    // Stops accepting and closes connections waiting for a request; requests being handled are
    // answered (with Connection: close) first.
    void stop();
    // Reloadable: the secret, max_line, allow_unknown_types, queue_full and the limits.
    void update(const HttpIntakeServerOptions& options);
    // The crash-safe spool is durable up to `ticket`: 200 responses waiting for it go out.
    void durable_through(std::uint64_t ticket);
    boost::asio::awaitable<void> wait_until_closed(std::chrono::steady_clock::time_point deadline);

    std::string local_address() const { return bound_address_; }
    std::size_t connection_count() const { return connections_.size(); }

private:
    struct Connection;
    struct Request;
    boost::asio::awaitable<void> accept_loop();
    boost::asio::awaitable<void> serve(std::shared_ptr<Connection> connection);
    boost::asio::awaitable<bool> read_request(Connection& connection, bool first);
    boost::asio::awaitable<void> refuse(Connection& connection);
    HttpRequestLimits request_limits() const;
    HttpIntakeResponse counted(HttpIntakeResponse response);
    boost::asio::awaitable<HttpIntakeResponse> answer(Connection& connection, const Request& request,
                                                      std::string& event_id);
    boost::asio::awaitable<HttpIntakeDecision> decide_with_room(const HttpIntakeRequest& request);
    boost::asio::awaitable<bool> wait_durable(Connection& connection, std::uint64_t ticket);
    boost::asio::awaitable<std::optional<EventSink::Answer>> wait_answer(HttpAnswerSlot& slot);
    boost::asio::awaitable<bool> write(Connection& connection, const HttpIntakeResponse& response, unsigned version,
                                       bool keep_alive);
    bool make_room();
    void note_timeout();
    void forget(std::uint64_t id);

    boost::asio::io_context& io_;
    HttpIntakeServerOptions options_;
    EventSink& sink_;
    Logger& logger_;
    Metrics& metrics_;
    HttpIntakeHandler handler_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::string bound_address_;
    std::map<std::uint64_t, std::shared_ptr<Connection>> connections_;  // by id: the oldest first
    std::uint64_t next_connection_id_ = 1;
    std::uint64_t durable_ = 0;
    detail::Signal closed_signal_;
    bool running_ = false;
    bool warned_limit_ = false;
    std::size_t lingering_uncounted_ = 0;  // closing connections evicted, still lingering
    bool warned_timeout_ = false;
    std::uint32_t warned_refusals_ = 0;  // a bit per HttpRequestRefusal logged at warn level once
};

}  // namespace avr_webhookd
