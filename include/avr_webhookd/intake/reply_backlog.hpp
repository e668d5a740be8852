#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace avr_webhookd {

// The replies owed to one producer connection of the socket intake, and the rule that paces the
// reading of its lines (sans-io: the connection's reader and writer act on what it answers).
//
// Order: replies leave in the order they were added. A reply whose event the spool has not yet
// made durable (its ticket is past `durable`) is held until release() reaches it, and every reply
// added after it waits behind it.
//
// A promised reply (every reply with ack = all, a routing answer whatever `ack` is, the line that
// tells an evicted producer why) is never dropped. Instead the producer is paused: gate() tells the
// reader to stop taking lines while the promised backlog (held, waiting to be written, being
// written, plus answer_reservation for each routing answer still to come) is at or over the
// limit. The reader asks before each line and a line makes at most one reply, so the backlog
// stays under limit + one reply + the answers already under way (at most limit /
// answer_reservation of them).
//
// A best-effort reply (a rejected line with ack = errors) is dropped instead when the best-effort
// replies queued would pass the limit with it: replies never slow such a producer down, and
// promised replies queued (a large routing answer waiting for its fdatasync) never cost a producer
// that reads its replies one of them.
class ReplyBacklog {
public:
    enum class Kind { promised, best_effort };
    enum class Added { ready, held, dropped };
    // What the reader does before its next line.
    enum class Gate {
        read,              // take it
        wait_for_reader,   // paused: the backlog is mostly written out and waits for the producer to read it
        wait_for_release,  // paused: it mostly waits for the spool's fdatasync or for routing answers
    };
    // What a routing answer still to come counts, until it comes: its reply is typically 150
    // bytes, and its receiver's body at most 64 KiB.
    static constexpr std::size_t answer_reservation = 1024;

    explicit ReplyBacklog(std::size_t limit) : limit_(limit) {}

    std::size_t limit() const { return limit_; }
    void set_limit(std::size_t limit) { limit_ = limit; }

    // A reply line (with its newline). `ticket` > `durable`: held until release(ticket).
    Added add(std::string_view reply, Kind kind, std::uint64_t ticket = 0, std::uint64_t durable = 0);
    // A routing answer will come: it counts answer_reservation until answer() brings it.
    void expect_answer() { ++answers_expected_; }
    // The routing answer expected earlier: a promised reply in place of its reservation.
    Added answer(std::string_view reply, std::uint64_t ticket, std::uint64_t durable);
    // The spool is durable through `durable`: the held replies up to it are ready. True when any were.
    bool release(std::uint64_t durable);

    // The writer's side: the ready replies move to `out` (replacing its content) for one write,
    // and count until written() says the socket took them.
    bool has_ready() const { return !ready_.empty(); }
    void take(std::string& out);
    void written();
    // The producer can no longer be written to (a failed write, a closed connection): what is
    // queued is dropped, and every reply from now on.
    void fail();

    Gate gate() const;
    // Nothing queued, being written or expected: a closing connection's writer is done.
    bool settled() const { return held_.empty() && ready_.empty() && in_write_ == 0 && answers_expected_ == 0; }
    bool failed() const { return failed_; }
    std::size_t bytes() const { return held_bytes_ + ready_.size() + in_write_; }
    std::size_t held_count() const { return held_.size(); }
    std::size_t answers_expected() const { return answers_expected_; }
    std::uint64_t dropped() const { return dropped_; }

private:
    struct Held {
        std::uint64_t ticket;
        std::size_t size;
        Kind kind;
    };
    std::size_t best_effort_bytes() const { return bytes() - promised_held_ - promised_ready_ - promised_in_write_; }
    std::size_t promised() const {
        return promised_held_ + promised_ready_ + promised_in_write_ + answers_expected_ * answer_reservation;
    }

    std::size_t limit_;
    // Held replies, back to back in held_text_ from held_begin_ on (no allocation per reply).
    std::deque<Held> held_;
    std::string held_text_;
    std::size_t held_begin_ = 0;
    std::size_t held_bytes_ = 0;
    std::string ready_;  // released, waiting for the writer
    std::size_t in_write_ = 0;
    std::size_t promised_held_ = 0, promised_ready_ = 0, promised_in_write_ = 0;
    std::size_t answers_expected_ = 0;
    std::uint64_t dropped_ = 0;
    bool failed_ = false;
};

}  // namespace avr_webhookd
