#pragma once

#include <exception>

namespace avr_webhookd::detail {

// Completion token for co_spawn: unlike asio::detached, an exception escaping a spawned
// coroutine (a bug, or bad_alloc) propagates out of io_context::run(), so the daemon stops with
// exit status 70 instead of silently losing the coroutine and whatever it was responsible for.
inline constexpr auto rethrow_exceptions = [](std::exception_ptr error) {
    if (error) std::rethrow_exception(error);
};

}  // namespace avr_webhookd::detail
