// Delivery's limits and failure containment: max_queue_bytes at its edge, dead_letter_max_bytes,
// and one event's unexpected exception costing that event only.
#include "../support/daemon_fixture.hpp"

#include <avr_webhookd/delivery/deliverer.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <fcntl.h>

#include <csignal>

using namespace avr_webhookd;
using namespace avr_webhookd::test;

namespace {

constexpr std::string_view call = "550e8400-e29b-41d4-a716-446655440000";

Event make_event(std::string id, std::size_t body_size) {
    Event event;
    event.id = std::move(id);
    event.uuid = std::string(call);
    event.type = "transcription";
    event.timestamp = "2024-01-01T12:00:00.000Z";
    // A body as intake makes it, its text `body_size` bytes long.
    event.body = R"({"uuid":")" + event.uuid + R"(","type":"transcription","timestamp":")" + event.timestamp +
                 R"(","payload":{"role":"user","text":")" + std::string(body_size, 'x') + R"("}})";
    event.accepted_at = std::chrono::steady_clock::now();
    event.accepted_wall = std::chrono::system_clock::now();
    return event;
}

// An in-process Deliverer; `null_log` swallows its log lines.
struct InProcess {
    explicit InProcess(Config config)
        : null_log(::open("/dev/null", O_WRONLY | O_CLOEXEC)),
          logger(Logger::Options{}, null_log),
          deliverer(io, config, logger, metrics) {}
    ~InProcess() { ::close(null_log); }

    template <typename Predicate>
    bool run_until(Predicate done, std::chrono::milliseconds timeout = 10s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done() && std::chrono::steady_clock::now() < deadline) {
            io.restart();
            io.run_for(10ms);
        }
        return done();
    }

    boost::asio::io_context io;
    int null_log;
    Logger logger;
    Metrics metrics;
    Deliverer deliverer;
};

Config base_config(const TempDir& dir, std::string url = "http://127.0.0.1:9/") {
    Config config;
    config.url = std::move(url);
    config.dead_letter = (dir / "dead-letter.ndjson").string();
    config.retry = 0;
    return config;
}

}  // namespace

TEST_CASE("max_queue_bytes with reject: an event that fits is queued, one byte more is dead-lettered",
          "[integration][limits]") {
    TempDir dir;
    Config config = base_config(dir);
    config.max_queue_bytes = 64 << 10;
    config.queue_full = QueueFullPolicy::reject;
    InProcess daemon(config);  // not started: nothing is attempted, the queue only fills
    auto& deliverer = daemon.deliverer;

    const auto first = make_event("first", 40000);
    const auto first_cost = CallQueues::event_cost(first);
    const auto overhead = CallQueues::event_cost(make_event("second", 0));
    REQUIRE(deliverer.submit(make_event("first", 40000)) == EventSink::Admission::queued);

    // One byte over the bound: refused, and written to the dead-letter file instead.
    const std::size_t exact = config.max_queue_bytes - first_cost - overhead;
    CHECK(deliverer.submit(make_event("second", exact + 1)) == EventSink::Admission::dead_lettered);
    CHECK(daemon.metrics.destination("default").queue_full.at("bytes") == 1);
    // Exactly at the bound: queued.
    CHECK(deliverer.submit(make_event("second", exact)) == EventSink::Admission::queued);
    CHECK(deliverer.queues().queued_bytes() == config.max_queue_bytes);
    CHECK_FALSE(deliverer.has_room());
    deliverer.update_gauges();
    CHECK(daemon.metrics.destination("default").queued_bytes == config.max_queue_bytes);

    REQUIRE(daemon.run_until([&] { return deliverer.dead_letters_pending() == 0; }));
    const auto dead = read_lines(dir / "dead-letter.ndjson");
    REQUIRE(dead.size() == 1);
    CHECK_THAT(dead[0], Catch::Contains("\"reason\":\"queue_full\"") && Catch::Contains("max_queue_bytes=65536"));
    CHECK(daemon.metrics.destination("default").events_dead_lettered == 1);  // counted once synced
}

TEST_CASE("max_queue_bytes with block: no room once the largest possible event would not fit",
          "[integration][limits]") {
    TempDir dir;
    Config config = base_config(dir);
    config.max_queue_bytes = 64 << 10;
    config.max_line = 1000;
    config.queue_full = QueueFullPolicy::block;
    InProcess daemon(config);
    auto& deliverer = daemon.deliverer;
    CHECK(deliverer.has_room());
    const auto largest = 2 * config.max_line + CallQueues::event_overhead_bytes;
    // Fill to exactly one largest event below the bound: there is still room for it.
    const auto filler_cost = CallQueues::event_cost(make_event("a", 0));
    const std::size_t filler_body = config.max_queue_bytes - largest - filler_cost;
    REQUIRE(deliverer.submit(make_event("a", filler_body)) == EventSink::Admission::queued);
    CHECK(deliverer.has_room());
    CHECK(daemon.metrics.destination("default").queue_full.empty());
    REQUIRE(deliverer.submit(make_event("b", 0)) == EventSink::Admission::queued);
    CHECK_FALSE(deliverer.has_room());  // producers are held from here on
    CHECK(daemon.metrics.destination("default").queue_full.at("bytes") == 1);
}

TEST_CASE("an exception while attempting one event dead-letters it as internal_error, the call moves on",
          "[integration][limits]") {
    TempDir dir;
    ReceiverOptions options;
    options.listen = "127.0.0.1:0";
    options.quiet = true;
    ReceiverThread receiver(options);
    InProcess daemon(base_config(dir, receiver.url()));
    auto& deliverer = daemon.deliverer;
    deliverer.set_attempt_hook([](const Event& event) {
        if (event.id == "boom") throw std::runtime_error("injected failure");
    });
    deliverer.start();
    REQUIRE(deliverer.submit(make_event("boom", 10)) == EventSink::Admission::queued);
    REQUIRE(deliverer.submit(make_event("after", 10)) == EventSink::Admission::queued);
    REQUIRE(daemon.run_until([&] {
        return receiver.requests().size() == 1 && deliverer.dead_letters_pending() == 0 &&
               deliverer.queues().queued() == 0;
    }));
    CHECK(header(receiver.requests().at(0), "x-avr-webhook-id") == "after");
    CHECK(header(receiver.requests().at(0), "x-avr-webhook-sequence") == "2");
    const auto dead = read_lines(dir / "dead-letter.ndjson");
    REQUIRE(dead.size() == 1);
    const auto failure = boost::json::parse(dead[0]).as_object().at("failure").as_object();
    CHECK(failure.at("reason").as_string() == "internal_error");
    CHECK(failure.at("code").as_string() == "INTERNAL_ERROR");
    CHECK_THAT(std::string(failure.at("message").as_string()), Catch::Contains("injected failure"));
    CHECK(daemon.metrics.destination("default").delivery_attempts_failed.at("internal_error") == 1);

    bool stopped = false;
    boost::asio::co_spawn(daemon.io, deliverer.shut_down(std::chrono::milliseconds(0)),
                          [&](std::exception_ptr) { stopped = true; });
    REQUIRE(daemon.run_until([&] { return stopped; }));
}

TEST_CASE("dead_letter_max_bytes: a given-up event beyond it is logged whole and counted", "[integration][limits]") {
    TempDir dir;
    ReceiverOptions options;
    options.status_for_type["call_started"] = 400;
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--dead-letter-max-bytes", "1"});
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), event_line(call, "call_started", {}, "refused-1") + "\n" +
                                  event_line(call, "transcription", "still served", "ok-2") + "\n");
    REQUIRE(receiver.wait_for_requests(2));
    REQUIRE(daemon.process().wait_for_output("is full (dead_letter_max_bytes=1)", 10s));
    CHECK_THAT(daemon.log(), Catch::Contains("\"id\":\"refused-1\""));  // the whole event is in the log
    CHECK(read_lines(daemon.dead_letter()).empty());
    CHECK(receiver.requests().at(1).status_sent == 200);
    REQUIRE(daemon.stop());
}

TEST_CASE("max_queue_bytes with reject through the daemon: big lines beyond the bound are dead-lettered",
          "[integration][limits]") {
    TempDir dir;
    ReceiverOptions options;
    options.delay = 300ms;
    ReceiverThread receiver(options);
    // Memory only: with the spool, events behind a call's head are parked and count 64 bytes each.
    DaemonProcess daemon(
        dir, {"--url", receiver.url(), "--max-queue-bytes", "65536", "--queue-full", "reject", "--spool-dir", ""});
    REQUIRE(daemon.wait_ready());
    std::string input;
    for (int i = 0; i < 8; ++i)
        input += event_line(call, "transcription", std::string(20000, 'a'), "big" + std::to_string(i)) + "\n";
    const auto replies = exchange(daemon.socket(), input);
    CHECK(replies.size() >= 5);  // at most three 20 KB events fit in 64 KiB
    for (const auto& reply : replies) CHECK_THAT(reply, Catch::Contains("queue full"));
    REQUIRE(receiver.wait_for_requests(8 - replies.size(), 20s));
    REQUIRE(wait_until([&] { return read_lines(daemon.dead_letter()).size() == replies.size(); }, 10s));
    REQUIRE(daemon.stop());
    CHECK(receiver.requests().size() == 8 - replies.size());
}

TEST_CASE("a file size limit (LimitFSIZE) fails a dead-letter write instead of killing the daemon",
          "[integration][limits]") {
    if (!program_available("prlimit")) {
        WARN("prlimit (util-linux) is not installed; skipped");
        return;
    }
    TempDir dir;
    ReceiverOptions options;
    options.status_for_type["transcription"] = 400;
    ReceiverThread receiver(options);
    const auto socket = dir / "daemon.sock";
    const auto dead_letter = dir / "dead.ndjson";
    // Every file the daemon writes (its log too) is limited to 1500 bytes: one dead-letter line
    // of about 800 bytes fits, a second does not.
    Process daemon(
        {{"prlimit", "--fsize=1500", "--", daemon_binary(), "--config", "", "--socket", socket.string(),
          "--dead-letter", dead_letter.string(), "--spool-dir", "", "--url", receiver.url(), "--log-level", "error"},
         minimal_environment(),
         dir.path(),
         "daemon"});
    REQUIRE(wait_until([&] { return !daemon.running() || can_connect(socket); }, 10s));
    REQUIRE(daemon.running());
    const std::string text(400, 'x');
    avr_webhookd::test::exchange(socket, event_line(call, "transcription", text, "refused-1") + "\n");
    REQUIRE(wait_until([&] { return read_lines(dead_letter).size() == 1; }, 10s));
    // These no longer fit: each is rolled back and logged whole at error level, so the log file
    // reaches the limit too, and a write past a file size limit raises SIGXFSZ.
    std::string input;
    for (int i = 2; i <= 5; ++i)
        input += event_line(call, "transcription", text, "refused-" + std::to_string(i)) + "\n";
    avr_webhookd::test::exchange(socket, input + event_line(call, "call_ended", {}, "ok-6") + "\n");
    REQUIRE(receiver.wait_for_requests(6));
    CHECK(receiver.requests().at(5).status_sent == 200);
    CHECK(daemon.running());
    const auto lines = read_lines(dead_letter);
    REQUIRE(lines.size() == 1);  // the second line did not fit and was rolled back, not torn
    CHECK_THAT(lines[0], Catch::Contains("refused-1"));
    daemon.send_signal(SIGTERM);
    const auto status = daemon.wait(20s);
    REQUIRE(status);
    CHECK(status->exited());
}
