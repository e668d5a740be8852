#pragma once

#include <avr_webhookd/delivery/connection_count.hpp>
#include <avr_webhookd/delivery/http_response_reader.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace avr_webhookd {

// One keep-alive connection of HttpClient: its stream (TCP, or TLS over TCP), the buffers its
// requests and responses reuse, and how it learns that its socket has something to read without
// a peek or a read that finds nothing.
//
// - the watch: a wait for readability, armed in the same handler as the read that completed a
//   response (park()), or on a new connection before its first request goes out; it stays armed
//   while the connection sits in the pool and while the next request is written. Fired while
//   idle, it means the peer closed the connection or wrote bytes nobody asked for (which would be
//   read as the next request's answer): take() refuses the connection. Or, now and then, nothing:
//   readiness for bytes of the last response that arrived after the read's wait had completed and
//   were read with it, reported once more by the next poll. So take() then looks at the socket
//   (one peek, only when the watch fired while idle). Fired later, the answer is there.
// - otherwise the exchange waits (async_wait_readable), right after the read that found the
//   answer incomplete, or behind the watch.
// Reads and plain-text writes are then non-blocking calls made when the socket is ready: one send
// and one receive per request in the common case. The watch is not free: Asio queues a wait on a
// socket that has no other operation queued with an epoll_ctl(EPOLL_CTL_MOD) (epoll_reactor's
// start_op; it also makes epoll report bytes already there), so each request still costs one
// system call besides its send and receive, as the peek did (tests/bench/README.md, 2026-12-07).
// A read armed instead would not save it: Asio 1.81 tries a read at once (a receive that finds
// nothing) unless the socket's last read reached end of file (epoll_reactor's try_speculative_).
class HttpConnection {
public:
    using Clock = std::chrono::steady_clock;
    using Request = std::array<boost::asio::const_buffer, 2>;  // head, body

    HttpConnection(boost::beast::tcp_stream stream, std::shared_ptr<std::size_t> counter, HttpResponseLimits limits);
    HttpConnection(boost::beast::tcp_stream stream, std::shared_ptr<boost::asio::ssl::context> context,
                   std::shared_ptr<std::size_t> counter, HttpResponseLimits limits);
    ~HttpConnection();
    HttpConnection(const HttpConnection&) = delete;
    HttpConnection& operator=(const HttpConnection&) = delete;

    boost::beast::tcp_stream& tcp() { return tls ? boost::beast::get_lowest_layer(*tls) : *plain; }

    // Out of the pool for a request: false when the peer closed it or wrote on it meanwhile.
    bool take();
    // Before a request goes out, once the stream is ready (after the TLS handshake): the exchange
    // ends at `deadline` (the socket's operations are then cancelled, and timed_out() is true);
    // a new connection gets its watch.
    void begin_exchange(Clock::time_point deadline);
    // Plain text only: writes what the socket takes now of `request`, which is advanced past it.
    boost::system::error_code send_now(Request& request);
    // The answer (or part of it) can be read now without waiting.
    bool readable() const;
    // Completes once the socket is readable (operation_aborted at the deadline).
    template <class Token>
    auto async_wait_readable(Token&& token) {
        return tcp().socket().async_wait(boost::asio::socket_base::wait_read, std::forward<Token>(token));
    }
    bool timed_out() const;
    // Non-blocking reads into `reader` while the socket (and TLS) has bytes, at most read_budget
    // of them: an error of the stream, or success (EOF is passed to the reader). Readable
    // afterwards only when it stopped at its budget (the caller lets the event loop run first).
    boost::system::error_code read_now(HttpResponseReader& reader);
    static constexpr std::size_t read_budget = 64 * 1024;
    // The exchange is over: the deadline no longer applies.
    void end_exchange();
    // Into the pool after a complete, reusable response, in the handler of the read that ended it.
    void park();

    ConnectionCount count;
    std::shared_ptr<boost::asio::ssl::context> tls_context;  // outlives `tls`, which uses it, whatever a reload does
    std::optional<boost::beast::tcp_stream> plain;
    std::optional<boost::beast::ssl_stream<boost::beast::tcp_stream>> tls;
    bool reused = false;
    std::uint64_t endpoint_generation = 0;  // HttpClient::endpoint_generation_ when it was opened
    std::string head;                       // the request head, rewritten for each request
    HttpResponseReader reader;              // restarted for each response

    struct Readiness;  // shared with the handlers of the waits on the socket, which may outlive the connection

private:
    friend struct DeadlinePassed;
    void arm_watch();
    void arm_deadline(Clock::time_point deadline);
    bool more_after_full_read();
    bool peer_closed_or_wrote();

    std::shared_ptr<Readiness> readiness_;
    boost::asio::steady_timer deadline_timer_;
};

}  // namespace avr_webhookd
