#pragma once

#include <avr_webhookd/common/url.hpp>
#include <avr_webhookd/delivery/attempt_outcome.hpp>
#include <avr_webhookd/delivery/header_list.hpp>
#include <avr_webhookd/delivery/http_response_reader.hpp>
#include <avr_webhookd/ops/logger.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace avr_webhookd {

class HttpConnection;

struct HttpClientOptions {
    Url url;
    std::chrono::milliseconds timeout{3000};  // bounds a whole attempt: resolve, connect, TLS, write, read
    bool tls_verify = true;
    std::string ca_file;  // added to the system trust store
    std::size_t max_idle_connections = 64;
};

// Builds the TLS client context: peer verification against the system store (plus ca_file),
// TLS 1.2 or newer. Throws std::runtime_error when ca_file cannot be loaded.
std::shared_ptr<boost::asio::ssl::context> make_tls_client_context(bool verify, const std::string& ca_file);
// What ca_file holds (a digest of its bytes; "" for none or an unreadable file), so that a reload
// sees a bundle replaced at the same path.
std::string ca_file_fingerprint(const std::string& ca_file);

// A keep-alive HTTP/1.1 client for one endpoint. Connections are reused; an idle connection the
// server has closed or written on is detected before reuse (by readiness reported while it sits in
// the pool, without a peek per request: HttpConnection), and a reused connection that fails
// before any response byte is replaced once within the same attempt. The attempt's deadline is hard: it
// bounds every phase, and a peer that trickles bytes is cut off at it. Responses are read by
// HttpResponseReader (1xx skipped, head and body bounded); a connection goes back to the pool
// only when its response was complete, keep-alive, and nothing unread is left. Each attempt
// works on a snapshot of the options, so a reload never changes an attempt under way. Used from a
// single thread (the io_context's).
class HttpClient {
public:
    HttpClient(boost::asio::any_io_executor executor, HttpClientOptions options, Logger& logger);
    ~HttpClient();

    // How a name is looked up: Asio's resolver unless set_resolver() replaced it (tests: a slow
    // DNS). Called once per lookup, never per event.
    using ResolveResult = std::pair<boost::system::error_code, boost::asio::ip::tcp::resolver::results_type>;
    using Resolver = std::function<boost::asio::awaitable<ResolveResult>(std::string host, std::string port)>;
    void set_resolver(Resolver resolver) { resolver_ = std::move(resolver); }

    // POSTs `body` (Content-Type: application/json) with the extra `headers`.
    boost::asio::awaitable<AttemptOutcome> post(std::string_view body, const HeaderList& headers);

    // Applies new options (reload); idle connections to a changed endpoint are dropped. The TLS
    // context is rebuilt when ca_file's path or contents changed, so the next connection
    // verifies against a bundle replaced at the same path.
    void update(HttpClientOptions options);
    void close_idle();

    std::size_t open_connections() const { return *open_connections_; }
    std::size_t connections_opened() const { return connections_opened_; }
    std::size_t lookups_started() const { return lookups_started_; }  // name lookups, shared or not
    const HttpClientOptions& options() const;

    struct Lookup;  // a name lookup shared by the attempts waiting for it (defined in the .cpp)

private:
    struct Endpoint;
    using Connection = HttpConnection;
    struct Connected;
    struct Exchanged;
    // One step per phase, as Beast's examples go: resolve, TCP connect, then for https:// SNI and
    // certificate checks and the handshake; each ends at the attempt's deadline.
    boost::asio::awaitable<Connected> connect(std::shared_ptr<const Endpoint> endpoint,
                                              std::chrono::steady_clock::time_point deadline);
    boost::asio::awaitable<std::optional<AttemptOutcome>> resolve(
        const Endpoint& endpoint, std::chrono::steady_clock::time_point deadline,
        boost::asio::ip::tcp::resolver::results_type& addresses);
    // The request and its response on one connection, inline in post() (no coroutine frame of its
    // own): the request head, then what came back.
    static void write_head(const Endpoint& endpoint, std::size_t body_size, const HeaderList& headers,
                           std::string& head);
    Exchanged conclude_exchange(Connection& connection, const Endpoint& endpoint, boost::system::error_code ec,
                                HttpResponseReader& reader);
    std::unique_ptr<Connection> take_idle(std::uint64_t generation);

    boost::asio::any_io_executor executor_;
    Logger& logger_;
    std::shared_ptr<const Endpoint> endpoint_;  // replaced, never modified, by update()
    std::vector<std::unique_ptr<Connection>> idle_;
    boost::asio::ip::tcp::resolver::results_type endpoints_;
    bool resolve_needed_ = true;
    Resolver resolver_;                      // empty: Asio's
    std::shared_ptr<Lookup> lookup_;         // the name lookup in progress, shared by every attempt waiting for it
    std::uint64_t endpoint_generation_ = 0;  // bumped by update() when the endpoint changes
    // Shared with every Connection, which counts itself for exactly its lifetime (it may outlive
    // the client in a coroutine frame destroyed later).
    std::shared_ptr<std::size_t> open_connections_ = std::make_shared<std::size_t>(0);
    std::size_t connections_opened_ = 0;
    std::size_t lookups_started_ = 0;
};

// Maps an I/O error of an attempt to the outcome the retry policy and the failure log use
// (Node-style codes: ECONNREFUSED, ETIMEDOUT, ECONNRESET, ENOTFOUND, ...).
AttemptOutcome outcome_from_error(const boost::system::error_code& ec, std::string_view phase, std::string_view peer,
                                  std::chrono::milliseconds timeout);
// A failed TLS handshake: the certificate's verification error (CERT_HAS_EXPIRED,
// ERR_TLS_CERT_ALTNAME_INVALID ...) when there is one, else as outcome_from_error.
AttemptOutcome outcome_from_handshake(const boost::system::error_code& ec, long verify_result, std::string_view peer,
                                      std::chrono::milliseconds timeout);

}  // namespace avr_webhookd
