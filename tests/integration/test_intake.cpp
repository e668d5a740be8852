// The real daemon's intake: replies, limits, many producers, slow readers, socket handling.
#include "../support/daemon_fixture.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <thread>

using namespace avr_webhookd::test;

namespace {

constexpr std::string_view call = "550e8400-e29b-41d4-a716-446655440000";

boost::json::object reply_object(const std::string& line) { return boost::json::parse(line).as_object(); }

}  // namespace

TEST_CASE("intake answers each bad line with its number and reason, and keeps serving", "[integration][intake]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--max-line", "300"});
    REQUIRE(daemon.wait_ready());

    const std::string input = event_line(call, "call_started") + "\n" +  // 1 ok
                              "{not json\n" +                            // 2
                              "\n" +                                     // 3 blank, skipped
                              "{\"uuid\":\"" + std::string(call) + "\",\"type\":\"call_started\",\"x\":1}\r\n" +  // 4
                              "{\"uuid\":\"abc\",\"type\":\"call_started\"}\n" +                                  // 5
                              std::string(400, 'a') + "\n" +                                   // 6 too long
                              "{\"uuid\":\"\xc3\x28\"}\n" +                                    // 7 bad UTF-8
                              event_line(call, "transcription", "last line without newline");  // 8 ok
    const auto replies = exchange(daemon.socket(), input);
    REQUIRE(replies.size() == 5);
    const std::pair<int, std::string_view> expected[] = {{2, "invalid JSON"},
                                                         {4, "unknown key \"x\""},
                                                         {5, "canonical UUID"},
                                                         {6, "line too long"},
                                                         {7, "invalid UTF-8"}};
    for (std::size_t i = 0; i < replies.size(); ++i) {
        INFO(replies[i]);
        const auto reply = reply_object(replies[i]);
        CHECK(reply.at("ok").as_bool() == false);
        CHECK(reply.at("line").to_number<int>() == expected[i].first);
        CHECK_THAT(std::string(reply.at("error").as_string()), Catch::Contains(std::string(expected[i].second)));
    }
    REQUIRE(receiver.wait_for_requests(2));
    const auto requests = receiver.requests();
    CHECK_THAT(requests[1].body, Catch::Contains("last line without newline"));
    CHECK_THAT(daemon.log(), Catch::Contains("line 2 rejected: invalid JSON"));

    // The daemon still serves a new connection after all that.
    CHECK(exchange(daemon.socket(), event_line(call, "call_ended") + "\n").empty());
    CHECK(receiver.wait_for_requests(3));
    REQUIRE(daemon.stop());
}

TEST_CASE("intake acknowledges every line with ack = all", "[integration][intake]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--ack", "all"});
    REQUIRE(daemon.wait_ready());
    const auto replies = exchange(daemon.socket(), event_line(call, "call_started", {}, "my-id-1") + "\n" +
                                                       event_line(call, "interruption") + "\n" + "[]\n");
    REQUIRE(replies.size() == 3);
    CHECK(replies[0] == R"({"ok":true,"line":1,"id":"my-id-1"})");
    const auto second = reply_object(replies[1]);
    CHECK(second.at("ok").as_bool());
    CHECK(second.at("id").as_string().size() == 36);
    CHECK(reply_object(replies[2]).at("ok").as_bool() == false);
    REQUIRE(daemon.stop());
}

// Group writes (issue 21): the lines of one read are stored as one batch, so their replies wait
// for the batch's outcome; every reply must still come in line order, rejections between the
// events included, and each accepted event is delivered once, in its call's order.
TEST_CASE("intake with ack = all answers a write mixing good and bad lines in line order with the spool",
          "[integration][intake][acks]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--ack", "all"});
    REQUIRE(daemon.wait_ready());
    std::string input;
    std::vector<bool> good;
    for (int i = 1; i <= 300; ++i) {
        const bool valid = i % 7 != 3;
        good.push_back(valid);
        input += valid ? event_line(call, "transcription", "line " + std::to_string(i), "id-" + std::to_string(i))
                       : std::string("{not json");
        input += "\n";
    }
    const auto replies = exchange(daemon.socket(), input);
    REQUIRE(replies.size() == good.size());
    std::size_t accepted = 0;
    for (std::size_t i = 0; i < replies.size(); ++i) {
        INFO(replies[i]);
        const auto reply = reply_object(replies[i]);
        CHECK(reply.at("line").to_number<std::size_t>() == i + 1);
        CHECK(reply.at("ok").as_bool() == good[i]);
        if (good[i]) {
            CHECK(reply.at("id").as_string() == "id-" + std::to_string(i + 1));
            ++accepted;
        }
    }
    REQUIRE(receiver.wait_for_requests(accepted));
    const auto requests = receiver.requests();
    std::size_t next = 0;
    for (std::size_t i = 0; i < good.size(); ++i) {
        if (!good[i]) continue;
        REQUIRE(next < requests.size());
        CHECK(header(requests[next], "x-avr-webhook-id") == "id-" + std::to_string(i + 1));
        CHECK(header(requests[next], "x-avr-webhook-sequence") == std::to_string(next + 1));
        ++next;
    }
    REQUIRE(daemon.stop());
}

TEST_CASE("intake takes a line of exactly max_line bytes and rejects one byte more", "[integration][intake][limits]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--max-line", "256", "--ack", "all"});
    REQUIRE(daemon.wait_ready());
    const std::string prefix = event_line(call, "transcription", "");
    const std::string head = prefix.substr(0, prefix.size() - 3);  // ... "text":"
    const std::string tail = "\"}}";
    const std::string exact = head + std::string(256 - head.size() - tail.size(), 'x') + tail;
    const std::string over = head + std::string(257 - head.size() - tail.size(), 'x') + tail;
    REQUIRE(exact.size() == 256);
    const auto replies = exchange(daemon.socket(), exact + "\n" + over + "\n" + exact + "\r\n");
    REQUIRE(replies.size() == 3);
    CHECK(reply_object(replies[0]).at("ok").as_bool());
    CHECK_THAT(replies[1], Catch::Contains("line too long"));
    CHECK(reply_object(replies[2]).at("ok").as_bool());
    REQUIRE(daemon.stop());
}

TEST_CASE("intake serves many concurrent producers without losing a line", "[integration][intake]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--ack", "all"});
    REQUIRE(daemon.wait_ready());
    constexpr int producers = 16, lines_each = 200;
    std::vector<std::thread> threads;
    std::vector<std::size_t> acknowledged(producers);
    for (int p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            std::string input;
            for (int i = 0; i < lines_each; ++i)
                input += event_line(call_uuid(static_cast<unsigned>(p)), "transcription", "line " + std::to_string(i)) +
                         "\n";
            acknowledged[p] = exchange(daemon.socket(), input, 30s).size();
        });
    }
    for (auto& thread : threads) thread.join();
    for (int p = 0; p < producers; ++p) CHECK(acknowledged[p] == lines_each);
    CHECK(receiver.wait_for_requests(producers * lines_each, 30s));
    REQUIRE(daemon.stop());
}

TEST_CASE("intake refuses connections beyond max_connections with a reply when none is idle",
          "[integration][intake][limits]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--max-connections", "2"});
    REQUIRE(daemon.wait_ready());
    // Opens a connection the daemon is serving (proven by a reply to a bad line) and keeps it.
    auto open_served = [&] {
        int fd = -1;
        const bool served = wait_until(
            [&] {
                if (fd >= 0) ::close(fd);
                fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
                sockaddr_un address{};
                address.sun_family = AF_UNIX;
                std::strncpy(address.sun_path, daemon.socket().c_str(), sizeof address.sun_path - 1);
                if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return false;
                if (::send(fd, "[]\n", 3, MSG_NOSIGNAL) != 3) return false;
                char reply[512] = {};
                const auto got = ::recv(fd, reply, sizeof reply - 1, 0);
                return got > 0 && std::string_view(reply).find("must be a JSON object") != std::string_view::npos;
            },
            10s);
        REQUIRE(served);
        // Half a line keeps it busy: an idle one would be closed to make room (see
        // test_hostile_producers.cpp), a busy one never is.
        REQUIRE(::send(fd, "{\"uuid\":", 8, MSG_NOSIGNAL) == 8);
        REQUIRE(wait_until(
            [&] {
                int unread = -1;
                return ::ioctl(fd, SIOCOUTQ, &unread) == 0 && unread == 0;
            },
            10s));
        return fd;
    };
    const int first = open_served(), second = open_served();
    const auto replies = exchange(daemon.socket(), event_line(call, "call_started") + "\n", 5s);
    REQUIRE(replies.size() == 1);
    CHECK_THAT(replies[0], Catch::Contains("too many producer connections (max_connections=2)"));
    CHECK_THAT(daemon.log(), Catch::Contains("refused a producer connection"));
    ::close(first);
    // The freed slot serves again.
    const int third = open_served();
    ::close(second);
    ::close(third);
    CHECK(receiver.requests().empty());  // the refused line was never taken
    REQUIRE(daemon.stop());
}

TEST_CASE("intake keeps taking events from a producer that never reads its replies", "[integration][intake]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url()});
    REQUIRE(daemon.wait_ready());
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, daemon.socket().c_str(), sizeof address.sun_path - 1);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    // 20000 bad lines produce ~2 MB of replies that nobody reads; a good line after them
    // must still be delivered.
    std::string bad;
    for (int i = 0; i < 20000; ++i) bad += "{\"uuid\":\"nope\",\"type\":\"call_started\",\"payload\":{}}\n";
    bad += event_line(call, "call_ended") + "\n";
    std::string_view rest = bad;
    while (!rest.empty()) {
        const auto written = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
        REQUIRE(written > 0);
        rest.remove_prefix(static_cast<std::size_t>(written));
    }
    CHECK(receiver.wait_for_requests(1, 20s));
    CHECK_THAT(daemon.log(), Catch::Contains("not reading its replies"));
    ::close(fd);
    REQUIRE(daemon.stop());
}

TEST_CASE("intake replaces a stale socket file and refuses to start beside a live instance", "[integration][intake]") {
    TempDir dir;
    ReceiverThread receiver;
    const auto socket_path = dir / "daemon.sock";
    {
        // A socket file with no listener, as a crashed daemon leaves it.
        const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        ::close(fd);
    }
    DaemonProcess daemon(dir, {"--url", receiver.url()});
    REQUIRE(daemon.wait_ready());
    CHECK_THAT(daemon.log(), Catch::Contains("replaced stale socket file"));

    struct stat status {};
    REQUIRE(::stat(socket_path.c_str(), &status) == 0);
    CHECK((status.st_mode & 0777) == 0660);

    DaemonProcess second(dir, {"--url", receiver.url()}, {}, "second", socket_path);
    const auto second_exit = second.process().wait(10s);
    REQUIRE(second_exit);
    CHECK(second_exit->code == 1);
    CHECK_THAT(second.log(), Catch::Contains("already listening"));
    CHECK(can_connect(socket_path));  // the first one is unharmed

    const auto exit = daemon.stop();
    REQUIRE(exit);
    CHECK(exit->success());
    CHECK_FALSE(std::filesystem::exists(socket_path));
}

TEST_CASE("intake creates the socket directory and honours socket_mode", "[integration][intake]") {
    TempDir dir;
    ReceiverThread receiver;
    const auto nested = dir / "run" / "avr" / "events.sock";
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--socket-mode", "0600"}, {}, "daemon", nested);
    REQUIRE(wait_until([&] { return can_connect(nested); }, 10s));
    struct stat status {};
    REQUIRE(::stat(nested.c_str(), &status) == 0);
    CHECK((status.st_mode & 0777) == 0600);
    REQUIRE(daemon.stop());
}

TEST_CASE("intake works with socat and with avr-webhookd send", "[integration][intake]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url()});
    REQUIRE(daemon.wait_ready());
    {
        std::ofstream events(dir / "events.ndjson");
        events << event_line(call, "call_started") << "\n"
               << "{\"uuid\":1}\n"
               << event_line(call, "call_ended") << "\n";
    }
    Process::Options send_options;
    send_options.arguments = {daemon_binary(), "send", "--socket", daemon.socket().string(),
                              (dir / "events.ndjson").string()};
    send_options.output_directory = dir.path();
    send_options.name = "send";
    Process send(send_options);
    const auto send_exit = send.wait(20s);
    REQUIRE(send_exit);
    CHECK(send_exit->code == 1);  // one line was rejected
    CHECK_THAT(send.stdout_text(), Catch::Contains("line 2: rejected: field \"uuid\" must be a string"));
    CHECK(receiver.wait_for_requests(2));

    if (::access("/usr/bin/socat", X_OK) == 0) {
        Process::Options socat_options;
        socat_options.arguments = {
            "/bin/sh", "-c",
            "echo '" + event_line(call, "interruption") + "' | socat - UNIX-CONNECT:" + daemon.socket().string()};
        socat_options.output_directory = dir.path();
        socat_options.name = "socat";
        Process socat(socat_options);
        const auto socat_exit = socat.wait(20s);
        REQUIRE(socat_exit);
        CHECK(socat_exit->success());
        CHECK(receiver.wait_for_requests(3));
    } else {
        WARN("socat is not installed: the socat part of this test was skipped");
    }
    REQUIRE(daemon.stop());
}

TEST_CASE("daemon exits 78 naming the bad setting", "[integration][config]") {
    TempDir dir;
    DaemonProcess daemon(dir, {"--url", "http://127.0.0.1:1/x", "--timeout", "soon"});
    const auto exit = daemon.process().wait(10s);
    REQUIRE(exit);
    CHECK(exit->code == 78);
    CHECK_THAT(daemon.log(), Catch::Contains("timeout") && Catch::Contains("soon"));

    Process::Options check;
    check.arguments = {daemon_binary(), "check-config", "--config", "", "--url", "https://example.invalid/hook",
                       "--secret",      "s3cr3t-value"};
    check.output_directory = dir.path();
    check.name = "check";
    Process checker(check);
    const auto check_exit = checker.wait(10s);
    REQUIRE(check_exit);
    CHECK(check_exit->success());
    CHECK_THAT(checker.stdout_text(), Catch::Contains("<redacted>") && Catch::Contains("command line"));
    CHECK(checker.stdout_text().find("s3cr3t-value") == std::string::npos);
}

TEST_CASE("SIGINT stops the daemon cleanly and removes its socket", "[integration][intake]") {
    TempDir dir;
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url()});
    REQUIRE(daemon.wait_ready());
    const auto exit = daemon.stop(SIGINT);
    REQUIRE(exit);
    CHECK(exit->success());
    CHECK_FALSE(std::filesystem::exists(daemon.socket()));
    CHECK_THAT(daemon.log(), Catch::Contains("stopped"));
}

TEST_CASE("command line help and version work while usage errors exit 64 and a missing url 78",
          "[integration][config]") {
    TempDir dir;
    auto run = [&](std::vector<std::string> arguments, const std::string& name) {
        Process::Options options;
        options.arguments = {daemon_binary()};
        options.arguments.insert(options.arguments.end(), arguments.begin(), arguments.end());
        options.output_directory = dir.path();
        options.name = name;
        auto process = std::make_unique<Process>(options);
        const auto exit = process->wait(10s);
        REQUIRE(exit);
        return std::make_pair(*exit, process->stdout_text() + process->stderr_text());
    };
    const auto [help_exit, help] = run({"--help"}, "help");
    CHECK(help_exit.success());
    CHECK_THAT(help,
               Catch::Contains("--max-line") && Catch::Contains("check-config") && Catch::Contains("WEBHOOK_FOO_BAR"));
    const auto [version_exit, version] = run({"--version"}, "version");
    CHECK(version_exit.success());
    CHECK_THAT(version, Catch::StartsWith("avr-webhookd "));
    const auto [bad_exit, bad] = run({"--no-such-flag"}, "bad");
    CHECK(bad_exit.code == 64);
    CHECK_THAT(bad, Catch::Contains("no-such-flag"));
    const auto [unknown_exit, unknown] = run({"frobnicate"}, "unknown");
    CHECK(unknown_exit.code == 64);
    const auto [missing_exit, missing] = run({"--config", "", "--socket", (dir / "s.sock").string()}, "missing");
    CHECK(missing_exit.code == 78);
    CHECK_THAT(missing, Catch::Contains("url"));
}
