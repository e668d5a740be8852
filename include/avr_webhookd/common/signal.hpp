#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>

namespace avr_webhookd::detail {

// A condition signal for coroutines on one executor: wait() suspends until notify_all() or the
// deadline. Built on a timer that never expires by itself (cancel wakes every waiter).
class Signal {
public:
    explicit Signal(const boost::asio::any_io_executor& executor) : timer_(executor) {
        timer_.expires_at(boost::asio::steady_timer::time_point::max());
    }

    boost::asio::awaitable<void> wait() {
        co_await timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }

    // Waits for a notification, or until `deadline` at the latest.
    boost::asio::awaitable<void> wait_until(std::chrono::steady_clock::time_point deadline) {
        boost::asio::steady_timer limit(timer_.get_executor(), deadline);
        limit_ = &limit;
        co_await limit.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        limit_ = nullptr;
    }

    void notify_all() {
        timer_.cancel();
        if (limit_) limit_->cancel();
    }

private:
    boost::asio::steady_timer timer_;
    boost::asio::steady_timer* limit_ = nullptr;  // the one timed waiter, if any
};

}  // namespace avr_webhookd::detail
