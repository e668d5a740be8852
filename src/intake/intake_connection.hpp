#pragma once

// Private to the Unix-socket intake (src/intake/intake_*.cpp): one producer connection.

#include <avr_webhookd/intake/event_parser.hpp>
#include <avr_webhookd/intake/intake_server.hpp>

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <string>

namespace avr_webhookd {

namespace intake_limits {

constexpr std::size_t read_buffer_size = 64 * 1024;
constexpr std::uint64_t rejections_logged_per_connection = 100;
constexpr auto close_linger = std::chrono::seconds(2);  // time to flush replies at close
// ... and, while "ok" replies still wait for the spool's fdatasync, at most this long.
constexpr auto durable_linger = std::chrono::seconds(30);

}  // namespace intake_limits

struct IntakeServer::Connection : std::enable_shared_from_this<IntakeServer::Connection> {
    // Explicit, because eviction and shutdown must know whether lines are still being handled.
    enum class State {
        reading,           // waiting for bytes or handling the lines of a chunk
        waiting_for_room,  // holding a read line until the queue has room (queue_full = block)
        closing,           // read side done (EOF, stop(), eviction): flushing replies
    };

    Connection(boost::asio::local::stream_protocol::socket socket_, std::uint64_t id_, const IntakeOptions& options,
               std::optional<PeerCredentials> peer_)
        : socket(std::move(socket_)),
          id(id_),
          peer(std::move(peer_)),
          framer(options.max_line),
          parser(EventParserOptions{options.allow_unknown_types}),
          wake_writer(socket.get_executor()),
          writer_finished(socket.get_executor()) {}

    std::string name() const { return "producer connection " + std::to_string(id) + " (" + describe(peer) + ")"; }

    boost::asio::local::stream_protocol::socket socket;
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
    boost::asio::steady_timer wake_writer;
    boost::asio::steady_timer writer_finished;
    bool writer_done = false;
    bool write_failed = false;
    std::uint64_t rejections = 0;
    std::uint64_t dropped_replies = 0;
    // Events of a respond type whose answer this producer still waits for (see intake_answers.cpp).
    std::size_t answers_waiting = 0;
};


}  // namespace avr_webhookd
