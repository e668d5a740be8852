#include <avr_webhookd/tools/replay_client.hpp>

#include <avr_webhookd/common/duration.hpp>
#include <avr_webhookd/ops/logger.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace avr_webhookd {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;
using namespace asio::experimental::awaitable_operators;
using stream_protocol = asio::local::stream_protocol;
using Stream = beast::basic_stream<stream_protocol>;

namespace {

constexpr std::size_t write_chunk = 64 * 1024;
constexpr std::size_t max_reply_bytes = 1024 * 1024;

struct Exchange {
    std::string data;  // the lines, each with its newline
    std::chrono::milliseconds idle;
    ReplayExchange result;
    bool write_failed = false;
};

std::string failure_text(const beast::error_code& ec, std::chrono::milliseconds idle) {
    if (ec == beast::error::timeout) return "no progress for " + format_duration(idle);
    return ec.message();
}

awaitable<void> write_lines(Stream& stream, Exchange& exchange) {
    for (std::size_t sent = 0; sent < exchange.data.size();) {
        const auto size = std::min(write_chunk, exchange.data.size() - sent);
        stream.expires_after(exchange.idle);
        auto [ec, written] =
            co_await stream.async_write_some(asio::buffer(exchange.data.data() + sent, size), as_tuple(use_awaitable));
        if (ec) {
            exchange.write_failed = true;
            if (exchange.result.failure.empty())
                exchange.result.failure = "sending failed: " + failure_text(ec, exchange.idle);
            co_return;
        }
        sent += written;
    }
    beast::error_code ignored;
    stream.socket().shutdown(stream_protocol::socket::shutdown_send, ignored);  // the daemon's cue to finish
}

// One reply line: {"ok":true,"line":N,"id":...} or {"ok":false,"line":N,"error":...}; without a
// line number the daemon refused the whole connection.
void take_reply(std::string_view text, Exchange& exchange) {
    boost::system::error_code ec;
    const auto value = boost::json::parse(text, ec);
    const auto* object = ec ? nullptr : value.if_object();
    const auto* ok = object ? object->if_contains("ok") : nullptr;
    if (!ok || !ok->is_bool()) return;
    std::string error;
    if (const auto* message = object->if_contains("error"); message && message->is_string())
        error = Logger::sanitize(std::string_view(message->get_string()), 500);
    const auto* line = object->if_contains("line");
    std::uint64_t number = 0;
    if (line && line->is_int64() && line->get_int64() > 0) number = static_cast<std::uint64_t>(line->get_int64());
    else if (line && line->is_uint64()) number = line->get_uint64();
    if (number == 0 || number > exchange.result.replies.size()) {
        if (!ok->get_bool()) exchange.result.failure = "the daemon refused the connection: " + error;
        return;
    }
    auto& reply = exchange.result.replies[static_cast<std::size_t>(number) - 1];
    reply.result = ok->get_bool() ? ReplayReply::Result::accepted : ReplayReply::Result::rejected;
    reply.error = std::move(error);
}

awaitable<void> read_replies(Stream& stream, Exchange& exchange) {
    std::string buffer;
    for (;;) {
        stream.expires_after(exchange.idle);
        auto [ec, size] = co_await asio::async_read_until(stream, asio::dynamic_buffer(buffer, max_reply_bytes), '\n',
                                                          as_tuple(use_awaitable));
        if (ec) {
            if (ec != asio::error::eof && exchange.result.failure.empty())
                exchange.result.failure = "reading the replies failed: " + failure_text(ec, exchange.idle);
            break;
        }
        take_reply(std::string_view(buffer).substr(0, size - 1), exchange);
        buffer.erase(0, size);
    }
    stream.close();  // ends a write still waiting
}

awaitable<void> run(std::string socket, Exchange& exchange) {
    Stream stream(co_await asio::this_coro::executor);
    stream.expires_after(exchange.idle);
    auto [ec] = co_await stream.async_connect(stream_protocol::endpoint(socket), as_tuple(use_awaitable));
    if (ec) {
        exchange.result.failure = "cannot connect to " + socket + ": " + failure_text(ec, exchange.idle);
        co_return;
    }
    // Both directions at once, so replies never back up while lines are still being written; the
    // reader closes the stream when it is done, which ends a write still waiting.
    co_await (write_lines(stream, exchange) && read_replies(stream, exchange));
}

}  // namespace

ReplayExchange replay_lines(const std::string& socket, const std::vector<std::string>& lines,
                            std::chrono::milliseconds idle_timeout) {
    Exchange exchange{{}, idle_timeout, {}, false};
    for (const auto& line : lines) exchange.data.append(line).push_back('\n');
    exchange.result.replies.resize(lines.size());
    asio::io_context io;
    asio::co_spawn(io, run(socket, exchange), asio::detached);
    io.run();  // every operation has a deadline: this ends
    return std::move(exchange.result);
}

}  // namespace avr_webhookd
