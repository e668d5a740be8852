// read_http_request, the thin Asio layer of HttpRequestReader the HTTP intake and the admin
// endpoint share, over a real loopback socket: its deadline holds for the whole request even
// when every read completes at once (issue 18: a client streaming chunk extensions outlived
// http_request_timeout until the daemon was stopped).
#include <avr_webhookd/common/read_http_request.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <atomic>
#include <exception>
#include <thread>

using namespace avr_webhookd;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

TEST_CASE("read_http_request: a client streaming as fast as it can is cut off at the deadline",
          "[integration][http_intake][limits]") {
    asio::io_context io;
    tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    const auto port = acceptor.local_endpoint().port();

    // Bounds far beyond what the test sends, so that only the deadline can end the request: each
    // chunk line is complete (below the buffer's bound) and adds one byte to the body.
    HttpRequestLimits limits;
    limits.request = std::size_t{1} << 40;
    limits.body = std::size_t{1} << 40;
    HttpRequestReader reader(limits);
    std::atomic<bool> server_done{false};
    boost::system::error_code result;
    Clock::duration took{};
    constexpr auto deadline_after = 300ms;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto socket = co_await acceptor.async_accept(asio::use_awaitable);
            beast::tcp_stream stream(std::move(socket));
            const auto started = Clock::now();
            result = co_await read_http_request(stream, reader, started + deadline_after, ContinueReply::ignore);
            took = Clock::now() - started;
            stream.close();
            server_done = true;
        },
        [](std::exception_ptr error) {
            if (error) std::rethrow_exception(error);
        });

    std::size_t sent = 0;
    std::thread client([&] {
        asio::io_context client_io;
        tcp::socket socket(client_io);
        socket.connect({asio::ip::make_address("127.0.0.1"), port});
        const std::string head = "POST /events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        const std::string chunk = "1;" + std::string(8000, 'e') + "\r\nx\r\n";
        boost::system::error_code ec;
        asio::write(socket, asio::buffer(head), ec);
        const auto give_up = Clock::now() + 30s;  // a bound for the test itself
        while (!ec && !server_done && Clock::now() < give_up) sent += asio::write(socket, asio::buffer(chunk), ec);
    });
    io.run_for(40s);
    client.join();

    CHECK(server_done);
    CHECK(result == beast::error::timeout);
    CHECK(reader.state() == HttpRequestReader::State::reading);
    CHECK(took >= deadline_after);
    CHECK(took < 3s);
    CHECK(reader.request_bytes() > 0);
    WARN("the client sent " << sent / 1024 << " KiB before the cut, the server parsed " << reader.request_bytes() / 1024
                            << " KiB");
}
