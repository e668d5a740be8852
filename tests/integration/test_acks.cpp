// Every acknowledgement reaches a producer that reads (issue 18, point 2): with ack = all a
// producer that pipelines far more lines than max_reply_backlog holds gets every reply, in line
// order; one that stops reading is paused (its lines wait), never dropped from the promise.
#include "../support/daemon_fixture.hpp"
#include "../support/pipelined_producer.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <catch2/catch.hpp>

#include <cstdlib>

using namespace avr_webhookd::test;

namespace {

constexpr std::string_view call = "550e8400-e29b-41d4-a716-446655440000";

// make sanitize (ASan + UBSan, several times slower) runs a tenth of the bursts: still hundreds
// of times more replies than max_reply_backlog holds.
#if defined(__SANITIZE_ADDRESS__)
constexpr std::uint64_t scale = 10;
#else
constexpr std::uint64_t scale = 1;
#endif
constexpr std::uint64_t burst_lines = 1'000'000 / scale;

// With the spool the burst is 200,000 lines: a million take 35-45 s on the 2-core VM, nearly all
// of it the spool's writes (two pwrite calls per record); AVR_WEBHOOKD_SPOOL_BURST sets another
// count, e.g. 1000000.
std::uint64_t spool_burst_lines() {
    const char* count = std::getenv("AVR_WEBHOOKD_SPOOL_BURST");
    return count ? std::strtoull(count, nullptr, 10) : 200'000 / scale;
}

// Where nothing listens: with retries an hour apart the events stay queued (and spooled), and no
// delivery competes with intake.
std::string nowhere() {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor acceptor(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/";
}

std::vector<std::string> undelivered_flags(const TempDir& dir, std::uint64_t queue) {
    return {"--url",
            nowhere(),
            "--ack",
            "all",
            "--admin",
            (dir / "admin.sock").string(),
            "--max-queue",
            std::to_string(queue),
            "--retry",
            "-1",
            "--retry-base",
            "1h",
            "--retry-max-delay",
            "1h"};
}

PipelinedProducer::LineSource same_line(const std::string& line) {
    return [text = line + "\n"](std::uint64_t, std::string& out) { out += text; };
}

// Reply `index` is the "ok" of line `index`.
bool ok_for_line(std::uint64_t index, std::string_view reply) {
    return reply.starts_with("{\"ok\":true,\"line\":" + std::to_string(index) + ",\"id\":\"");
}

double admin_metric(const TempDir& dir, const std::string& name) {
    return metric(admin_text(dir / "admin.sock", "/metrics"), "avr_webhookd_" + name);
}

// Writes without reading until the daemon stops taking lines, and waits until it says so.
void pause(const TempDir& dir, PipelinedProducer& producer) {
    REQUIRE(producer.write_until_stalled(1s, 60s));
    REQUIRE(wait_until([&] { return admin_metric(dir, "producer_connections_paused") == 1; }, 30s));
}

void check_burst(PipelinedProducer& producer, std::uint64_t lines) {
    INFO(producer.first_wrong());
    CHECK(producer.replies() == lines);
    CHECK(producer.first_wrong().empty());
}

}  // namespace

TEST_CASE("ack = all: a burst of pipelined lines gets an ok reply for every line in line order with the spool",
          "[integration][intake][acks]") {
    TempDir dir;
    DaemonProcess daemon(dir, undelivered_flags(dir, 2 * spool_burst_lines()));  // spool_sync = always
    REQUIRE(daemon.wait_ready());
    const auto lines = spool_burst_lines();
    PipelinedProducer producer(daemon.socket(), lines, same_line(event_line(call, "interruption")), ok_for_line);
    REQUIRE(producer.run(100s));
    check_burst(producer, lines);
    CHECK(admin_metric(dir, "events_received_total") == lines);
    CHECK(admin_metric(dir, "spool_records") == lines);  // every acknowledged event is in the spool
    CHECK(admin_metric(dir, "producer_replies_dropped_total") == 0);
    REQUIRE(daemon.stop());
}

TEST_CASE("ack = all: a million pipelined lines get a million ok replies in line order in memory only",
          "[integration][intake][acks]") {
    TempDir dir;
    auto flags = undelivered_flags(dir, 1000);
    // Taken and acknowledged but not forwarded (`types`), so memory holds no backlog of them:
    // without a spool an "ok" goes out as the line is taken, forwarded or not.
    flags.insert(flags.end(), {"--spool-dir", "", "--types", "call_ended"});
    DaemonProcess daemon(dir, flags);
    REQUIRE(daemon.wait_ready());
    PipelinedProducer producer(daemon.socket(), burst_lines, same_line(event_line(call, "interruption")), ok_for_line);
    REQUIRE(producer.run(100s));
    check_burst(producer, burst_lines);
    CHECK(admin_metric(dir, "events_received_total") == burst_lines);
    CHECK(admin_metric(dir, "producer_replies_dropped_total") == 0);
    REQUIRE(daemon.stop());
}

TEST_CASE("ack = errors: a producer that reads gets every rejection of a long burst", "[integration][intake][acks]") {
    TempDir dir;
    auto flags = undelivered_flags(dir, 1000);
    flags[3] = "errors";
    flags.insert(flags.end(), {"--spool-dir", "", "--types", "call_ended"});
    DaemonProcess daemon(dir, flags);
    REQUIRE(daemon.wait_ready());
    const std::uint64_t lines = 200'000 / scale;
    const std::string good = event_line(call, "interruption") + "\n", bad = "{\"uuid\":\"nope\",\"type\":\"x\"}\n";
    PipelinedProducer producer(
        daemon.socket(), lines, [&](std::uint64_t number, std::string& out) { out += number % 100 ? good : bad; },
        [](std::uint64_t index, std::string_view reply) {
            return reply.starts_with("{\"ok\":false,\"line\":" + std::to_string(100 * index) + ",");
        });
    REQUIRE(producer.run(100s));
    check_burst(producer, lines / 100);
    CHECK(admin_metric(dir, "producer_replies_dropped_total") == 0);
    REQUIRE(daemon.stop());
}

TEST_CASE("ack = all: a producer that stops reading is paused while others go on and gets every reply once it reads",
          "[integration][intake][acks]") {
    TempDir dir;
    DaemonProcess daemon(dir, undelivered_flags(dir, 1'000'000));
    REQUIRE(daemon.wait_ready());
    const std::uint64_t lines = 100'000;  // ~7 MB of replies
    PipelinedProducer producer(daemon.socket(), lines, same_line(event_line(call, "interruption")), ok_for_line);
    pause(dir, producer);

    // Its later lines are not taken: they wait in the socket until it reads.
    const auto received = admin_metric(dir, "events_received_total");
    CHECK(received < static_cast<double>(producer.lines_written()));
    CHECK(producer.unread_by_daemon() > 0);
    CHECK(admin_metric(dir, "producer_reads_paused_total") >= 1);
    CHECK(admin_metric(dir, "producer_replies_dropped_total") == 0);
    CHECK_THAT(daemon.log(), Catch::Contains("bytes of replies it has not read (max_reply_backlog=65536)"));

    // Another producer is served meanwhile.
    const auto other = exchange(daemon.socket(), event_line(call_uuid(7), "call_started") + "\n");
    REQUIRE(other.size() == 1);
    CHECK(other[0].starts_with("{\"ok\":true,\"line\":1,"));

    REQUIRE(producer.run(100s));
    check_burst(producer, lines);
    CHECK(admin_metric(dir, "events_received_total") == lines + 1);
    CHECK(admin_metric(dir, "producer_connections_paused") == 0);
    REQUIRE(daemon.stop());
}

TEST_CASE("ack = all: a paused producer does not hold up a stop", "[integration][intake][acks]") {
    TempDir dir;
    DaemonProcess daemon(dir, undelivered_flags(dir, 1'000'000));
    REQUIRE(daemon.wait_ready());
    PipelinedProducer producer(daemon.socket(), 100'000, same_line(event_line(call, "interruption")), ok_for_line);
    pause(dir, producer);
    const auto exit = daemon.stop();
    REQUIRE(exit);
    CHECK(exit->success());
    CHECK_THAT(daemon.log(), Catch::Contains("did not read its replies within 2000ms of the stop"));
    CHECK_THAT(daemon.log(), !Catch::Contains("producer connections still open"));
}

TEST_CASE("ack = all: at max_connections a producer paused without reading for partial_line_timeout makes room",
          "[integration][intake][acks][limits]") {
    TempDir dir;
    auto flags = undelivered_flags(dir, 1'000'000);
    flags.insert(flags.end(), {"--max-connections", "1", "--partial-line-timeout", "1s"});
    DaemonProcess daemon(dir, flags);
    REQUIRE(daemon.wait_ready());
    const std::string farewell = "without reading its replies";
    PipelinedProducer producer(daemon.socket(), 100'000, same_line(event_line(call, "interruption")),
                               [&](std::uint64_t index, std::string_view reply) {
                                   return ok_for_line(index, reply) || reply.find(farewell) != std::string_view::npos;
                               });
    pause(dir, producer);
    // Refused while it has been paused less than partial_line_timeout, then served.
    REQUIRE(wait_until(
        [&] {
            const auto replies = exchange(daemon.socket(), event_line(call_uuid(7), "call_started") + "\n");
            return replies.size() == 1 && replies[0].starts_with("{\"ok\":true");
        },
        30s));
    CHECK(admin_metric(dir, "producer_connections_evicted_total") == 1);
    CHECK_THAT(daemon.log(), Catch::Contains(farewell + " (its unread lines were not taken)"));
    // What it was answered before it is closed is still in line order (the close may reset the
    // connection: the daemon did not read all it had sent).
    producer.run(30s);
    INFO(producer.first_wrong());
    CHECK(producer.first_wrong().empty());
    CHECK(producer.replies() < 100'000);
    REQUIRE(daemon.stop());
}
