// The link's options from a destination's settings: the reply inbox's pending limits are finite.
#include <avr_webhookd/delivery/nats_transport.hpp>

#include <catch2/catch.hpp>

using namespace avr_webhookd;

TEST_CASE("nats link options: the reply inbox holds max(1024, 4 x concurrency) replies and a few MiB", "[nats][link]") {
    Config config;
    config.url = "nats://127.0.0.1:4222";
    config.concurrency = 64;
    const auto small = nats_link_options(config, "default");
    CHECK(small.max_pending_replies == 1024);
    CHECK(small.max_pending_bytes > 0);
    CHECK(small.max_pending_bytes <= 16 * 1024 * 1024);
    config.concurrency = 4096;
    CHECK(nats_link_options(config, "default").max_pending_replies == 16384);
}
