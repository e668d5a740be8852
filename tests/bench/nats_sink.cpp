#include "nats_sink.hpp"

#include "bench_support.hpp"

namespace avr_webhookd::bench {

using namespace std::chrono_literals;

NatsSink::NatsSink() {
    server_.start();
    client_ = std::make_unique<test::JetStreamClient>(server_.url());
    client_->create_stream(
        "AVR", boost::json::object{
                   {"subjects", boost::json::array{"avr.events.>"}}, {"storage", "file"}, {"num_replicas", 1}});
}

void NatsSink::mark() { base_ = client_->stream_state("AVR").at("messages").to_number<std::uint64_t>(); }

std::size_t NatsSink::received() {
    return static_cast<std::size_t>(client_->stream_state("AVR").at("messages").to_number<std::uint64_t>() - base_);
}

bool NatsSink::wait_for(std::size_t count, std::chrono::milliseconds timeout) {
    return poll_until([&] { return received() >= count; }, timeout, 5ms);
}

}  // namespace avr_webhookd::bench
