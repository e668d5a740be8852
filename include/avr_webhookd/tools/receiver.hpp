#pragma once

#include <avr_webhookd/common/signature_mode.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace avr_webhookd {

// The `avr-webhookd receive` webhook receiver: used from the command line and in-process by the
// integration tests, which share its failure switches.
struct ReceiverOptions {
    std::string listen = "127.0.0.1:8080";  // host:port ([v6]:port); port 0 = any free port
    std::string secret;                     // empty: no secret check
    SignatureMode signature = SignatureMode::plain;
    std::string tls_cert, tls_key;  // PEM files, both or neither

    // Failure switches. Each counts requests from 1 over all connections, independently of the
    // others, and applies in this order: drop, redirect, fail.
    int drop_first = 0;      // close the connection without answering the first N requests
    int redirect_first = 0;  // answer 302 with a Location to the first N requests
    int fail_first = 0;      // answer fail_status to the first N requests
    int fail_status = 503;
    std::map<std::string, int> status_for_type;  // always answer this status for an event type
    std::chrono::milliseconds delay{0};          // wait before each response (or drop)
    std::optional<std::string> retry_after;      // Retry-After value on the switches' 4xx/5xx answers
    bool close_after_response = false;           // answer with Connection: close
    // Routing, as AVR's sample receiver does: a call_initiated is answered 200 with
    // {"sts_url":"<sts_url>?uuid=<call uuid>"} (application/json). Empty: plain "OK".
    std::string sts_url;
    bool quiet = false;           // don't print deliveries
    std::ostream* out = nullptr;  // where deliveries are printed; nullptr: std::cout

    // What requests() keeps, so a long run under load stays bounded: at most this many requests
    // and this many bytes (bodies, targets and headers). Past either bound the oldest are
    // forgotten, at least a quarter of max_recorded at a time (so forgetting costs O(1) per
    // request), and counted in requests_forgotten(). 0 records nothing.
    std::size_t max_recorded = 10000;
    std::size_t max_recorded_bytes = 64 * 1024 * 1024;
};

struct ReceivedRequest {
    std::string method, target, body;
    std::map<std::string, std::string> headers;  // lower-case names; repeated headers joined by ", "
    std::size_t connection_index = 0;            // 1 for the first connection accepted
    int status_sent = 0;                         // 0 when the connection was dropped instead
    std::chrono::steady_clock::time_point at;    // when the request had been read
};

class Receiver {
public:
    // Binds and listens at once (throws std::exception on a bad address, a busy port or unreadable
    // TLS files), so port() is known before start(). The io_context must be run by one thread.
    Receiver(boost::asio::io_context& io, ReceiverOptions options);
    ~Receiver();
    Receiver(const Receiver&) = delete;
    Receiver& operator=(const Receiver&) = delete;

    unsigned short port() const;
    // "http://HOST:PORT" or "https://HOST:PORT" with the bound address.
    std::string base_url() const;

    void start();  // spawns the accept loop on the io_context
    // Stops accepting and closes open connections; safe from any thread. The io_context then
    // runs out of work once the connections' coroutines have finished.
    void stop();

    // Snapshots, safe from any thread.
    std::vector<ReceivedRequest> requests() const;
    std::size_t connections_accepted() const;
    // Requests read but no longer (or never) kept by requests(), because of max_recorded(_bytes).
    std::size_t requests_forgotten() const;
    // Blocks until predicate(requests) holds (true) or `timeout` passes (false).
    bool wait_for(const std::function<bool(const std::vector<ReceivedRequest>&)>& predicate,
                  std::chrono::milliseconds timeout) const;

    struct State;

private:
    std::shared_ptr<State> state_;  // shared with the coroutines, which may outlive this object
};

}  // namespace avr_webhookd
