#include <avr_webhookd/delivery/http_client.hpp>
#include <avr_webhookd/common/rethrow.hpp>
#include <avr_webhookd/delivery/http_connection.hpp>
#include <avr_webhookd/delivery/tls_client.hpp>
#include <avr_webhookd/delivery/http_response_reader.hpp>
#include <avr_webhookd/delivery/retry_policy.hpp>

#include <avr_webhookd/version.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/ssl.h>

#include <array>
#include <charconv>
#include <optional>
#include <stdexcept>

namespace avr_webhookd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using detail::set_server_identity;

namespace {

constexpr HttpResponseLimits response_limits{};  // 16 KiB head, 64 KiB body (README, Limits)
constexpr std::size_t response_snippet = 200;    // how much of an error body a log line repeats

// The part of a request head that is the same for every event.
std::string fixed_head(const Url& url) {
    return "POST " + url.target + " HTTP/1.1\r\nHost: " + url.host_header + "\r\nUser-Agent: avr-webhookd/" +
           std::string(version) + "\r\nContent-Type: application/json\r\n" +
           (url.authorization.empty() ? "" : "Authorization: " + url.authorization + "\r\n");
}

}  // namespace

// A name lookup that attempts stop waiting for at their deadlines. getaddrinfo cannot be
// cancelled and Asio runs lookups one after another on a single thread, so there is at most one
// per client, shared by every attempt that needs it: with the DNS server down, attempts time out
// while that one lookup goes on, instead of piling up lookups that would still be queued long
// after DNS came back.
struct HttpClient::Lookup {
    std::uint64_t generation = 0;  // the endpoint it resolves
    bool finished = false;
    boost::system::error_code error;
    tcp::resolver::results_type results;
    std::vector<std::shared_ptr<asio::steady_timer>> waiters;  // each expires at its attempt's deadline
};

namespace {

awaitable<void> resolve_into(std::shared_ptr<HttpClient::Lookup> lookup, HttpClient::Resolver resolve, std::string host,
                             std::string port) {
    HttpClient::ResolveResult found;
    if (resolve) {
        found = co_await resolve(std::move(host), std::move(port));
    } else {
        tcp::resolver resolver(co_await asio::this_coro::executor);
        auto [error, addresses] = co_await resolver.async_resolve(host, port, as_tuple(use_awaitable));
        found = {error, std::move(addresses)};
    }
    auto& [ec, results] = found;
    lookup->error = ec;
    lookup->results = std::move(results);
    lookup->finished = true;
    for (const auto& waiter : lookup->waiters) waiter->cancel();
    lookup->waiters.clear();
}

}  // namespace

// What one attempt needs of the configuration, fixed when it starts: update() makes a new one.
struct HttpClient::Endpoint {
    HttpClientOptions options;
    std::shared_ptr<ssl::context> tls_context;  // null for http://
    std::string ca_fingerprint;                 // of the ca_file tls_context was built with
    std::string fixed_head;                     // request line, Host, User-Agent, Content-Type
    std::string peer;                           // host:port, for messages
    std::uint64_t generation = 0;
};

struct HttpClient::Connected {
    std::unique_ptr<Connection> connection;
    AttemptOutcome failure;
};

struct HttpClient::Exchanged {
    AttemptOutcome outcome;
    bool reusable = false;          // complete keep-alive response, nothing unread
    bool response_started = false;  // some response byte arrived
};

HttpClient::HttpClient(asio::any_io_executor executor, HttpClientOptions options, Logger& logger)
    : executor_(std::move(executor)), logger_(logger) {
    update(std::move(options));
}

HttpClient::~HttpClient() = default;

const HttpClientOptions& HttpClient::options() const { return endpoint_->options; }

void HttpClient::update(HttpClientOptions options) {
    auto endpoint = std::make_shared<Endpoint>();
    const auto* old = endpoint_.get();
    endpoint->ca_fingerprint = options.url.tls ? ca_file_fingerprint(options.ca_file) : std::string{};
    const bool endpoint_changed =
        !old || options.url.tls != old->options.url.tls || options.url.host != old->options.url.host ||
        options.url.port != old->options.url.port || options.tls_verify != old->options.tls_verify ||
        options.ca_file != old->options.ca_file || endpoint->ca_fingerprint != old->ca_fingerprint;
    if (endpoint_changed) {
        endpoint->tls_context =
            options.url.tls ? make_tls_client_context(options.tls_verify, options.ca_file) : nullptr;
        if (old) {
            close_idle();
            ++endpoint_generation_;  // connections open now are not kept once their attempt ends
            resolve_needed_ = true;
        }
    } else {
        endpoint->tls_context = old->tls_context;
    }
    endpoint->fixed_head = fixed_head(options.url);
    endpoint->peer = options.url.host + ":" + options.url.port;
    endpoint->generation = endpoint_generation_;
    endpoint->options = std::move(options);
    endpoint_ = std::move(endpoint);
}

void HttpClient::close_idle() { idle_.clear(); }

std::unique_ptr<HttpClient::Connection> HttpClient::take_idle(std::uint64_t generation) {
    while (!idle_.empty()) {
        auto connection = std::move(idle_.back());
        idle_.pop_back();
        if (connection->endpoint_generation == generation && connection->take()) return connection;
        logger_.debug("delivery: dropped a keep-alive connection the server had closed or written on while idle");
    }
    return nullptr;
}

namespace {

using PhaseFailure = std::optional<AttemptOutcome>;  // why a phase failed, if it did

// Phase 2: a TCP connection to the first address that answers, by the deadline.
awaitable<PhaseFailure> connect_tcp(beast::tcp_stream& stream, const tcp::resolver::results_type& addresses,
                                    const std::string& peer, std::chrono::milliseconds timeout,
                                    Clock::time_point deadline) {
    stream.expires_at(deadline);
    auto [ec, address] = co_await stream.async_connect(addresses, as_tuple(use_awaitable));
    if (!ec && Clock::now() >= deadline) ec = beast::error::timeout;
    if (ec) co_return outcome_from_error(ec, "connect", peer, timeout);
    stream.socket().set_option(tcp::no_delay(true), ec);
    co_return std::nullopt;
}

// Phase 3: SNI, and with tls_verify the check of the certificate's names.
PhaseFailure prepare_tls(beast::ssl_stream<beast::tcp_stream>& tls, const std::string& host, bool verify) {
    if (set_server_identity(tls, host, verify)) return std::nullopt;
    AttemptOutcome outcome;
    outcome.kind = FailureKind::tls;
    outcome.code = "ERR_TLS_HANDSHAKE";
    outcome.message = "cannot set TLS SNI host name " + host;
    return outcome;
}

// Phase 4: the TLS handshake, by the deadline.
awaitable<PhaseFailure> tls_handshake(beast::ssl_stream<beast::tcp_stream>& tls, const std::string& peer,
                                      std::chrono::milliseconds timeout, Clock::time_point deadline) {
    beast::get_lowest_layer(tls).expires_at(deadline);
    auto [ec] = co_await tls.async_handshake(ssl::stream_base::client, as_tuple(use_awaitable));
    if (!ec && Clock::now() >= deadline) ec = beast::error::timeout;
    if (!ec) co_return std::nullopt;
    co_return outcome_from_handshake(ec, SSL_get_verify_result(tls.native_handle()), peer, timeout);
}

}  // namespace

// Phase 1: the endpoint's addresses: those found before, or those of the client's one lookup in
// progress (started when none is), waited for until the deadline.
awaitable<PhaseFailure> HttpClient::resolve(const Endpoint& endpoint, Clock::time_point deadline,
                                            tcp::resolver::results_type& addresses) {
    addresses = endpoints_;
    if (!resolve_needed_ && !addresses.empty() && endpoint.generation == endpoint_generation_) co_return std::nullopt;
    const auto& url = endpoint.options.url;
    if (!lookup_ || lookup_->finished || lookup_->generation != endpoint.generation) {
        lookup_ = std::make_shared<Lookup>();
        lookup_->generation = endpoint.generation;
        ++lookups_started_;
        asio::co_spawn(executor_, resolve_into(lookup_, resolver_, url.host, url.port), detail::rethrow_exceptions);
    }
    const auto lookup = lookup_;
    const auto now = Clock::now();
    std::erase_if(lookup->waiters, [&](const auto& waiter) { return waiter->expiry() <= now; });
    lookup->waiters.push_back(std::make_shared<asio::steady_timer>(executor_, deadline));
    const auto waiter = lookup->waiters.back();
    co_await waiter->async_wait(as_tuple(use_awaitable));
    if (!lookup->finished)
        co_return outcome_from_error(beast::error::timeout, "resolve", endpoint.peer, endpoint.options.timeout);
    if (lookup->error) co_return outcome_from_error(lookup->error, "resolve", url.host, endpoint.options.timeout);
    addresses = lookup->results;
    if (endpoint.generation == endpoint_generation_) {  // still the endpoint we are configured for
        endpoints_ = addresses;
        resolve_needed_ = false;
    }
    co_return std::nullopt;
}

// GCC 12 sees Asio's frame allocator (thread_info_base: aligned_new, then the frame's own operator
// delete) as a mismatched new/delete once this frame's clean-up is inlined: a false positive of its
// coroutine lowering, for this function only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
// Everything after an await reads only `endpoint` (this attempt's snapshot) and locals: a reload
// may replace endpoint_, its TLS context and options while this waits.
awaitable<HttpClient::Connected> HttpClient::connect(std::shared_ptr<const Endpoint> endpoint,
                                                     Clock::time_point deadline) {
    const auto& url = endpoint->options.url;
    const auto timeout = endpoint->options.timeout;
    tcp::resolver::results_type addresses;
    if (auto failure = co_await resolve(*endpoint, deadline, addresses))
        co_return Connected{nullptr, std::move(*failure)};

    beast::tcp_stream stream(executor_);
    if (auto failure = co_await connect_tcp(stream, addresses, endpoint->peer, timeout, deadline)) {
        resolve_needed_ = true;  // the address may have moved
        co_return Connected{nullptr, std::move(*failure)};
    }
    ++connections_opened_;
    auto connection = url.tls ? std::make_unique<Connection>(std::move(stream), endpoint->tls_context,
                                                             open_connections_, response_limits)
                              : std::make_unique<Connection>(std::move(stream), open_connections_, response_limits);
    connection->endpoint_generation = endpoint->generation;
    if (!url.tls) co_return Connected{std::move(connection), {}};

    if (auto failure = prepare_tls(*connection->tls, url.host, endpoint->options.tls_verify))
        co_return Connected{nullptr, std::move(*failure)};
    if (auto failure = co_await tls_handshake(*connection->tls, endpoint->peer, timeout, deadline)) {
        resolve_needed_ = true;  // perhaps another host answers at that address now
        co_return Connected{nullptr, std::move(*failure)};
    }
    co_return Connected{std::move(connection), {}};
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace {

AttemptOutcome outcome_from_response(HttpResponse& response) {
    AttemptOutcome outcome;
    outcome.status = response.status;
    outcome.body = std::move(response.body);
    if (outcome.status >= 200 && outcome.status < 300) return outcome;
    outcome.kind = FailureKind::http_status;
    outcome.code = "HTTP " + std::to_string(outcome.status);
    outcome.message = "Request failed with status code " + std::to_string(outcome.status);
    if (!response.reason.empty()) outcome.message += " " + response.reason;
    outcome.location = response.location;
    if (!response.retry_after.empty())
        outcome.retry_after = parse_retry_after(response.retry_after, std::chrono::system_clock::now());
    if (!outcome.body.empty()) outcome.message += ": " + outcome.body.substr(0, response_snippet);
    return outcome;
}

}  // namespace

// The head is written by hand: Beast's serializer took about 40% of the daemon's instructions per
// event (tests/bench/README.md). Into the connection's buffer, which keeps its room from one
// request to the next: the endpoint's fixed part (made once per configuration), the attempt's
// header lines as they are, and Content-Length. Every header value is validated printable ASCII
// (event id, agent_id) or made by us, so none can break the framing.
void HttpClient::write_head(const Endpoint& endpoint, std::size_t body_size, const HeaderList& headers,
                            std::string& head) {
    char length[20];
    const auto length_end = std::to_chars(length, length + sizeof length, body_size).ptr;
    head.assign(endpoint.fixed_head);
    head.append(headers.wire());
    head.append("Content-Length: ").append(length, length_end).append("\r\n\r\n");
}

HttpClient::Exchanged HttpClient::conclude_exchange(Connection& connection, const Endpoint& endpoint,
                                                    boost::system::error_code ec, HttpResponseReader& reader) {
    connection.reused = true;
    Exchanged result;
    result.response_started = reader.bytes_received() > 0;
    if (ec) {
        result.outcome = outcome_from_error(ec, "POST", endpoint.peer, endpoint.options.timeout);
        return result;
    }
    if (reader.state() == HttpResponseReader::State::failed) {
        const bool reset = reader.failure() == HttpResponseReader::Failure::reset;
        result.outcome.kind = reset ? FailureKind::reset : FailureKind::protocol;
        result.outcome.code = reset ? "ECONNRESET" : "EPROTO";
        result.outcome.message = reset
                                     ? "socket hang up: " + reader.failure_message() + " (POST " + endpoint.peer + ")"
                                     : "invalid HTTP response from " + endpoint.peer + ": " + reader.failure_message();
        return result;
    }
    auto& response = reader.response();
    if (response.body_truncated)
        logger_.warn("delivery: response of " + endpoint.peer + " (HTTP " + std::to_string(response.status) +
                     ") has a body larger than " + std::to_string(response_limits.body) +
                     " bytes; its status counts, the connection is closed");
    // Decrypted bytes OpenSSL holds beyond the response are unread too.
    result.reusable = reader.reusable() && !(connection.tls && SSL_pending(connection.tls->native_handle()) > 0);
    result.outcome = outcome_from_response(response);
    return result;
}

// The exchange, inline here (no coroutine frame of its own): the request is written and the
// response read with non-blocking calls made when the socket is ready (HttpConnection), so that
// the usual request costs one send, one receive and one wait for readiness (Asio's epoll_ctl).
awaitable<AttemptOutcome> HttpClient::post(std::string_view body, const HeaderList& headers) {
    const auto endpoint = endpoint_;  // this attempt's configuration, whatever a reload does meanwhile
    const auto deadline = Clock::now() + endpoint->options.timeout;
    for (;;) {
        auto connection = take_idle(endpoint->generation);
        if (!connection) {
            auto connected = co_await connect(endpoint, deadline);
            if (!connected.connection) co_return std::move(connected.failure);
            connection = std::move(connected.connection);
        }
        const bool was_reused = connection->reused;
        write_head(*endpoint, body.size(), headers, connection->head);
        HttpConnection::Request request{asio::buffer(connection->head), asio::buffer(body)};
        auto& reader = connection->reader;
        reader.restart();
        connection->begin_exchange(deadline);
        boost::system::error_code ec;
        if (!connection->tls) ec = connection->send_now(request);
        if (!ec && asio::buffer_size(request) > 0) {  // TLS, or more than the socket took at once
            auto [write_error, written] =
                connection->tls
                    ? co_await asio::async_write(*connection->tls, request, as_tuple(use_awaitable))
                    : co_await asio::async_write(connection->plain->socket(), request, as_tuple(use_awaitable));
            ec = write_error;
        }
        while (!ec && reader.state() == HttpResponseReader::State::reading) {
            if (!connection->readable()) {
                auto [wait_error] = co_await connection->async_wait_readable(as_tuple(use_awaitable));
                if ((ec = wait_error)) break;
            }
            ec = connection->read_now(reader);
            if (ec || reader.state() != HttpResponseReader::State::reading) break;
            // A peer that keeps the reads busy with a byte now and then is cut off here.
            if (Clock::now() >= deadline) {
                ec = beast::error::timeout;
                break;
            }
            // read_now() stopped at its budget with more to read: the event loop runs first.
            if (connection->readable()) co_await asio::post(co_await asio::this_coro::executor, use_awaitable);
        }
        if (ec == asio::error::operation_aborted && connection->timed_out()) ec = beast::error::timeout;
        connection->end_exchange();
        auto exchanged = conclude_exchange(*connection, *endpoint, ec, reader);
        // A connection to the endpoint of before a reconfiguration is closed, not kept. Parked in
        // the handler of the read that ended the response (HttpConnection: the watch).
        if (exchanged.reusable && connection->endpoint_generation == endpoint_generation_ &&
            idle_.size() < endpoint_->options.max_idle_connections) {
            connection->park();
            idle_.push_back(std::move(connection));
        }
        // A kept-alive connection the server dropped just as we reused it: the request never
        // reached it, so try once more on a fresh connection within the same attempt.
        if (was_reused && !exchanged.response_started && exchanged.outcome.kind == FailureKind::reset &&
            Clock::now() < deadline) {
            logger_.debug("delivery: reused connection was closed by the server; reconnecting");
            continue;
        }
        co_return std::move(exchanged.outcome);
    }
}

}  // namespace avr_webhookd
