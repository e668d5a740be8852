#pragma once

#include <avr_webhookd/common/http_request_reader.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>

#include <chrono>
#include <cstddef>
#include <string_view>

namespace avr_webhookd {

// Whether read_http_request answers "Expect: 100-continue" before the body.
enum class ContinueReply { send, ignore };

// Reads into `reader` until its state() is no longer reading: a request, a refusal, or the
// peer's close. `deadline` holds for the whole request: Beast's stream closes the socket when it
// passes during a read, and since a read that completes at once never waits on that timer, a
// client streaming bytes fast is cut off at the first read after the deadline (beast::error::
// timeout). Any other I/O error is returned as it is. The thin Asio layer of HttpRequestReader,
// for the HTTP intake and the admin endpoint (Stream: a beast::basic_stream).
template <class Stream>
boost::asio::awaitable<boost::system::error_code> read_http_request(Stream& stream, HttpRequestReader& reader,
                                                                    std::chrono::steady_clock::time_point deadline,
                                                                    ContinueReply continue_reply) {
    using boost::asio::as_tuple;
    using boost::asio::use_awaitable;
    static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
    stream.expires_at(deadline);
    bool continued = false;
    while (reader.state() == HttpRequestReader::State::reading) {
        if (continue_reply == ContinueReply::send && !continued && reader.expects_continue()) {
            continued = true;
            auto [error, written] =
                co_await boost::asio::async_write(stream, boost::asio::buffer(go_on), as_tuple(use_awaitable));
            if (error) co_return error;
        }
        const auto space = reader.prepare();
        auto [error, count] =
            co_await stream.async_read_some(boost::asio::buffer(space.data(), space.size()), as_tuple(use_awaitable));
        reader.commit(count);
        if (reader.state() != HttpRequestReader::State::reading) break;
        if (error == boost::asio::error::eof) {
            reader.finish();
            break;
        }
        if (error) co_return error;
        if (std::chrono::steady_clock::now() >= deadline) co_return boost::beast::error::timeout;
    }
    co_return boost::system::error_code{};
}

// Ends a connection whose answer was just written, although the client may still be sending
// (a refused request): closing with unread bytes would reset the connection and could destroy
// the answer before the client reads it. So the write side is shut, and what the client still
// sends is read and dropped for at most `time` and `max_bytes`, then the stream is closed.
template <class Stream>
boost::asio::awaitable<void> linger_close(Stream& stream, std::chrono::steady_clock::duration time,
                                          std::size_t max_bytes) {
    using boost::asio::as_tuple;
    using boost::asio::use_awaitable;
    boost::system::error_code ec;
    stream.socket().shutdown(boost::asio::socket_base::shutdown_send, ec);
    const auto deadline = std::chrono::steady_clock::now() + time;
    stream.expires_at(deadline);
    char sink[4096];
    for (std::size_t dropped = 0; !ec && dropped < max_bytes && std::chrono::steady_clock::now() < deadline;) {
        auto [error, size] = co_await stream.async_read_some(boost::asio::buffer(sink), as_tuple(use_awaitable));
        ec = error;
        dropped += size;
    }
    stream.close();
}

}  // namespace avr_webhookd
