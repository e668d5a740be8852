#include "avr_webhookd/tools/receiver.hpp"

#include "receiver_answer.hpp"

#include "avr_webhookd/common/host_port.hpp"
#include "avr_webhookd/common/text.hpp"
#include "avr_webhookd/delivery/signature.hpp"
#include "avr_webhookd/ops/logger.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <iostream>
#include <mutex>
#include <stdexcept>

namespace avr_webhookd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using receiver_detail::Answer;
using receiver_detail::describe_delivery;
using receiver_detail::parse_body;
using receiver_detail::plan_answer;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;

namespace {

constexpr std::uint64_t max_body_bytes = 1024 * 1024;
constexpr std::size_t max_printed_line = 4096;    // longer peer text is cut when printed
constexpr std::chrono::seconds read_timeout{30};  // also bounds an idle keep-alive connection
constexpr std::chrono::seconds write_timeout{30};
constexpr std::chrono::seconds tls_handshake_timeout{10};
constexpr auto io_result = asio::as_tuple(use_awaitable);

// "HOST:PORT" or "[v6]:PORT" (port 0: any free port), resolved when HOST is a name.
tcp::endpoint listen_endpoint(asio::io_context& io, std::string_view text) {
    HostPortError problem;
    const auto address = parse_host_port(text, PortRule::required_or_zero, &problem);
    if (!address) throw std::invalid_argument("listen address '" + std::string(text) + "': " + problem.message);
    boost::system::error_code error;
    const auto ip = asio::ip::make_address(address->host, error);
    if (!error) return {ip, *address->port};
    tcp::resolver resolver(io);
    const auto results = resolver.resolve(address->host, std::to_string(*address->port));
    return results.begin()->endpoint();
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Peer data reaches a terminal here: control characters (an ESC could rewrite the screen) and
// invalid UTF-8 are replaced, long text is cut.
void print_lines(const ReceiverOptions& options, const std::vector<std::string>& lines) {
    if (options.quiet) return;
    std::ostream& out = options.out ? *options.out : std::cout;
    for (const std::string& line : lines) out << Logger::sanitize(line, max_printed_line) << '\n';
    out.flush();
}

}  // namespace

struct Receiver::State {
    State(asio::io_context& io_context, ReceiverOptions receiver_options)
        : io(io_context), options(std::move(receiver_options)), acceptor(io_context) {
        if (options.tls_cert.empty() != options.tls_key.empty())
            throw std::invalid_argument("--tls-cert and --tls-key go together");
        if (auto error = Signer::validate(options.signature, options.secret)) throw std::invalid_argument(*error);
        if (!options.tls_cert.empty()) {
            tls.emplace(asio::ssl::context::tls_server);
            tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                             asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                             asio::ssl::context::no_tlsv1_1);
            tls->use_certificate_chain_file(options.tls_cert);
            tls->use_private_key_file(options.tls_key, asio::ssl::context::pem);
        }
        const tcp::endpoint endpoint = listen_endpoint(io, options.listen);
        acceptor.open(endpoint.protocol());
        acceptor.set_option(asio::socket_base::reuse_address(true));
        acceptor.bind(endpoint);
        acceptor.listen();
        bound = acceptor.local_endpoint();
    }

    asio::io_context& io;
    const ReceiverOptions options;
    std::optional<asio::ssl::context> tls;
    tcp::acceptor acceptor;
    tcp::endpoint bound;

    // Touched only by the io_context's thread.
    bool stopping = false;
    std::uint64_t requests_read = 0;
    std::size_t connections_opened = 0;
    std::map<std::size_t, std::function<void()>> open_connections;  // index -> closes it

    // Read by other threads.
    mutable std::mutex mutex;
    mutable std::condition_variable changed;
    std::vector<ReceivedRequest> recorded;
    std::size_t recorded_bytes = 0;
    std::size_t forgotten = 0;
    std::size_t accepted = 0;

    Answer answer(const http::request<http::string_body>& request, std::size_t connection_index) {
        const std::uint64_t request_number = ++requests_read;
        const auto body = parse_body(request.body());
        const Verification authentication = verify(
            options.signature, options.secret,
            [&request](std::string_view name) -> std::optional<std::string_view> {
                const auto field = request.find(name);
                if (field == request.end()) return std::nullopt;
                return field->value();
            },
            request.body(), unix_now());
        const Answer answer =
            plan_answer(options, request_number, request.method() == http::verb::post, authentication, body);
        record(request, connection_index, answer.status);
        if (!options.quiet) {
            std::vector<std::string> lines;
            if (answer.status / 100 == 2 && body) lines = describe_delivery(*body);
            else
                lines.push_back("Answered " + (answer.drop ? std::string("nothing") : std::to_string(answer.status)) +
                                " to " + std::string(request.method_string()) + " " + std::string(request.target()) +
                                ": " + answer.reason);
            print_lines(options, lines);
        }
        return answer;
    }

    void record(const http::request<http::string_body>& request, std::size_t connection_index, int status) {
        ReceivedRequest received;
        received.method = std::string(request.method_string());
        received.target = std::string(request.target());
        received.body = request.body();
        for (const auto& field : request) {
            auto [position, inserted] = received.headers.emplace(ascii_lower(field.name_string()), field.value());
            if (!inserted) position->second += ", " + std::string(field.value());
        }
        received.connection_index = connection_index;
        received.status_sent = status;
        received.at = std::chrono::steady_clock::now();
        {
            std::lock_guard lock(mutex);
            recorded_bytes += recorded_size(received);
            recorded.push_back(std::move(received));
            forget_oldest();
        }
        changed.notify_all();
    }

    static std::size_t recorded_size(const ReceivedRequest& request) {
        std::size_t size =
            sizeof(ReceivedRequest) + request.method.size() + request.target.size() + request.body.size();
        for (const auto& [name, value] : request.headers) size += name.size() + value.size() + 64;
        return size;
    }

    // Called with the mutex held, after each recorded request.
    void forget_oldest() {
        const auto over = [this](std::size_t drop, std::size_t bytes) {
            return recorded.size() - drop > options.max_recorded || bytes > options.max_recorded_bytes;
        };
        if (!over(0, recorded_bytes)) return;
        // Past the count, a quarter of it goes at once (amortised); past the bytes, just enough.
        const bool over_count = recorded.size() > options.max_recorded;
        const std::size_t batch = over_count ? std::max<std::size_t>(1, options.max_recorded / 4) : 0;
        std::size_t drop = 0;
        std::size_t bytes = recorded_bytes;
        while (drop < recorded.size() && (over(drop, bytes) || drop < batch)) bytes -= recorded_size(recorded[drop++]);
        recorded.erase(recorded.begin(), recorded.begin() + static_cast<std::ptrdiff_t>(drop));
        recorded_bytes = bytes;
        forgotten += drop;
    }
};

namespace {

using State = Receiver::State;

http::response<http::string_body> build_response(const State& state, const Answer& answer,
                                                 const http::request<http::string_body>& request) {
    http::response<http::string_body> response{static_cast<http::status>(answer.status), request.version()};
    response.set(http::field::server, "avr-webhookd-receive");
    response.set(http::field::content_type, answer.json_body.empty() ? "text/plain" : "application/json");
    response.body() = answer.status / 100 == 2 ? (answer.json_body.empty() ? "OK" : answer.json_body) : answer.reason;
    if (answer.status / 100 == 3) response.set(http::field::location, "/moved" + std::string(request.target()));
    if (answer.from_switch && answer.status >= 400 && state.options.retry_after)
        response.set(http::field::retry_after, *state.options.retry_after);
    response.keep_alive(request.keep_alive() && !state.options.close_after_response && !state.stopping);
    response.prepare_payload();
    return response;
}

// Registers a connection for stop() and removes it when the coroutine ends.
class OpenConnection {
public:
    OpenConnection(std::shared_ptr<State> state, std::size_t index, std::function<void()> close)
        : state_(std::move(state)), index_(index) {
        if (state_->stopping) close();
        else state_->open_connections.emplace(index_, std::move(close));
    }
    ~OpenConnection() { state_->open_connections.erase(index_); }
    OpenConnection(const OpenConnection&) = delete;
    OpenConnection& operator=(const OpenConnection&) = delete;

private:
    std::shared_ptr<State> state_;
    std::size_t index_;
};

enum class SessionEnd { graceful, abrupt };

template <class Stream>
awaitable<SessionEnd> serve_requests(std::shared_ptr<State> state, Stream& stream, asio::steady_timer& delay_timer,
                                     std::size_t connection_index) {
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(max_body_bytes);
        beast::get_lowest_layer(stream).expires_after(read_timeout);
        auto [read_error, read_bytes] = co_await http::async_read(stream, buffer, parser, io_result);
        if (read_error == http::error::end_of_stream) co_return SessionEnd::graceful;
        if (read_error == http::error::body_limit) {
            http::response<http::string_body> too_large{http::status::payload_too_large, parser.get().version()};
            too_large.body() = "the body exceeds 1 MiB";
            too_large.keep_alive(false);
            too_large.prepare_payload();
            beast::get_lowest_layer(stream).expires_after(write_timeout);
            co_await http::async_write(stream, too_large, io_result);
            co_return SessionEnd::graceful;
        }
        if (read_error) co_return SessionEnd::abrupt;

        const auto& request = parser.get();
        const Answer answer = state->answer(request, connection_index);
        if (state->options.delay.count() > 0) {
            delay_timer.expires_after(state->options.delay);
            co_await delay_timer.async_wait(io_result);
        }
        if (answer.drop || state->stopping) co_return SessionEnd::abrupt;

        auto response = build_response(*state, answer, request);
        beast::get_lowest_layer(stream).expires_after(write_timeout);
        auto [write_error, written] = co_await http::async_write(stream, response, io_result);
        if (write_error) co_return SessionEnd::abrupt;
        if (!response.keep_alive()) co_return SessionEnd::graceful;
    }
}

awaitable<void> handle_connection(std::shared_ptr<State> state, tcp::socket socket, std::size_t connection_index) {
    asio::steady_timer delay_timer(socket.get_executor());
    if (!state->tls) {
        beast::tcp_stream stream(std::move(socket));
        OpenConnection registration(state, connection_index, [&stream, &delay_timer] {
            stream.close();
            delay_timer.cancel();
        });
        const SessionEnd end = co_await serve_requests(state, stream, delay_timer, connection_index);
        boost::system::error_code ignored;
        if (end == SessionEnd::graceful) stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream.close();
        co_return;
    }
    beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *state->tls);
    OpenConnection registration(state, connection_index, [&stream, &delay_timer] {
        beast::get_lowest_layer(stream).close();
        delay_timer.cancel();
    });
    beast::get_lowest_layer(stream).expires_after(tls_handshake_timeout);
    auto [handshake_error] = co_await stream.async_handshake(asio::ssl::stream_base::server, io_result);
    if (handshake_error) {
        print_lines(state->options, {"TLS handshake failed: " + handshake_error.message()});
        beast::get_lowest_layer(stream).close();
        co_return;
    }
    const SessionEnd end = co_await serve_requests(state, stream, delay_timer, connection_index);
    if (end == SessionEnd::graceful) {
        beast::get_lowest_layer(stream).expires_after(write_timeout);
        co_await stream.async_shutdown(io_result);
    }
    beast::get_lowest_layer(stream).close();
}

awaitable<void> accept_connections(std::shared_ptr<State> state) {
    while (!state->stopping) {
        auto [error, socket] = co_await state->acceptor.async_accept(io_result);
        if (state->stopping || error == asio::error::operation_aborted) co_return;
        if (error) continue;  // e.g. too many open files: keep serving the connections there are
        const std::size_t index = ++state->connections_opened;
        {
            std::lock_guard lock(state->mutex);
            ++state->accepted;
        }
        asio::co_spawn(state->io, handle_connection(state, std::move(socket), index), asio::detached);
    }
}

}  // namespace

Receiver::Receiver(asio::io_context& io, ReceiverOptions options)
    : state_(std::make_shared<State>(io, std::move(options))) {}

Receiver::~Receiver() { stop(); }

unsigned short Receiver::port() const { return state_->bound.port(); }

std::string Receiver::base_url() const {
    return (state_->tls ? "https://" : "http://") + format_host_port(state_->bound.address().to_string(), port());
}

void Receiver::start() { asio::co_spawn(state_->io, accept_connections(state_), asio::detached); }

void Receiver::stop() {
    asio::post(state_->io, [state = state_] {
        if (state->stopping) return;
        state->stopping = true;
        boost::system::error_code ignored;
        state->acceptor.close(ignored);
        std::vector<std::function<void()>> closers;
        for (auto& [index, close] : state->open_connections) closers.push_back(close);
        for (auto& close : closers) close();
    });
}

std::vector<ReceivedRequest> Receiver::requests() const {
    std::lock_guard lock(state_->mutex);
    return state_->recorded;
}

std::size_t Receiver::requests_forgotten() const {
    std::lock_guard lock(state_->mutex);
    return state_->forgotten;
}

std::size_t Receiver::connections_accepted() const {
    std::lock_guard lock(state_->mutex);
    return state_->accepted;
}

bool Receiver::wait_for(const std::function<bool(const std::vector<ReceivedRequest>&)>& predicate,
                        std::chrono::milliseconds timeout) const {
    std::unique_lock lock(state_->mutex);
    return state_->changed.wait_for(lock, timeout, [&] { return predicate(state_->recorded); });
}

}  // namespace avr_webhookd
