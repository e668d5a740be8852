#include <avr_webhookd/ops/admin_server.hpp>
#include <avr_webhookd/ops/status_page.hpp>
#include <avr_webhookd/common/accept_pause.hpp>
#include <avr_webhookd/common/host_port.hpp>
#include <avr_webhookd/common/read_http_request.hpp>
#include <avr_webhookd/common/unix_socket.hpp>
#include <avr_webhookd/common/text.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>


#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>
#include <stdexcept>

namespace avr_webhookd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;
using stream_protocol = asio::local::stream_protocol;

namespace {

constexpr unsigned admin_socket_mode = 0660;
constexpr auto linger_time = std::chrono::seconds(1);  // reading what a refused client still sends
constexpr std::size_t linger_bytes = 64 * 1024;

AdminResponse plain(unsigned status, std::string body) {
    AdminResponse response;
    response.status = status;
    response.body = std::move(body);
    return response;
}

std::string endpoint_text(const tcp::endpoint& endpoint) {
    return format_host_port(endpoint.address().to_string(), endpoint.port());
}

}  // namespace

AdminResponse route_admin_request(http::verb method, std::string_view target,
                                  const std::function<AdminStatus()>& status,
                                  const std::function<std::string()>& metrics,
                                  const std::function<std::string()>& status_json) {
    const auto path = target.substr(0, target.find('?'));
    if (status_json)
        if (auto response = route_status_request(method, path, status_json)) return std::move(*response);
    if (path != "/healthz" && path != "/readyz" && path != "/metrics") return plain(404, "not found\n");
    if (method != http::verb::get && method != http::verb::head) {
        auto response = plain(405, "method not allowed\n");
        response.allow = "GET, HEAD";
        return response;
    }
    if (path == "/metrics") {
        auto response = plain(200, metrics());
        response.content_type = prometheus_content_type;
        return response;
    }
    const AdminStatus now = status();
    if (!now.accepting) return plain(503, "not accepting events\n");
    if (path == "/healthz" && now.unhealthy)
        return plain(503, std::string{without_trailing_newlines(*now.unhealthy)} + "\n");
    return plain(200, path == "/healthz" ? "ok\n" : "ready\n");
}

HttpRequestLimits admin_request_limits(const AdminLimits& limits) {
    HttpRequestLimits bounds;
    bounds.request = limits.max_request_bytes;
    bounds.head = limits.max_request_bytes;
    bounds.body = limits.max_request_bytes;
    bounds.fields = limits.max_header_fields;
    return bounds;
}

// Where an admin connection is: one that waits for a request may be evicted, and so may one whose
// answer has not been taken for stalled_answer (a client that asks and does not read).
enum class AdminConnectionPhase { reading_request, answering };

constexpr std::chrono::seconds stalled_answer{1};

struct AdminConnection {
    std::function<void()> close;
    AdminConnectionPhase phase = AdminConnectionPhase::reading_request;
    std::chrono::steady_clock::time_point answering_since = std::chrono::steady_clock::time_point::max();
};

struct detail::AdminServerState {
    AdminServerState(asio::io_context& io_, std::string listen_, std::function<AdminStatus()> status_,
                     std::function<std::string()> metrics_, Logger& logger_, AdminLimits limits_, Metrics* counted_in_)
        : io(io_),
          listen(std::move(listen_)),
          status(std::move(status_)),
          metrics(std::move(metrics_)),
          logger(logger_),
          limits(limits_),
          counted_in(counted_in_) {}

    asio::io_context& io;
    std::string listen;
    std::function<AdminStatus()> status;
    std::function<std::string()> metrics;
    std::function<std::string()> status_json;  // empty: no status page
    Logger& logger;
    AdminLimits limits;
    std::optional<tcp::acceptor> tcp_acceptor;
    std::optional<stream_protocol::acceptor> unix_acceptor;
    std::string bound_address;
    std::string socket_path;  // set while we own a socket file
    unsigned long long socket_inode = 0;
    bool running = false;
    Metrics* counted_in;
    AdminCounters counters;
    std::map<std::uint64_t, AdminConnection> connections;  // by id, so the oldest comes first
    std::uint64_t next_connection_id = 1;
    bool warned_connection_limit = false;
    bool warned_timeout = false;
    std::uint32_t warned_refusals = 0;  // a bit per HttpRequestRefusal logged at warn level once

    // Logged at warn the first time (then debug: a scanner must not flood the log), always counted.
    void note_timeout() {
        ++counters.requests_timed_out;
        if (counted_in) ++counted_in->admin_requests_timed_out;
        const std::string message = "admin: closed a connection that sent no complete request within " +
                                    std::to_string(limits.request_deadline.count()) +
                                    "ms (counted in avr_webhookd_admin_requests_timed_out_total)";
        warned_timeout ? logger.debug(message) : logger.warn(message);
        warned_timeout = true;
    }
    // A request past a bound or against the framing rules: answered with its status, then closed.
    void note_refusal(const HttpRequestReader& reader) {
        const auto reason = http_refusal_reason(reader.refusal());
        ++counters.requests_refused;
        if (counted_in) ++Metrics::at(counted_in->admin_requests_refused, reason);
        const std::string message = "admin: refused a request with " + std::to_string(reader.refusal_status()) +
                                    " and closed the connection: " + reader.refusal_message() +
                                    " (counted in avr_webhookd_http_requests_refused_total{intake=\"admin\",reason=\"" +
                                    std::string(reason) + "\"})";
        const auto bit = std::uint32_t{1} << static_cast<unsigned>(reader.refusal());
        (warned_refusals & bit) ? logger.debug(message) : logger.warn(message);
        warned_refusals |= bit;
    }
    void note_limit(bool evicted) {
        ++(evicted ? counters.connections_evicted : counters.connections_refused);
        if (counted_in) ++(evicted ? counted_in->admin_connections_evicted : counted_in->admin_connections_refused);
        const std::string message = "admin: " + std::to_string(limits.max_connections) + " admin connections open; " +
                                    (evicted ? "closed the oldest one waiting for a request to serve a new one"
                                             : "all are answering, closed the new one") +
                                    " (counted in avr_webhookd_admin_connections_" + (evicted ? "evicted" : "refused") +
                                    "_total)";
        warned_connection_limit ? logger.debug(message) : logger.warn(message);
        warned_connection_limit = true;
    }
    // Makes room for one more connection; false when every connection is busy answering.
    bool make_room() {
        if (connections.size() < limits.max_connections) return true;
        auto it = std::find_if(connections.begin(), connections.end(), [](const auto& entry) {
            return entry.second.phase == AdminConnectionPhase::reading_request;
        });
        const auto stalled_since = std::chrono::steady_clock::now() - stalled_answer;
        if (it == connections.end())
            it = std::find_if(connections.begin(), connections.end(), [&](const auto& entry) {
                return entry.second.answering_since <= stalled_since;  // answering, its answer not read
            });
        if (it != connections.end()) {
            auto close = std::move(it->second.close);
            connections.erase(it);  // its coroutine ends on the closed socket and erases nothing more
            close();
            note_limit(true);
            return true;
        }
        note_limit(false);
        return false;
    }
    void set_phase(std::uint64_t id, AdminConnectionPhase phase) {
        const auto it = connections.find(id);
        if (it == connections.end()) return;
        it->second.phase = phase;
        it->second.answering_since = phase == AdminConnectionPhase::answering
                                         ? std::chrono::steady_clock::now()
                                         : std::chrono::steady_clock::time_point::max();
    }
};

// Coroutines get the state by shared_ptr and check `running` after every wait, so stop() (and
// the server's destruction) only leaves them finishing on cancellation errors.
namespace {

using AdminState = detail::AdminServerState;

http::response<http::string_body> admin_response(AdminState& state, const http::request<http::string_body>& request) {
    const AdminResponse routed =
        route_admin_request(request.method(), request.target(), state.status, state.metrics, state.status_json);
    http::response<http::string_body> response{static_cast<http::status>(routed.status), request.version()};
    response.set(http::field::content_type, routed.content_type);
    response.set(http::field::cache_control, "no-store");
    if (!routed.allow.empty()) response.set(http::field::allow, routed.allow);
    for (const auto& [name, value] : routed.headers) response.set(name, value);
    response.keep_alive(request.keep_alive());
    response.content_length(routed.body.size());
    if (request.method() != http::verb::head) response.body() = routed.body;
    return response;
}

http::response<http::string_body> refusal_response(const HttpRequestReader& reader) {
    http::response<http::string_body> response{static_cast<http::status>(reader.refusal_status()), reader.version()};
    response.set(http::field::content_type, "text/plain; charset=utf-8");
    response.set(http::field::cache_control, "no-store");
    response.keep_alive(false);
    response.body() = reader.refusal_message() + "\n";
    response.prepare_payload();
    return response;
}

template <class Protocol>
awaitable<void> serve(std::shared_ptr<AdminState> state, typename Protocol::socket socket) {
    beast::basic_stream<Protocol> stream(std::move(socket));
    const auto id = state->next_connection_id++;
    state->connections.emplace(id, AdminConnection{[&stream] { stream.close(); }});
    // The entry's close() refers to `stream`: it must go with this frame whatever ends it, an
    // exception included (the coroutine is detached), or make_room()/stop() would call freed memory.
    struct Forget {
        AdminState& state;
        std::uint64_t id;
        ~Forget() { state.connections.erase(id); }
    } forget{*state, id};
    HttpRequestReader reader(admin_request_limits(state->limits));
    bool refused = false;

    for (bool first = true; state->running && state->connections.contains(id); first = false) {
        state->set_phase(id, AdminConnectionPhase::reading_request);
        // One deadline for the whole request, however fast its bytes come.
        const auto deadline = std::chrono::steady_clock::now() + state->limits.request_deadline;
        const auto read_error = co_await read_http_request(stream, reader, deadline, ContinueReply::ignore);
        if (!state->running || !state->connections.contains(id)) break;  // stopped, or evicted
        if (reader.state() == HttpRequestReader::State::refused) {
            state->note_refusal(reader);
            auto response = refusal_response(reader);
            stream.expires_after(state->limits.response_deadline);
            co_await http::async_write(stream, response, as_tuple(use_awaitable));
            refused = true;
            break;
        }
        if (reader.state() != HttpRequestReader::State::complete) {
            // A keep-alive connection idle past the deadline is simply done; a partial request or a
            // connection that never sent one is what a slowloris does.
            if (read_error == beast::error::timeout && (first || reader.got_some())) state->note_timeout();
            break;
        }
        state->set_phase(id, AdminConnectionPhase::answering);
        auto response = admin_response(*state, reader.request());
        stream.expires_after(state->limits.response_deadline);
        auto [write_error, written] = co_await http::async_write(stream, response, as_tuple(use_awaitable));
        if (write_error || !response.keep_alive()) break;
        reader.next();
    }
    if (refused && state->running && state->connections.contains(id)) {
        co_await linger_close(stream, linger_time, linger_bytes);  // still counted, and evictable
        state->connections.erase(id);
    } else if (state->connections.erase(id) > 0) {
        beast::error_code ignored;
        stream.socket().shutdown(Protocol::socket::shutdown_send, ignored);
        stream.close();
    }
}

template <class Acceptor>
awaitable<void> accept_loop(std::shared_ptr<AdminState> state, Acceptor& acceptor) {
    using Protocol = typename Acceptor::protocol_type;
    while (state->running) {
        auto [ec, socket] = co_await acceptor.async_accept(as_tuple(use_awaitable));
        if (!state->running) break;
        if (ec) {
            state->logger.warn("admin: accept failed: " + ec.message());
            co_await detail::pause_after_accept_error(state->io.get_executor());
            continue;
        }
        if (!state->make_room()) continue;  // the socket closes as it goes out of scope
        asio::co_spawn(state->io, serve<Protocol>(state, std::move(socket)), asio::detached);
    }
}

}  // namespace

namespace {

void bind_tcp(AdminState& state, const AdminAddress& address) {
    tcp::resolver resolver(state.io);
    boost::system::error_code ec;
    const auto endpoints = resolver.resolve(address.host, address.port, tcp::resolver::passive, ec);
    if (ec) throw std::runtime_error("cannot resolve admin address " + state.listen + ": " + ec.message());
    for (const auto& entry : endpoints) {
        tcp::acceptor acceptor(state.io);
        const auto endpoint = entry.endpoint();
        acceptor.open(endpoint.protocol(), ec);
        if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) acceptor.bind(endpoint, ec);
        if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) continue;
        state.bound_address = endpoint_text(acceptor.local_endpoint());
        state.tcp_acceptor.emplace(std::move(acceptor));
        return;
    }
    throw std::runtime_error("cannot listen on admin address " + state.listen + ": " +
                             (ec ? ec.message() : std::string{"no address found"}));
}

void bind_unix(AdminState& state, const std::string& path) {
    stream_protocol::acceptor acceptor(state.io);
    state.socket_inode = bind_unix_listener(acceptor, path, admin_socket_mode, "admin socket", "admin", state.logger);
    state.socket_path = path;
    state.bound_address = path;
    state.unix_acceptor.emplace(std::move(acceptor));
}

void remove_socket_file(AdminState& state) {
    if (state.socket_path.empty()) return;
    remove_own_socket_file(state.socket_path, state.socket_inode);
    state.socket_path.clear();
}

}  // namespace

AdminServer::AdminServer(asio::io_context& io, std::string listen, std::function<AdminStatus()> status,
                         std::function<std::string()> metrics, Logger& logger, AdminLimits limits, Metrics* counted_in)
    : state_(std::make_shared<detail::AdminServerState>(io, std::move(listen), std::move(status), std::move(metrics),
                                                        logger, limits, counted_in)) {}

AdminServer::~AdminServer() { stop(); }

void AdminServer::serve_status(std::function<std::string()> status_json) {
    state_->status_json = std::move(status_json);
}

void AdminServer::start() {
    auto& state = *state_;
    if (state.running) return;
    std::string error;
    const auto address = parse_admin_address(state.listen, &error);
    if (!address) throw std::runtime_error("invalid admin address \"" + state.listen + "\": " + error);
    try {
        if (address->is_unix()) bind_unix(state, address->unix_path);
        else bind_tcp(state, *address);
    } catch (...) {
        remove_socket_file(state);
        throw;
    }
    state.running = true;
    if (state.tcp_acceptor) asio::co_spawn(state.io, accept_loop(state_, *state.tcp_acceptor), asio::detached);
    else asio::co_spawn(state.io, accept_loop(state_, *state.unix_acceptor), asio::detached);
}

void AdminServer::stop() {
    auto& state = *state_;
    const bool was_running = state.running;
    state.running = false;
    boost::system::error_code ignored;
    if (state.tcp_acceptor) state.tcp_acceptor->close(ignored);
    if (state.unix_acceptor) state.unix_acceptor->close(ignored);
    remove_socket_file(state);
    for (const auto& [id, connection] : state.connections) connection.close();
    if (was_running) {
        // The callbacks may reference objects that die after stop(); coroutines finishing later
        // must not call them (they check `running`, but be sure).
        state.status = [] { return AdminStatus{}; };
        state.metrics = [] { return std::string{}; };
        if (state.status_json) state.status_json = [] { return std::string{"{}"}; };
    }
}

std::string AdminServer::local_address() const {
    return state_->bound_address.empty() ? state_->listen : state_->bound_address;
}

std::size_t AdminServer::connection_count() const { return state_->connections.size(); }

AdminCounters AdminServer::counters() const { return state_->counters; }

}  // namespace avr_webhookd
