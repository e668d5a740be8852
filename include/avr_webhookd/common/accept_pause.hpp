#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>

namespace avr_webhookd::detail {

// After a failed accept (out of file descriptors, say) every accept loop waits this long before
// the next one, so a lasting error does not spin the event loop. The caller logs the error.
inline constexpr std::chrono::milliseconds accept_retry_pause{100};

inline boost::asio::awaitable<void> pause_after_accept_error(const boost::asio::any_io_executor& executor) {
    boost::asio::steady_timer pause(executor, accept_retry_pause);
    co_await pause.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
}

}  // namespace avr_webhookd::detail
