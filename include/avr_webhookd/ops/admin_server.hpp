#pragma once

#include <avr_webhookd/common/http_request_reader.hpp>
#include <avr_webhookd/ops/admin_address.hpp>
#include <avr_webhookd/ops/logger.hpp>
#include <avr_webhookd/ops/metrics.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/beast/http/verb.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace avr_webhookd {

namespace detail {
struct AdminServerState;
}  // namespace detail

// What /healthz and /readyz report, asked for on every request.
struct AdminStatus {
    bool accepting = false;                // the intake accepts events
    std::optional<std::string> unhealthy;  // why delivery is stuck, e.g. "receiver down for 5m"
};

inline constexpr std::string_view prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";

// One admin response before it becomes HTTP (sans-io, so the route table is unit-tested).
struct AdminResponse {
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;   // for HEAD: the body a GET would get; only its length is sent
    std::string allow;  // the Allow header of a 405
    std::vector<std::pair<std::string, std::string>> headers;  // more, e.g. Content-Security-Policy
};

// The route table. GET or HEAD on /healthz (200 "ok" when accepting and healthy, else 503 with
// the reason), /readyz (200 when accepting, else 503) and /metrics (the Prometheus text); other
// methods on those paths get 405, other paths 404. A query string is ignored. `status` is called
// for /healthz and /readyz only, `metrics` for /metrics only. With `status_json`, "/" and
// "/status" are the status page and its JSON (ops/status_page.hpp: route_status_request).
AdminResponse route_admin_request(boost::beast::http::verb method, std::string_view target,
                                  const std::function<AdminStatus()>& status,
                                  const std::function<std::string()>& metrics,
                                  const std::function<std::string()>& status_json = {});

// The admin endpoint's limits, so that no client (a slowloris holding partial requests, idle
// keep-alive connections) can keep /healthz from answering.
struct AdminLimits {
    // To read one request, from the end of the previous response (idle keep-alive included) to the
    // end of its head and body; past it the connection is closed and counted as timed out.
    std::chrono::milliseconds request_deadline{5000};
    std::chrono::milliseconds response_deadline{10000};  // to write one response
    // Connections open at once. A new one past the limit evicts the oldest connection that is
    // waiting for (or still reading) a request; only when all are busy answering is it closed.
    std::size_t max_connections = 16;
    // Header and body together (chunk framing and trailers included): past it 431 (in the head)
    // or 413, and the connection is closed; so are the framing errors HttpRequestReader refuses.
    std::size_t max_request_bytes = 16 * 1024;
    std::size_t max_header_fields = 100;  // past it 431 and the connection is closed
};

// The bounds HttpRequestReader applies to one admin request.
HttpRequestLimits admin_request_limits(const AdminLimits& limits);

// What the admin limits did, also added to a Metrics given to the server.
struct AdminCounters {
    std::uint64_t connections_evicted = 0;
    std::uint64_t connections_refused = 0;
    std::uint64_t requests_timed_out = 0;
    std::uint64_t requests_refused = 0;  // answered 400, 413 or 431 by HttpRequestReader's rules
};

// The admin HTTP/1.1 endpoint: /healthz, /readyz and /metrics, with keep-alive. Runs on the
// io_context's thread; status() and metrics() are called there, per request.
class AdminServer {
public:
    AdminServer(boost::asio::io_context& io, std::string listen, std::function<AdminStatus()> status,
                std::function<std::string()> metrics, Logger& logger, AdminLimits limits = {},
                Metrics* counted_in = nullptr);  // admin_* counters are added there too (io thread)
    ~AdminServer();                              // stop()
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    // Binds and starts accepting. Throws std::runtime_error with a message naming the address
    // when it is invalid or cannot be bound. A Unix socket path that is a stale socket (nobody
    // listening) is replaced; a live one or a non-socket file is an error.
    void start();
    // Serves the status page at "/" and its JSON, rendered by `status_json`, at "/status" (called
    // per request on the io thread, like metrics()). Call before start().
    void serve_status(std::function<std::string()> status_json);
    // Stops accepting, closes open admin connections and removes our Unix socket file. Idempotent.
    // Afterwards status() and metrics() are no longer called.
    void stop();

    // The bound address, with the real port when 0 was asked for; the `listen` text before start().
    std::string local_address() const;
    std::size_t connection_count() const;
    AdminCounters counters() const;

private:
    std::shared_ptr<detail::AdminServerState> state_;  // shared with the coroutines, which may outlive this object
};

}  // namespace avr_webhookd
