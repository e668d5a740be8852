#include <avr_webhookd/intake/http_intake_server.hpp>
#include <avr_webhookd/common/accept_pause.hpp>
#include <avr_webhookd/intake/http_intake_request.hpp>

#include <avr_webhookd/common/host_port.hpp>
#include <avr_webhookd/common/read_http_request.hpp>
#include <avr_webhookd/common/rethrow.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <stdexcept>
#include <tuple>

namespace avr_webhookd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto room_poll_interval = std::chrono::milliseconds(50);
constexpr std::size_t logged_target_bytes = 200;
constexpr auto linger_time = std::chrono::seconds(2);  // reading what a closed client still sends
constexpr std::size_t linger_bytes = 1 << 20;
constexpr std::size_t request_bytes_over_max_line = 32 * 1024;  // http_max_request_bytes = 0: max_line + this

std::string endpoint_text(const tcp::endpoint& endpoint) {
    return format_host_port(endpoint.address().to_string(), endpoint.port());
}


}  // namespace

// Where a connection is: one waiting for a request or closing may be evicted, and only one
// waiting for a request is closed by stop(). closing: answered for the last time, reading what the client still sends
// (linger) before the close; the first to go at max_connections, as a client that gets one answer and holds its
// connection open must not take the slots from producers.
enum class HttpConnectionPhase { waiting_for_request, handling, closing };

struct HttpIntakeServer::Connection {
    Connection(tcp::socket socket, std::uint64_t id_, const HttpRequestLimits& limits)
        : stream(std::move(socket)), id(id_), reader(limits), wake(stream.get_executor()) {
        boost::system::error_code ec;
        const auto remote = stream.socket().remote_endpoint(ec);
        peer = ec ? std::string("unknown peer") : endpoint_text(remote);
    }
    std::string name() const { return "http connection " + std::to_string(id) + " (" + peer + ")"; }

    beast::tcp_stream stream;
    std::uint64_t id;
    std::string peer;
    HttpRequestReader reader;  // keeps what a client sent past one request for the next one
    HttpConnectionPhase phase = HttpConnectionPhase::waiting_for_request;
    std::uint64_t requests_answered = 0;
    Clock::time_point waiting_since = Clock::now();  // for a request, since connect or the last answer
    std::uint64_t waiting_ticket = 0;                // a 200 waiting for the spool; 0 = none
    bool lingers_uncounted = false;                  // closing, evicted: its slot is free
    asio::steady_timer wake;                         // woken by durable_through()
};

struct HttpIntakeServer::Request {
    http::request<http::string_body> message;
};

HttpIntakeServerOptions http_intake_server_options(const Config& config) {
    HttpIntakeServerOptions options;
    options.listen = config.http_listen;
    options.handling = http_intake_options(config);
    options.limits.max_connections = config.http_max_connections;
    options.limits.request_timeout = config.http_request_timeout;
    options.limits.max_header_fields = config.http_max_header_fields;
    options.limits.max_request_bytes = config.http_max_request_bytes != 0
                                           ? config.http_max_request_bytes
                                           : config.max_line + request_bytes_over_max_line;
    return options;
}

HttpIntakeServer::HttpIntakeServer(asio::io_context& io, HttpIntakeServerOptions options, EventSink& sink,
                                   Logger& logger, Metrics& metrics)
    : io_(io),
      options_(std::move(options)),
      sink_(sink),
      logger_(logger),
      metrics_(metrics),
      handler_(options_.handling, sink, metrics),
      acceptor_(io),
      closed_signal_(io.get_executor()) {}

HttpIntakeServer::~HttpIntakeServer() { stop(); }

void HttpIntakeServer::bind() {
    const auto address = parse_host_port(options_.listen, PortRule::required_or_zero);
    if (!address) throw std::runtime_error("invalid http_listen \"" + options_.listen + "\"");
    tcp::resolver resolver(io_);
    boost::system::error_code ec;
    const auto endpoints = resolver.resolve(address->host, std::to_string(*address->port), tcp::resolver::passive, ec);
    if (ec) throw std::runtime_error("cannot resolve http_listen " + options_.listen + ": " + ec.message());
    for (const auto& entry : endpoints) {
        acceptor_ = tcp::acceptor(io_);
        acceptor_.open(entry.endpoint().protocol(), ec);
        if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) acceptor_.bind(entry.endpoint(), ec);
        if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) continue;
        bound_address_ = endpoint_text(acceptor_.local_endpoint());
        return;
    }
    throw std::runtime_error("cannot listen on http_listen " + options_.listen + ": " +
                             (ec ? ec.message() : std::string{"no address found"}));
}

void HttpIntakeServer::start() {
    running_ = true;
    asio::co_spawn(io_, accept_loop(), detail::rethrow_exceptions);
}

void HttpIntakeServer::stop() {
    if (!running_) return;
    running_ = false;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (const auto& [id, connection] : connections_)
        if (connection->phase == HttpConnectionPhase::waiting_for_request) connection->stream.close();
}

void HttpIntakeServer::update(const HttpIntakeServerOptions& options) {
    options_.handling = options.handling;
    options_.limits = options.limits;
    handler_.update(options.handling);
}

void HttpIntakeServer::durable_through(std::uint64_t ticket) {
    durable_ = std::max(durable_, ticket);
    for (const auto& [id, connection] : connections_)
        if (connection->waiting_ticket != 0 && connection->waiting_ticket <= durable_) connection->wake.cancel();
}

awaitable<void> HttpIntakeServer::wait_until_closed(Clock::time_point deadline) {
    while (!connections_.empty() && Clock::now() < deadline) co_await closed_signal_.wait_until(deadline);
}

void HttpIntakeServer::forget(std::uint64_t id) {
    if (connections_.erase(id) > 0) closed_signal_.notify_all();
}

// At max_connections a connection that is closing or waiting for a request makes room: a closing
// one first, then one that never completed a request (a client that trickles a request or sends
// none), then the one waiting longest, so a producer's kept-alive connection goes last; false
// when every connection is answering.
bool HttpIntakeServer::make_room() {
    if (connections_.size() < options_.limits.max_connections) return true;
    const Connection* victim = nullptr;
    const auto rank = [](const Connection& c) {
        return c.phase == HttpConnectionPhase::closing ? 0 : c.requests_answered == 0 ? 1 : 2;
    };
    const auto ranks_before = [&rank](const Connection& a, const Connection& b) {
        if (rank(a) != rank(b)) return rank(a) < rank(b);
        return a.waiting_since < b.waiting_since;
    };
    for (const auto& [id, connection] : connections_)
        if (connection->phase != HttpConnectionPhase::handling &&
            (victim == nullptr || ranks_before(*connection, *victim)))
            victim = connection.get();
    if (victim != nullptr) {
        const auto id = victim->id;
        // A closing connection gives its slot up but finishes its linger (bounded), so that its
        // last answer is not cut by a reset; at most max_connections of them do so at once.
        if (victim->phase == HttpConnectionPhase::closing && lingering_uncounted_ < options_.limits.max_connections) {
            connections_.at(id)->lingers_uncounted = true;
            ++lingering_uncounted_;
        } else {
            connections_.at(id)->stream.close();
        }
        forget(id);
        ++metrics_.http_connections_evicted;
        const std::string message =
            "http intake: http_max_connections=" + std::to_string(options_.limits.max_connections) +
            " reached; closed a connection that was closing or waiting for a request";
        warned_limit_ ? logger_.debug(message) : logger_.warn(message);
        warned_limit_ = true;
        return true;
    }
    ++metrics_.http_connections_refused;
    logger_.warn("http intake: http_max_connections=" + std::to_string(options_.limits.max_connections) +
                 " reached and every connection is answering; closed the new one");
    return false;
}

void HttpIntakeServer::note_timeout() {
    ++metrics_.http_requests_timed_out;
    const std::string message =
        "http intake: closed a connection that sent no complete request within " +
        std::to_string(options_.limits.request_timeout.count()) +
        "ms (http_request_timeout; counted in avr_webhookd_http_intake_requests_timed_out_total)";
    warned_timeout_ ? logger_.debug(message) : logger_.warn(message);
    warned_timeout_ = true;
}

awaitable<void> HttpIntakeServer::accept_loop() {
    while (running_) {
        auto [ec, socket] = co_await acceptor_.async_accept(as_tuple(use_awaitable));
        if (!running_) break;
        if (ec) {
            logger_.warn("http intake: accept failed: " + ec.message());
            co_await detail::pause_after_accept_error(io_.get_executor());
            continue;
        }
        if (!make_room()) continue;  // the socket closes as it goes out of scope
        auto connection = std::make_shared<Connection>(std::move(socket), next_connection_id_++, request_limits());
        connections_.emplace(connection->id, connection);
        logger_.debug("http intake: " + connection->name() + " opened");
        asio::co_spawn(io_, serve(connection), [this, connection](std::exception_ptr error) {
            if (!error) return;
            std::string message = "unknown exception";
            try {
                std::rethrow_exception(error);
            } catch (const std::exception& exception) {
                message = exception.what();
            } catch (...) {}
            logger_.error("http intake: internal error on " + connection->name() + ": " + Logger::sanitize(message) +
                          "; the connection was closed, the daemon keeps serving");
            connection->stream.close();
            forget(connection->id);
        });
    }
}

HttpRequestLimits HttpIntakeServer::request_limits() const {
    HttpRequestLimits limits;
    limits.request = options_.limits.max_request_bytes;
    limits.head = options_.limits.max_header_bytes;
    limits.body = handler_.options().max_body;
    limits.fields = options_.limits.max_header_fields;
    return limits;
}

// Reads one request within http_request_timeout, from the bytes of the connection's reader on;
// anything but a complete request ends the connection (false), a refused one after its answer.
awaitable<bool> HttpIntakeServer::read_request(Connection& c, bool first) {
    c.phase = HttpConnectionPhase::waiting_for_request;
    c.waiting_since = Clock::now();
    const auto deadline = Clock::now() + options_.limits.request_timeout;  // one deadline for the whole request
    const auto error = co_await read_http_request(c.stream, c.reader, deadline, ContinueReply::send);
    if (!connections_.contains(c.id)) co_return false;  // evicted
    if (c.reader.state() == HttpRequestReader::State::complete) co_return true;
    if (c.reader.state() == HttpRequestReader::State::refused) {
        c.phase = HttpConnectionPhase::handling;  // its answer is being written: not evictable
        co_await refuse(c);
    } else if (error == beast::error::timeout) {
        // An idle keep-alive connection is simply done; a partial request is a slow client.
        if (first || c.reader.got_some()) note_timeout();
    }
    co_return false;
}

// A request past a limit or against the framing rules: its status (431, 413, 400) with the
// reason, a warn log line the first time for each reason (then debug: a scanner must not flood
// the log), counted by reason. A body past max_line stays an event rejected as line_too_long.
awaitable<void> HttpIntakeServer::refuse(Connection& c) {
    const auto refusal = c.reader.refusal();
    const auto reason = http_refusal_reason(refusal);
    ++Metrics::at(metrics_.http_requests_refused, reason);
    std::string why = c.reader.refusal_message();
    if (refusal == HttpRequestRefusal::too_many_fields) why += " (http_max_header_fields)";
    if (refusal == HttpRequestRefusal::request_too_large) why += " (http_max_request_bytes)";
    if (refusal == HttpRequestRefusal::body_too_large) why += " (max_line)";
    auto response = refusal == HttpRequestRefusal::body_too_large ? handler_.too_large() : handler_.bad_request(why);
    response.status = c.reader.refusal_status();
    const std::string message = "http intake: refused a request from " + c.name() + " with " +
                                std::to_string(response.status) + " and closed the connection: " + why +
                                " (counted in avr_webhookd_http_requests_refused_total{intake=\"http\",reason=\"" +
                                std::string(reason) + "\"})";
    const auto bit = std::uint32_t{1} << static_cast<unsigned>(refusal);
    (warned_refusals_ & bit) ? logger_.debug(message) : logger_.warn(message);
    warned_refusals_ |= bit;
    co_await write(c, counted(std::move(response)), c.reader.version(), false);
}

HttpIntakeResponse HttpIntakeServer::counted(HttpIntakeResponse response) {
    metrics_.count_http_response(response.status);
    return response;
}

awaitable<void> HttpIntakeServer::serve(std::shared_ptr<Connection> connection) {
    Connection& c = *connection;
    for (bool first = true; running_ && connections_.contains(c.id); first = false) {
        if (!co_await read_request(c, first)) break;
        c.phase = HttpConnectionPhase::handling;
        Request request{c.reader.release()};
        std::string event_id;
        const auto started = Clock::now();
        const auto response = co_await answer(c, request, event_id);
        // A HEAD request's answer carries a body here (a 405): the connection ends after it. So does
        // any answer but a 2xx: a client without the secret, or one that sends what is refused,
        // gets one answer per connection, and a client that does not read its answers cannot keep
        // connections busy writing pipelined 401s until max_connections shuts producers out.
        const bool keep_alive = request.message.keep_alive() && running_ &&
                                request.message.method() != http::verb::head && response.status < 300;
        ++c.requests_answered;
        const bool written = co_await write(c, response, request.message.version(), keep_alive);
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
        // The path only: a query may carry a token (…?token=…), which is never logged.
        auto target = std::string_view(request.message.target().data(), request.message.target().size());
        target = target.substr(0, target.find_first_of("?#"));
        logger_.debug("http intake: " + c.name() + " " + Logger::sanitize(request.message.method_string()) + " " +
                      Logger::sanitize(target.substr(0, logged_target_bytes)) + " -> " +
                      std::to_string(response.status) + (event_id.empty() ? "" : " id " + event_id) + " in " +
                      std::to_string(took.count()) + "ms");
        if (!written || !keep_alive) break;
        c.reader.set_limits(request_limits());  // a reload applies from the next request on
        c.reader.next();
    }
    if (connections_.contains(c.id)) {
        c.phase = HttpConnectionPhase::closing;
        co_await linger_close(c.stream, std::min<Clock::duration>(options_.limits.request_timeout, linger_time),
                              linger_bytes);
        forget(c.id);
        if (c.lingers_uncounted) --lingering_uncounted_;
    }
    logger_.debug("http intake: " + c.name() + " closed");
}

awaitable<HttpIntakeResponse> HttpIntakeServer::answer(Connection& c, const Request& request, std::string& event_id) {
    const HttpIntakeRequest view = http_intake_request(request.message);
    HttpIntakeDecision decision;
    std::optional<std::string> failure;
    try {  // a bug or bad_alloc while handling one request fails that request only
        decision = co_await decide_with_room(view);
    } catch (const std::exception& error) {
        failure = Logger::sanitize(error.what());
    }
    if (failure) {
        logger_.error("http intake: internal error on a request from " + c.name() + ": " + *failure);
        decision.response = handler_.internal_error(*failure);
    }
    event_id = decision.event_id;
    if (decision.kind == HttpIntakeDecision::Kind::respond_with_answer)
        decision.response = handler_.answer_response(co_await wait_answer(*decision.answer), event_id);
    // Every copy (one per destination) durable before any 2xx: with several destinations the
    // answer only shows that respond_destination has the event.
    if ((decision.kind == HttpIntakeDecision::Kind::respond_when_durable ||
         decision.kind == HttpIntakeDecision::Kind::respond_with_answer) &&
        !co_await wait_durable(c, decision.ticket)) {
        logger_.warn("http intake: event " + event_id + " from " + c.name() + " not confirmed by the spool within " +
                     std::to_string(options_.limits.durable_wait.count()) + "ms; answered 503");
        decision.response = handler_.not_durable(event_id);
    }
    metrics_.count_http_response(decision.response.status);
    co_return decision.response;
}

// queue_full = block: the request waits for room, within http_request_timeout, then gets 503.
awaitable<HttpIntakeDecision> HttpIntakeServer::decide_with_room(const HttpIntakeRequest& request) {
    auto decision = handler_.handle(request, std::chrono::system_clock::now());
    if (decision.kind != HttpIntakeDecision::Kind::wait_for_room) co_return decision;
    const auto deadline = Clock::now() + options_.limits.request_timeout;
    asio::steady_timer poll(io_);
    while (!sink_.has_room() && running_ && Clock::now() < deadline) {
        poll.expires_after(room_poll_interval);
        co_await poll.async_wait(as_tuple(use_awaitable));
    }
    co_return handler_.handle(request, std::chrono::system_clock::now(), RoomWait::expired);
}

// A respond-type event: the receiver's answer, or nullopt after respond_timeout.
awaitable<std::optional<EventSink::Answer>> HttpIntakeServer::wait_answer(HttpAnswerSlot& slot) {
    auto timer = std::make_shared<asio::steady_timer>(io_, handler_.options().respond_timeout);
    slot.on_ready = [weak = std::weak_ptr<asio::steady_timer>(timer)] {
        if (const auto alive = weak.lock()) alive->cancel();
    };
    if (!slot.answer) co_await timer->async_wait(as_tuple(use_awaitable));
    slot.on_ready = nullptr;
    if (slot.answer && slot.answer->status != 0) ++metrics_.respond_answered;
    else ++metrics_.respond_unanswered;
    auto answer = slot.answer;
    slot.answer.emplace();  // a late answer is dropped
    co_return answer;
}

awaitable<bool> HttpIntakeServer::wait_durable(Connection& c, std::uint64_t ticket) {
    const auto deadline = Clock::now() + options_.limits.durable_wait;
    c.waiting_ticket = ticket;
    while (ticket > durable_ && Clock::now() < deadline) {
        c.wake.expires_at(deadline);
        co_await c.wake.async_wait(as_tuple(use_awaitable));
    }
    c.waiting_ticket = 0;
    co_return ticket <= durable_;
}

awaitable<bool> HttpIntakeServer::write(Connection& c, const HttpIntakeResponse& answer, unsigned version,
                                        bool keep_alive) {
    http::response<http::string_body> response{static_cast<http::status>(answer.status), version};
    response.set(http::field::content_type, "application/json");
    response.set(http::field::cache_control, "no-store");
    if (!answer.allow.empty()) response.set(http::field::allow, answer.allow);
    if (answer.retry_after_seconds) response.set(http::field::retry_after, std::to_string(*answer.retry_after_seconds));
    response.keep_alive(keep_alive);
    response.body() = answer.body;
    response.prepare_payload();
    c.stream.expires_after(options_.limits.request_timeout);
    auto [error, written] = co_await http::async_write(c.stream, response, as_tuple(use_awaitable));
    co_return !error;
}

}  // namespace avr_webhookd
