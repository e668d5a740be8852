#pragma once

// The JetStream side of relay_bench: one nats-server -js (file store in a temporary folder) for
// the whole run, with the stream AVR (avr.events.>, one replica); counts what the stream stored.

#include "support/nats_server.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace avr_webhookd::bench {

class NatsSink {
public:
    NatsSink();
    std::string url() const { return server_.url(); }
    // Starts counting from the stream's present message count.
    void mark();
    // Messages the stream has stored since mark().
    std::size_t received();
    // Polls the stream's state every 5 ms until `count` messages arrived since mark().
    bool wait_for(std::size_t count, std::chrono::milliseconds timeout);

private:
    test::TempDirectory dir_{"relay-bench-nats"};
    test::NatsServer server_{dir_};
    std::uint64_t base_ = 0;
    std::unique_ptr<test::JetStreamClient> client_;
};

}  // namespace avr_webhookd::bench
