#pragma once

#include <avr_webhookd/logger.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/beast/http/verb.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

namespace detail {
struct AdminServerState;
}  // namespace detail

// What /healthz and /readyz report, asked for on every request.
struct AdminStatus {
    bool accepting = false;                 // the intake accepts events
    std::optional<std::string> unhealthy;   // why delivery is stuck, e.g. "receiver down for 5m"
};

// Where the admin endpoint listens (setting `admin`).
struct AdminAddress {
    std::string unix_path;  // set: a Unix stream socket at this absolute path; host and port unused
    std::string host;       // IPv4 or IPv6 literal (without brackets) or a name such as localhost
    std::string port;       // decimal 0..65535; 0 (tests only) picks a free port

    bool is_unix() const { return !unix_path.empty(); }
};

// "HOST:PORT", "[IPv6]:PORT" or an absolute Unix socket path. On failure returns nullopt and,
// when `error` is given, stores a one-line reason in it.
std::optional<AdminAddress> parse_admin_address(std::string_view text, std::string* error = nullptr);

// "127.0.0.1:9464", "[::1]:9464" or the socket path.
std::string to_string(const AdminAddress& address);

inline constexpr std::string_view prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";

// One admin response before it becomes HTTP (sans-io, so the route table is unit-tested).
struct AdminResponse {
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;   // for HEAD: the body a GET would get; only its length is sent
    std::string allow;  // the Allow header of a 405
};

// The route table. GET or HEAD on /healthz (200 "ok" when accepting and healthy, else 503 with
// the reason), /readyz (200 when accepting, else 503) and /metrics (the Prometheus text); other
// methods on those paths get 405, other paths 404. A query string is ignored. `status` is called
// for /healthz and /readyz only, `metrics` for /metrics only.
AdminResponse route_admin_request(boost::beast::http::verb method, std::string_view target,
                                  const std::function<AdminStatus()>& status,
                                  const std::function<std::string()>& metrics);

struct AdminLimits {
    std::chrono::milliseconds request_deadline{10000};  // to read one request (idle keep-alive included) or write its response
    std::size_t max_connections = 16;                   // more are closed at once
    std::size_t max_request_bytes = 16 * 1024;          // header and body together
};

// The admin HTTP/1.1 endpoint: /healthz, /readyz and /metrics, with keep-alive. Runs on the
// io_context's thread; status() and metrics() are called there, per request.
class AdminServer {
public:
    AdminServer(boost::asio::io_context& io, std::string listen, std::function<AdminStatus()> status,
                std::function<std::string()> metrics, Logger& logger, AdminLimits limits = {});
    ~AdminServer();  // stop()
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    // Binds and starts accepting. Throws std::runtime_error with a message naming the address
    // when it is invalid or cannot be bound. A Unix socket path that is a stale socket (nobody
    // listening) is replaced; a live one or a non-socket file is an error.
    void start();
    // Stops accepting, closes open admin connections and removes our Unix socket file. Idempotent.
    // Afterwards status() and metrics() are no longer called.
    void stop();

    // The bound address, with the real port when 0 was asked for; the `listen` text before start().
    std::string local_address() const;
    std::size_t connection_count() const;

private:
    std::shared_ptr<detail::AdminServerState> state_;  // shared with the coroutines, which may outlive this object
};

}  // namespace avr_webhookd
