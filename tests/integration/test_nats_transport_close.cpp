// A NATS destination removed at a reload, or the daemon's stop, destroys its transport on the
// event loop: libnats's close (up to 2 s for a server that does not answer) must not hold it.

#include "support/process.hpp"

#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/delivery/nats_transport.hpp>
#include <avr_webhookd/ops/logger.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <memory>

using namespace avr_webhookd;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

TEST_CASE("nats transport: destroying one whose server never answers leaves the event loop at once",
          "[integration][nats]") {
    asio::io_context io;
    // A listener that takes connections and says nothing: libnats waits for the server's INFO.
    tcp::acceptor silent(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    silent.non_blocking(true);
    Config config;
    config.url = "nats://127.0.0.1:" + std::to_string(silent.local_endpoint().port());
    const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    REQUIRE(null_fd >= 0);
    Logger logger(Logger::Options{}, null_fd);
    auto transport = std::make_unique<NatsTransport>(io.get_executor(), config, logger, "default");

    tcp::socket accepted(io);
    REQUIRE(test::wait_until(
        [&] {
            boost::system::error_code ec;
            silent.accept(accepted, ec);
            return !ec;
        },
        5s));
    // The link's thread is inside its connect, waiting for an INFO that never comes.
    const auto before = std::chrono::steady_clock::now();
    transport.reset();
    const auto held = std::chrono::steady_clock::now() - before;
    CHECK(held < 500ms);  // the close's wait (up to 2 s) is not the loop's
    ::close(null_fd);
}
