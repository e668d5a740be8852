#pragma once

// Private to the Unix-socket intake (src/intake/intake_*.cpp): one producer connection.

#include <avr_webhookd/intake/event_parser.hpp>
#include <avr_webhookd/intake/intake_server.hpp>
#include <avr_webhookd/intake/reply_backlog.hpp>

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace avr_webhookd {

namespace intake_limits {

constexpr std::size_t read_buffer_size = 64 * 1024;
constexpr std::uint64_t rejections_logged_per_connection = 100;
constexpr auto close_linger = std::chrono::seconds(2);  // time to flush replies at close
// ... and, while "ok" replies still wait for the spool's fdatasync, at most this long.
constexpr auto durable_linger = std::chrono::seconds(30);

}  // namespace intake_limits

struct IntakeServer::Connection : std::enable_shared_from_this<IntakeServer::Connection> {
    // The read side's state, explicit because eviction and shutdown must know whether lines are
    // still being handled.
    enum class State {
        reading,             // waiting for bytes or handling the lines of a chunk
        paused_for_replies,  // not taking lines while its promised replies fill max_reply_backlog
        waiting_for_room,    // holding a read line until the queue has room (queue_full = block)
        closing,             // read side done (EOF, stop(), eviction): flushing replies
    };

    Connection(boost::asio::local::stream_protocol::socket socket_, std::uint64_t id_, const IntakeOptions& options,
               std::optional<PeerCredentials> peer_)
        : socket(std::move(socket_)),
          id(id_),
          peer(std::move(peer_)),
          framer(options.max_line),
          parser(EventParserOptions{options.allow_unknown_types}),
          replies(options.max_reply_backlog),
          wake_writer(socket.get_executor()),
          wake_reader(socket.get_executor()),
          writer_finished(socket.get_executor()) {}

    std::string name() const { return "producer connection " + std::to_string(id) + " (" + describe(peer) + ")"; }

    boost::asio::local::stream_protocol::socket socket;
    std::uint64_t id;
    std::optional<PeerCredentials> peer;
    State state = State::reading;
    std::chrono::steady_clock::time_point last_received = std::chrono::steady_clock::now();
    LineFramer framer;
    EventParser parser;
    // Replies in line order, held for the spool where they must be, and whether the reader may
    // take another line (intake_replies.cpp).
    ReplyBacklog replies;
    std::string reply_text;  // a reply being composed, reused
    std::string id_text;     // the id of the event being handled, reused
    std::string writing;     // the replies of the write under way
    boost::asio::steady_timer wake_writer;
    boost::asio::steady_timer wake_reader;  // while paused_for_replies: the backlog may have shrunk
    boost::asio::steady_timer writer_finished;
    bool writer_done = false;
    std::chrono::steady_clock::time_point last_written = std::chrono::steady_clock::now();  // a write completed
    std::chrono::steady_clock::time_point paused_since;
    std::uint64_t pauses = 0;  // times it was paused with its replies unread
    std::uint64_t rejections = 0;
    // While it holds the open batch (IntakeServer::batch_owner_): its replies, in line order,
    // queued when the batch ends (intake_batch.cpp). Their texts lie back to back in
    // deferred_text, so that a batch allocates nothing per line.
    struct Deferred {
        std::uint64_t number;
        bool staged;  // an event of the batch: "ok" (acknowledge, text = its id) or refused with it
        bool acknowledge;
        ReplyBacklog::Kind kind;  // not staged: a reply as it was queued
        std::uint64_t ticket;
        std::size_t offset, length;
    };
    std::vector<Deferred> deferred;
    std::string deferred_text;
    std::size_t deferred_bound = 0;  // the most their replies can come to (IntakeServer::batch_full)
};


}  // namespace avr_webhookd
