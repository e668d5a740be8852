// Producers that misbehave, on purpose or by accident: long lines back to back, never reading,
// staying idle, disconnecting mid-line, not being allowed, and a stop while lines wait for room.
// The daemon stays up, bounded, and every line it read is accounted for (issue 7).
#include "../support/daemon_fixture.hpp"

#include <avr_webhookd/intake/event_sink.hpp>
#include <avr_webhookd/intake/intake_server.hpp>
#include <avr_webhookd/ops/logger.hpp>
#include <avr_webhookd/ops/metrics.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <algorithm>

#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

using namespace avr_webhookd::test;
namespace asio = boost::asio;

namespace {

constexpr std::string_view call = "550e8400-e29b-41d4-a716-446655440000";

int connect_to(const std::filesystem::path& socket) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    return fd;
}

void send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const auto written = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        REQUIRE(written > 0);
        data.remove_prefix(static_cast<std::size_t>(written));
    }
}

// True when the daemon has read every byte this socket sent (nothing left in the kernel).
bool all_read_by_peer(int fd) {
    int unread = -1;
    return ::ioctl(fd, SIOCOUTQ, &unread) == 0 && unread == 0;
}

std::string long_transcription(std::size_t i, std::size_t length) {
    return event_line(call_uuid(static_cast<unsigned>(i % 3)), "transcription",
                      std::string(length, static_cast<char>('a' + i % 26)), "long-" + std::to_string(i));
}


}  // namespace

TEST_CASE("hostile producer: 300 transcription lines of 5,000 characters back to back",
          "[integration][hostile][intake]") {
    // Issue 7, item 1: 30 such lines on one connection ended the daemon with std::bad_alloc.
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--ack", "all"});
    REQUIRE(daemon.wait_ready());
    for (const std::size_t count : {30u, 300u}) {
        std::string input;
        for (std::size_t i = 0; i < count; ++i) input += long_transcription(i, 5000) + "\n";
        const auto replies = exchange(daemon.socket(), input, 60s);
        REQUIRE(replies.size() == count);
        for (const auto& reply : replies) REQUIRE(reply.rfind("{\"ok\":true", 0) == 0);
        REQUIRE(daemon.process().running());
    }
    CHECK(receiver.wait_for_requests(330, 60s));
    const auto exit = daemon.stop();
    REQUIRE(exit);
    CHECK(exit->success());
}

TEST_CASE("hostile producers: idle connections at max_connections make room for a new one",
          "[integration][hostile][limits]") {
    // Issue 7, item 7: max_connections silent sockets kept every later producer out.
    TempDir dir;
    ReceiverThread receiver;
    const auto admin = dir / "admin.sock";
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--max-connections", "2", "--admin", admin.string()});
    REQUIRE(daemon.wait_ready());
    const int oldest = connect_to(daemon.socket());
    REQUIRE(wait_until([&] { return metric(admin_text(admin, "/metrics"), "avr_webhookd_producer_connections") == 1; },
                       10s));
    const int newer = connect_to(daemon.socket());
    send_all(newer, event_line(call, "call_started") + "\n");  // active, but now idle again
    REQUIRE(receiver.wait_for_requests(1));

    // A third producer at the limit is served; the longest-idle one is told why and closed.
    const auto replies = exchange(daemon.socket(), event_line(call, "call_ended") + "\n", 10s);
    CHECK(replies.empty());
    CHECK(receiver.wait_for_requests(2));
    const auto evicted = read_until_closed(oldest, 10s);
    CHECK_THAT(evicted, Catch::Contains("max_connections=2 was reached") && Catch::Contains("idle longest"));
    pollfd still_open{newer, POLLIN, 0};
    CHECK(::poll(&still_open, 1, 0) == 0);  // the more recently active one is untouched
    const auto metrics = admin_text(admin, "/metrics");
    CHECK(metric(metrics, "avr_webhookd_producer_connections_evicted_total") == 1);
    CHECK(metric(metrics, "avr_webhookd_producer_connections_refused_total") == 0);
    CHECK_THAT(daemon.log(), Catch::Contains("to make room for a new producer"));
    ::close(oldest);
    ::close(newer);
    REQUIRE(daemon.stop());
}

TEST_CASE("hostile producers: busy connections at max_connections are not evicted, the new one is refused",
          "[integration][hostile][limits]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--max-connections", "2"});
    REQUIRE(daemon.wait_ready());
    // Each holds half a line: closing it would lose what its producer sent.
    const int first = connect_to(daemon.socket()), second = connect_to(daemon.socket());
    send_all(first, "{\"uuid\":\"");
    send_all(second, "{\"uuid\":\"");
    REQUIRE(wait_until([&] { return all_read_by_peer(first) && all_read_by_peer(second); }, 10s));
    const auto replies = exchange(daemon.socket(), event_line(call, "call_started") + "\n", 10s);
    REQUIRE(replies.size() == 1);
    CHECK_THAT(replies[0], Catch::Contains("too many producer connections (max_connections=2)"));
    // Both finish their lines and are served.
    send_all(first, std::string(call) + "\",\"type\":\"call_started\"}\n");
    send_all(second, std::string(call) + "\",\"type\":\"call_ended\"}\n");
    CHECK(receiver.wait_for_requests(2));
    ::close(first);
    ::close(second);
    REQUIRE(daemon.stop());
}

TEST_CASE("hostile producers: a producer silent mid-line past partial_line_timeout makes room at max_connections",
          "[integration][hostile][limits]") {
    // One byte of a line must not pin a connection slot forever.
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--max-connections", "2", "--partial-line-timeout", "1s"});
    REQUIRE(daemon.wait_ready());
    const int first = connect_to(daemon.socket()), second = connect_to(daemon.socket());
    send_all(first, "{");
    send_all(second, "{");
    REQUIRE(wait_until([&] { return all_read_by_peer(first) && all_read_by_peer(second); }, 10s));
    const auto silent_since = std::chrono::steady_clock::now();
    // Within the timeout both are busy: a newcomer is refused.
    const auto early = exchange(daemon.socket(), event_line(call, "call_started") + "\n", 10s);
    if (std::chrono::steady_clock::now() - silent_since < 900ms) {
        REQUIRE(early.size() == 1);
        CHECK_THAT(early[0], Catch::Contains("too many producer connections"));
    }
    REQUIRE(wait_until([&] { return std::chrono::steady_clock::now() - silent_since > 1100ms; }, 5s));
    const auto replies = exchange(daemon.socket(), event_line(call, "call_started", {}, "late") + "\n", 10s);
    CHECK(replies.empty());
    const bool late_delivered = receiver.receiver().wait_for(
        [](const std::vector<avr_webhookd::ReceivedRequest>& requests) {
            return std::any_of(requests.begin(), requests.end(),
                               [](const auto& request) { return header(request, "x-avr-webhook-id") == "late"; });
        },
        10s);
    CHECK(late_delivered);
    // The evicted producer is told why, and its partial line is answered as a rejected line.
    const auto evicted = read_until_closed(first, 10s) + read_until_closed(second, 1s);
    CHECK_THAT(evicted, Catch::Contains("max_connections=2 was reached"));
    CHECK_THAT(evicted, Catch::Contains("\"line\":1"));
    ::close(first);
    ::close(second);
    REQUIRE(daemon.stop());
}

TEST_CASE("hostile producer: numbers that grow when written out cannot make an event larger than 2 x max_line",
          "[integration][hostile][limits]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--max-line", "256", "--ack", "all"});
    REQUIRE(daemon.wait_ready());
    std::string numbers;
    for (int i = 0; i < 30; ++i) numbers += std::string(i ? "," : "") + "1e20";  // 5 bytes each, 22 written out
    const std::string grows =
        "{\"uuid\":\"" + std::string(call) + "\",\"type\":\"call_initiated\",\"payload\":{\"n\":[" + numbers + "]}}";
    REQUIRE(grows.size() <= 256);
    const auto replies =
        avr_webhookd::test::exchange(daemon.socket(), grows + "\n" + event_line(call, "call_ended", {}, "fine") + "\n");
    REQUIRE(replies.size() == 2);
    CHECK_THAT(replies[0], Catch::Contains("\"ok\":false") && Catch::Contains("larger than 2 x max_line=256"));
    CHECK(replies[1] == R"({"ok":true,"line":2,"id":"fine"})");
    REQUIRE(receiver.wait_for_requests(1));
    CHECK(receiver.requests().size() == 1);
    REQUIRE(daemon.stop());
}

TEST_CASE("hostile producer: disconnecting mid-line or with a reset costs that line only",
          "[integration][hostile][intake]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url()});
    REQUIRE(daemon.wait_ready());
    {
        const int fd = connect_to(daemon.socket());
        send_all(fd, event_line(call, "call_started") + "\n" + "{\"uuid\":\"" + std::string(call) + "\",\"ty");
        ::close(fd);  // half a line: rejected as invalid JSON at end of stream
    }
    {
        const int fd = connect_to(daemon.socket());
        send_all(fd, event_line(call, "interruption") + "\n{\"uuid\":");
        REQUIRE(wait_until([&] { return all_read_by_peer(fd); }, 10s));
        linger reset{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        ::close(fd);
    }
    REQUIRE(receiver.wait_for_requests(2));
    CHECK(exchange(daemon.socket(), event_line(call, "call_ended") + "\n").empty());
    CHECK(receiver.wait_for_requests(3));
    REQUIRE(daemon.process().running());
    REQUIRE(daemon.stop());
}

TEST_CASE("producer allow-list: uids and gids outside it are refused with a reply", "[integration][hostile][access]") {
    TempDir dir;
    ReceiverThread receiver;
    const auto uid = std::to_string(::geteuid()), other = std::to_string(::geteuid() + 1);
    const auto gid = std::to_string(::getegid()), other_gid = std::to_string(::getegid() + 1);
    {
        DaemonProcess daemon(dir, {"--url", receiver.url(), "--producer-uids", other, "--producer-gids", other_gid}, {},
                             "refusing");
        REQUIRE(daemon.wait_ready());
        const auto replies = exchange(daemon.socket(), event_line(call, "call_started") + "\n");
        REQUIRE(replies.size() == 1);
        const auto reply = boost::json::parse(replies[0]).as_object();
        CHECK(reply.at("ok").as_bool() == false);
        CHECK_THAT(std::string(reply.at("error").as_string()), Catch::Contains("producer not allowed"));
        CHECK_THAT(daemon.log(), Catch::Contains("refused a producer connection from pid") &&
                                     Catch::Contains("uid " + uid) && Catch::Contains("producer_uids (" + other + ")"));
        REQUIRE(daemon.stop());
    }
    for (const auto& allowed :
         std::vector<std::vector<std::string>>{{"--producer-uids", other + "," + uid}, {"--producer-gids", gid}}) {
        DaemonProcess daemon(dir, {"--url", receiver.url(), allowed[0], allowed[1], "--log-level", "debug"}, {},
                             "allowing" + allowed[0]);
        REQUIRE(daemon.wait_ready());
        CHECK(exchange(daemon.socket(), event_line(call, "call_started") + "\n").empty());
        CHECK_THAT(daemon.log(), Catch::Contains("opened") && Catch::Contains("uid " + uid));
        REQUIRE(daemon.stop());
    }
    CHECK(receiver.wait_for_requests(2));
    CHECK(receiver.requests().size() == 2);
}

namespace {

// Lines waiting for room (queue_full = block) when the daemon is stopped at once: every one the
// daemon read must end in the dead-letter file (issue 7, item 9).
// Without a spool the held lines are dead-lettered; with one they are stored there.
void stop_with_lines_waiting_for_room(const std::vector<std::string>& extra_arguments, int signals,
                                      bool spool = false) {
    TempDir dir;
    std::vector<std::string> arguments = {"--url",
                                          "http://127.0.0.1:1/down",
                                          "--retry",
                                          "-1",
                                          "--max-queue",
                                          "5",
                                          "--queue-full",
                                          "block",
                                          "--retry-base",
                                          "1h",
                                          "--retry-max-delay",
                                          "1h",
                                          "--max-age",
                                          "2h"};
    arguments.insert(arguments.end(), extra_arguments.begin(), extra_arguments.end());
    if (!spool) arguments.insert(arguments.end(), {"--spool-dir", ""});
    DaemonProcess daemon(dir, arguments);
    REQUIRE(daemon.wait_ready());
    constexpr int lines = 200;
    std::string input;
    for (int i = 0; i < lines; ++i)
        input +=
            event_line(call_uuid(static_cast<unsigned>(i % 4)), "interruption", {}, "held-" + std::to_string(i)) + "\n";
    const int fd = connect_to(daemon.socket());
    send_all(fd, input);
    REQUIRE(wait_until([&] { return all_read_by_peer(fd); }, 10s));  // the daemon holds them now

    REQUIRE(daemon.process().send_signal(SIGTERM));
    if (signals == 2) {
        REQUIRE(daemon.process().wait_for_output("shutting down", 10s));
        REQUIRE(daemon.process().send_signal(SIGTERM));
    }
    const auto exit = daemon.process().wait(30s);
    REQUIRE(exit);
    CHECK(exit->success());
    ::close(fd);

    INFO(daemon.log());
    if (spool) {
        CHECK(read_lines(daemon.dead_letter()).empty());
        Process status({{daemon_binary(), "spool-status", "--spool-dir", daemon.spool().string()},
                        minimal_environment(),
                        dir.path(),
                        "status"});
        REQUIRE(status.wait(20s));
        CHECK_THAT(status.stdout_text(), Catch::Contains("events waiting: " + std::to_string(lines)));
        return;
    }
    std::set<std::string> dead;
    for (const auto& line : read_lines(daemon.dead_letter()))
        dead.insert(std::string(boost::json::parse(line).as_object().at("id").as_string()));
    CHECK(dead.size() == lines);
    for (int i = 0; i < lines; ++i) CHECK(dead.contains("held-" + std::to_string(i)));
}

}  // namespace

TEST_CASE("a second signal dead-letters lines read from producers and waiting for room",
          "[integration][hostile][shutdown]") {
    stop_with_lines_waiting_for_room({}, 2);
}

TEST_CASE("shutdown_timeout = 0 dead-letters lines read from producers and waiting for room",
          "[integration][hostile][shutdown]") {
    stop_with_lines_waiting_for_room({"--shutdown-timeout", "0"}, 1);
}

TEST_CASE("with a spool, both stops keep lines read from producers and waiting for room in the spool",
          "[integration][hostile][shutdown][spool]") {
    SECTION("second signal") { stop_with_lines_waiting_for_room({}, 2, true); }
    SECTION("shutdown_timeout = 0") { stop_with_lines_waiting_for_room({"--shutdown-timeout", "0"}, 1, true); }
}

namespace {

// A sink whose submit() fails for some lines, and whose wait for room can fail too.
class FaultySink final : public avr_webhookd::EventSink {
public:
    Receipt submit(avr_webhookd::Event&& event) override {
        if (event.type == "dtmf_digit") throw std::bad_alloc();
        if (event.type == "error") throw std::runtime_error("a bug in submit");
        accepted.push_back(event.id);
        return Admission::queued;
    }
    bool has_room() const override { return !full; }
    asio::awaitable<void> wait_for_room() override {
        throw std::runtime_error("a bug while waiting for room");
        co_return;
    }
    std::vector<std::string> accepted;
    bool full = false;
};

}  // namespace

TEST_CASE("one event, one failure: an exception for one line rejects that line, for one connection closes it",
          "[integration][hostile][intake]") {
    TempDir dir;
    const auto log_path = dir / "log.txt";
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(log_fd >= 0);
    avr_webhookd::Logger logger({}, log_fd);
    avr_webhookd::Metrics metrics;
    FaultySink sink;
    asio::io_context io;
    const std::filesystem::path socket = dir / "intake.sock";  // a path, so that std::exchange is no candidate
    avr_webhookd::IntakeOptions options;
    options.socket_path = socket.string();
    options.ack = avr_webhookd::AckMode::all;
    avr_webhookd::IntakeServer intake(io, options, sink, logger, metrics);
    intake.bind();
    intake.start();
    auto work = asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });

    const std::string digit =
        "{\"uuid\":\"" + std::string(call) + "\",\"type\":\"dtmf_digit\",\"payload\":{\"digit\":\"5\"}}";
    const std::string error =
        "{\"uuid\":\"" + std::string(call) + "\",\"type\":\"error\",\"payload\":{\"message\":\"m\"}}";
    const auto replies =
        avr_webhookd::test::exchange(socket, event_line(call, "call_started", {}, "a") + "\n" + digit + "\n" + error +
                                                 "\n" + event_line(call, "call_ended", {}, "b") + "\n");
    REQUIRE(replies.size() == 4);
    CHECK(replies[0] == R"({"ok":true,"line":1,"id":"a"})");
    CHECK_THAT(replies[1], Catch::Contains("\"line\":2") && Catch::Contains("internal error"));
    CHECK_THAT(replies[2], Catch::Contains("\"line\":3") && Catch::Contains("a bug in submit"));
    CHECK(replies[3] == R"({"ok":true,"line":4,"id":"b"})");

    // An exception in a connection's coroutine (here while waiting for room) ends that
    // connection, not the process; the next producer is served.
    asio::post(io, [&] { sink.full = true; });
    CHECK(avr_webhookd::test::exchange(socket, event_line(call, "call_started", {}, "c") + "\n", 10s).empty());
    asio::post(io, [&] { sink.full = false; });
    CHECK(avr_webhookd::test::exchange(socket, event_line(call, "call_ended", {}, "d") + "\n").size() == 1);

    std::promise<void> stopped;
    asio::post(io, [&] {
        intake.stop();
        stopped.set_value();
    });
    stopped.get_future().wait();
    work.reset();
    io.stop();
    runner.join();
    ::close(log_fd);

    CHECK(sink.accepted == std::vector<std::string>{"a", "b", "d"});
    CHECK(metrics.events_rejected.at("internal_error") == 2);
    CHECK(metrics.producer_connection_errors == 1);
    std::ifstream log_file(log_path);
    const std::string log((std::istreambuf_iterator<char>(log_file)), std::istreambuf_iterator<char>());
    CHECK_THAT(log, Catch::Contains("line 2: internal error while handling it: std::bad_alloc"));
    CHECK_THAT(log, Catch::Contains("internal error on producer connection") &&
                        Catch::Contains("a bug while waiting for room") && Catch::Contains("daemon keeps serving"));
}
