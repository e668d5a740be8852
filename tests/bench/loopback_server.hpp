#pragma once

// A keep-alive HTTP receiver for the bench programs: 127.0.0.1 on a free port, run by a thread of
// its own. A subclass answers each connection in serve(), calls start() at the end of its
// constructor and stop() first in its destructor (before its own members go).

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <thread>

namespace avr_webhookd::bench {

class LoopbackServer {
public:
    LoopbackServer(const LoopbackServer&) = delete;
    LoopbackServer& operator=(const LoopbackServer&) = delete;
    virtual ~LoopbackServer() { stop(); }

    unsigned short port() const { return acceptor_.local_endpoint().port(); }

protected:
    LoopbackServer() : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {}

    void start() {
        boost::asio::co_spawn(io_, accept_loop(), boost::asio::detached);
        thread_ = std::thread([this] { io_.run(); });
    }
    void stop() {
        if (!thread_.joinable()) return;
        io_.stop();
        thread_.join();
    }

    virtual boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket) = 0;

    boost::asio::io_context io_;

private:
    boost::asio::awaitable<void> accept_loop() {
        using boost::asio::as_tuple;
        using boost::asio::use_awaitable;
        for (;;) {
            auto [ec, socket] = co_await acceptor_.async_accept(as_tuple(use_awaitable));
            if (ec) co_return;
            socket.set_option(boost::asio::ip::tcp::no_delay(true), ec);
            boost::asio::co_spawn(io_, serve(std::move(socket)), boost::asio::detached);
        }
    }

    boost::asio::ip::tcp::acceptor acceptor_;
    std::thread thread_;
};

}  // namespace avr_webhookd::bench
