#pragma once

#include <cstddef>
#include <memory>
#include <utility>

namespace avr_webhookd {

// Counts one open connection for exactly the lifetime of its owner, so that a count of open
// connections cannot drift whatever way a connection ends. The counter is shared: a connection
// may outlive its client (in a coroutine frame destroyed later) and still count itself off.
class ConnectionCount {
public:
    explicit ConnectionCount(std::shared_ptr<std::size_t> counter) : counter_(std::move(counter)) { ++*counter_; }
    ~ConnectionCount() { --*counter_; }
    ConnectionCount(const ConnectionCount&) = delete;
    ConnectionCount& operator=(const ConnectionCount&) = delete;

private:
    std::shared_ptr<std::size_t> counter_;
};

}  // namespace avr_webhookd
