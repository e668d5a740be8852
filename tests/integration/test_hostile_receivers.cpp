// The real daemon against receivers no well-behaved server library would play: interim 1xx
// answers, endless chunk lines, a byte every 200 ms, oversized heads, garbage status lines, a reset
// in the middle of a body, and a reload from https to http while a connect is pending. Each test
// checks how the outcome was classified and that the daemon stays up, bounded, and delivers a
// normal event afterwards.
#include "../support/daemon_fixture.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>

using namespace avr_webhookd;
using namespace avr_webhookd::test;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view call = "550e8400-e29b-41d4-a716-446655440000";

bool send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        const auto sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (sent <= 0) return false;
        bytes.remove_prefix(static_cast<std::size_t>(sent));
    }
    return true;
}

// True when the peer closed (or reset) its side; waits up to `wait`.
bool peer_closed(int fd, std::chrono::milliseconds wait) {
    pollfd entry{fd, POLLIN, 0};
    if (::poll(&entry, 1, static_cast<int>(wait.count())) <= 0) return false;
    char byte;
    return ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

// Plain-socket listener on 127.0.0.1:0; nothing accepted unless `accept_connections` is called.
struct Listener {
    explicit Listener(int backlog = 64) {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        REQUIRE(::listen(fd, backlog) == 0);
        socklen_t length = sizeof address;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
        port = ntohs(address.sin_port);
    }
    ~Listener() { ::close(fd); }
    int fd = -1;
    unsigned port = 0;
};

// A webhook receiver with plain sockets: each request (head and Content-Length body) is handed to
// `respond`, which writes whatever it likes to the socket and returns whether to keep the
// connection for the next request.
class RawReceiver {
public:
    using Respond = std::function<bool(int fd, const std::string& body, std::size_t index)>;
    explicit RawReceiver(Respond respond) : respond_(std::move(respond)) {
        thread_ = std::thread([this] { accept_loop(); });
    }
    ~RawReceiver() {
        stop_ = true;
        ::shutdown(listener_.fd, SHUT_RDWR);
        thread_.join();
        std::lock_guard lock(mutex_);
        for (auto& connection : connections_) connection.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(listener_.port) + "/hook"; }
    std::size_t connections() const { return connections_opened_; }
    std::vector<std::string> bodies() const {
        std::lock_guard lock(mutex_);
        return bodies_;
    }
    bool wait_for_requests(std::size_t count, std::chrono::milliseconds timeout = 20s) const {
        return wait_until([&] { return bodies().size() >= count; }, timeout);
    }
    bool stopping() const { return stop_; }

private:
    void accept_loop() {
        while (!stop_) {
            pollfd entry{listener_.fd, POLLIN, 0};
            if (::poll(&entry, 1, 50) <= 0) continue;
            const int fd = ::accept4(listener_.fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            ++connections_opened_;
            std::lock_guard lock(mutex_);
            connections_.emplace_back([this, fd] { serve(fd); });
        }
    }

    // Reads one request; false when the peer closed or the receiver stops.
    bool read_request(int fd, std::string& pending, std::string& body) {
        for (;;) {
            if (const auto end = pending.find("\r\n\r\n"); end != std::string::npos) {
                std::size_t length = 0;
                if (const auto at = pending.find("Content-Length: "); at != std::string::npos && at < end)
                    length = std::stoul(pending.substr(at + 16));
                if (pending.size() >= end + 4 + length) {
                    body = pending.substr(end + 4, length);
                    pending.erase(0, end + 4 + length);
                    return true;
                }
            }
            pollfd entry{fd, POLLIN, 0};
            if (::poll(&entry, 1, 50) == 0) {
                if (stop_) return false;
                continue;
            }
            char chunk[4096];
            const auto got = ::recv(fd, chunk, sizeof chunk, 0);
            if (got <= 0) return false;
            pending.append(chunk, static_cast<std::size_t>(got));
        }
    }

    void serve(int fd) {
        std::string pending, body;
        while (!stop_ && read_request(fd, pending, body)) {
            std::size_t index;
            {
                std::lock_guard lock(mutex_);
                bodies_.push_back(body);
                index = bodies_.size() - 1;
            }
            if (!respond_(fd, body, index)) break;
        }
        ::close(fd);
    }

    Respond respond_;
    Listener listener_;
    std::atomic<bool> stop_{false};
    std::atomic<std::size_t> connections_opened_{0};
    mutable std::mutex mutex_;
    std::vector<std::string> bodies_;
    std::vector<std::thread> connections_;
    std::thread thread_;
};

const std::string ok_response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

bool is_normal(const std::string& body) { return body.find("\"normal\"") != std::string::npos; }

std::string line_of(std::string_view type, std::string_view text, std::string_view id) {
    return event_line(call, type, text, id) + "\n";
}

// What the daemon logs (at debug level) for a delivered event.
std::string delivered_line(std::string_view type, std::string_view id) {
    return std::string(type) + " event " + std::string(id) + " of call " + std::string(call) + " delivered (HTTP 200";
}

// Sends a normal event after a hostile one: the daemon still serves and delivers it.
void check_still_delivers(DaemonProcess& daemon, RawReceiver& receiver) {
    REQUIRE(daemon.process().running());
    const auto before = receiver.bodies().size();
    exchange(daemon.socket(), line_of("transcription", "normal", "after"));
    REQUIRE(receiver.wait_for_requests(before + 1));
    CHECK(is_normal(receiver.bodies().back()));
    REQUIRE(wait_until([&] { return daemon.log().find(delivered_line("transcription", "after")) != std::string::npos; },
                       10s));
    CHECK(daemon.process().running());
}

std::vector<std::string> flags(std::initializer_list<std::string> more) {
    std::vector<std::string> base{"--retry", "0", "--log-level", "debug"};
    base.insert(base.end(), more);
    return base;
}

// The daemon against a receiver that answers the hostile event with `first`, then `repeated` for as
// long as the daemon reads: the attempt ends as EPROTO with `message`, at a bound long before the
// 5 s timeout; `then` checks more of the daemon; a normal event is still delivered afterwards.
void check_flood_cut_off(const std::string& first, const std::string& repeated, std::string_view message,
                         const std::function<void(DaemonProcess&)>& then = {}) {
    std::atomic<bool> hostile{true};
    RawReceiver* self = nullptr;
    RawReceiver receiver([&](int fd, const std::string& body, std::size_t) {
        if (is_normal(body) && !hostile) return send_all(fd, ok_response);
        if (!send_all(fd, first)) return false;
        while (self && !self->stopping() && send_all(fd, repeated)) {}
        return false;
    });
    self = &receiver;
    TempDir dir;
    DaemonProcess daemon(dir, flags({"--url", receiver.url(), "--timeout", "5s"}));
    REQUIRE(daemon.wait_ready());
    const auto started = Clock::now();
    exchange(daemon.socket(), line_of("call_started", "", "endless"));
    REQUIRE(wait_for_dead_letters(daemon, 1));
    const auto elapsed = Clock::now() - started;
    const auto lines = dead_letters(daemon);
    CHECK(failure_field(lines[0], "code") == "EPROTO");
    CHECK_THAT(failure_field(lines[0], "message"), Catch::Contains(std::string(message)));
    CHECK(elapsed < 4s);
    if (then) then(daemon);
    hostile = false;
    check_still_delivers(daemon, receiver);
    REQUIRE(daemon.stop());
}

}  // namespace

TEST_CASE("hostile receivers: 103 Early Hints before the final answer", "[integration][hostile]") {
    // Every request is answered 103 first; "reject" events then get 400, the others 200.
    RawReceiver receiver([](int fd, const std::string& body, std::size_t) {
        const bool reject = body.find("\"reject\"") != std::string::npos;
        return send_all(fd, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n") &&
               send_all(fd, reject ? "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad" : ok_response);
    });
    TempDir dir;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--retry", "0", "--log-level", "debug"});
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), line_of("transcription", "normal", "first") +
                                  line_of("transcription", "reject", "second") +
                                  line_of("transcription", "normal", "third"));
    REQUIRE(receiver.wait_for_requests(3));
    REQUIRE(wait_for_dead_letters(daemon, 1));
    REQUIRE(wait_until([&] { return daemon.log().find(delivered_line("transcription", "third")) != std::string::npos; },
                       10s));

    // Only the rejected event is given up, with its own status; the others are delivered.
    const auto lines = dead_letters(daemon);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].at("id").as_string() == "second");
    CHECK(failure_field(lines[0], "code") == "HTTP 400");
    CHECK(failure_field(lines[0], "status") == "400");
    const auto log = daemon.log();
    CHECK_THAT(log, Catch::Contains(delivered_line("transcription", "first")));
    CHECK(log.find("delivered (HTTP 400)") == std::string::npos);
    CHECK(log.find("HTTP 103") == std::string::npos);
    CHECK(receiver.connections() == 1);  // the connection was kept: each answer was read whole
    REQUIRE(daemon.stop());
}

TEST_CASE("hostile receivers: an endless chunk-size line is cut off at the limit, memory bounded",
          "[integration][hostile]") {
    std::string extensions;
    for (int i = 0; i < 16384; ++i) extensions += "a=b;";
    check_flood_cut_off("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;", extensions,
                        "chunk header or trailer larger than", [](DaemonProcess& daemon) {
    // Before the fix one such receiver grew the daemon to 1.5 GB. Under
    // AddressSanitizer the daemon's own baseline and quarantine are far
    // larger, so the bound is looser there.
#if defined(__SANITIZE_ADDRESS__)
                            constexpr std::size_t peak_limit_kib = 384 * 1024;
#else
                            constexpr std::size_t peak_limit_kib = 64 * 1024;
#endif
                            CHECK(memory_kib(daemon.process().pid(), "VmHWM") < peak_limit_kib);
                        });
}

TEST_CASE("hostile receivers: an endless flood of 100 Continue is cut off at the wire bound, never holding the loop",
          "[integration][hostile]") {
    std::string flood;
    for (int i = 0; i < 2048; ++i) flood += "HTTP/1.1 100 Continue\r\n\r\n";
    check_flood_cut_off("", flood, "interim (1xx) responses longer than");
}

TEST_CASE("hostile receivers: a byte every 200 ms ends the attempt at its timeout", "[integration][hostile]") {
    std::atomic<bool> hostile{true};
    std::atomic<long long> closed_after_ms{-1};
    RawReceiver receiver([&](int fd, const std::string& body, std::size_t) {
        if (is_normal(body) && !hostile) return send_all(fd, ok_response);
        const auto start = Clock::now();
        if (!send_all(fd, "HTTP/1.1 200 OK\r\nX-Slow: ")) return false;
        // Trickles forever; stops when the daemon closes the connection (or after 20 s).
        while (Clock::now() - start < 20s) {
            if (peer_closed(fd, 200ms)) {
                closed_after_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
                break;
            }
            if (!send_all(fd, "a")) break;
        }
        return false;
    });
    TempDir dir;
    DaemonProcess daemon(dir, flags({"--url", receiver.url(), "--timeout", "1500ms"}));
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), line_of("call_started", "", "trickled"));
    REQUIRE(wait_for_dead_letters(daemon, 1));
    REQUIRE(wait_until([&] { return closed_after_ms >= 0; }, 5s));

    const auto lines = dead_letters(daemon);
    CHECK(failure_field(lines[0], "code") == "ETIMEDOUT");
    CHECK_THAT(failure_field(lines[0], "message"), Catch::Contains("timeout of 1500ms exceeded"));
    // The whole attempt, connect included, had 1500 ms; the receiver saw its close by then
    // (plus the 200 ms of its own polling and scheduling slack).
    CHECK(closed_after_ms <= 1500 + 500);
    CHECK(closed_after_ms >= 1000);
    hostile = false;
    check_still_delivers(daemon, receiver);
    REQUIRE(daemon.stop());
}

TEST_CASE("hostile receivers: oversized head and garbage status line are protocol failures", "[integration][hostile]") {
    const std::string oversized =
        "HTTP/1.1 200 OK\r\nX-Big: " + std::string(20000, 'x') + "\r\nContent-Length: 0\r\n\r\n";
    auto [answer, expected] =
        GENERATE_COPY(std::make_pair(oversized, std::string("response head larger than 16384 bytes")),
                      std::make_pair(std::string("HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n"),
                                     std::string("invalid HTTP response")),
                      std::make_pair(std::string("SSH-2.0-OpenSSH_9.2\r\n\r\n"), std::string("invalid HTTP response")));
    INFO(expected);
    RawReceiver receiver([answer = answer](int fd, const std::string& body, std::size_t) {
        if (is_normal(body)) return send_all(fd, ok_response);
        send_all(fd, answer);
        return false;
    });
    TempDir dir;
    DaemonProcess daemon(dir, flags({"--url", receiver.url()}));
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), line_of("call_started", "", "hostile"));
    REQUIRE(wait_for_dead_letters(daemon, 1));
    const auto lines = dead_letters(daemon);
    CHECK(failure_field(lines[0], "code") == "EPROTO");
    CHECK_THAT(failure_field(lines[0], "message"), Catch::Contains(expected));
    check_still_delivers(daemon, receiver);
    REQUIRE(daemon.stop());
}

TEST_CASE("hostile receivers: a reset in the middle of the body is a reset, and retried", "[integration][hostile]") {
    RawReceiver receiver([](int fd, const std::string&, std::size_t index) {
        if (index > 0) return send_all(fd, ok_response);
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
        const linger reset{1, 0};  // close with RST
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        return false;
    });
    TempDir dir;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--retry", "2", "--retry-base", "20ms", "--retry-max-delay",
                               "100ms", "--log-level", "debug"});
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), line_of("call_started", "", "reset-once"));
    REQUIRE(receiver.wait_for_requests(2));
    REQUIRE(wait_until(
        [&] { return daemon.log().find(delivered_line("call_started", "reset-once")) != std::string::npos; }, 10s));
    const auto log = daemon.log();
    CHECK_THAT(log, Catch::Contains("attempt 1 failed") && Catch::Contains("[ECONNRESET]; retrying"));
    CHECK(read_lines(daemon.dead_letter()).empty());
    REQUIRE(daemon.stop());
}

TEST_CASE("hostile receivers: bytes nobody asked for on an idle kept-alive connection are never an answer",
          "[integration][hostile][keep-alive]") {
    // The first connection answers its first request, then, once the daemon has put it back in its
    // pool, writes a second 200 nobody asked for. Reused, the daemon would read that as the answer
    // to its next request; any further request on it is answered 503 to make that show. The first
    // connection is told by its serving thread, not its descriptor: the daemon drops it, the
    // receiver closes it, and the next connection may get the same number.
    std::atomic<std::thread::id> first_connection;
    std::atomic<bool> send_stale{false}, stale_sent{false};
    RawReceiver* self = nullptr;
    RawReceiver receiver([&](int fd, const std::string&, std::size_t index) {
        const bool on_first = index == 0 || std::this_thread::get_id() == first_connection;
        if (index > 0) return send_all(fd, on_first ? "HTTP/1.1 503 Reused\r\nContent-Length: 0\r\n\r\n" : ok_response);
        first_connection = std::this_thread::get_id();
        if (!send_all(fd, ok_response)) return false;
        wait_until([&] { return send_stale || !self || self->stopping(); }, 20s);
        stale_sent = send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale");
        return true;
    });
    self = &receiver;
    TempDir dir;
    DaemonProcess daemon(dir, flags({"--url", receiver.url()}));
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), line_of("call_started", "", "first"));
    // Logged once the attempt has ended, when the connection is back in the pool.
    REQUIRE(wait_until([&] { return daemon.log().find(delivered_line("call_started", "first")) != std::string::npos; },
                       10s));
    send_stale = true;
    REQUIRE(wait_until([&] { return stale_sent.load(); }, 10s));
    exchange(daemon.socket(), line_of("transcription", "normal", "second"));
    REQUIRE(receiver.wait_for_requests(2));
    const bool delivered = wait_until(
        [&] { return daemon.log().find(delivered_line("transcription", "second")) != std::string::npos; }, 10s);
    INFO(daemon.log());
    REQUIRE(delivered);
    CHECK(receiver.connections() == 2);  // the second request went on a new connection
    const auto log = daemon.log();
    CHECK_THAT(log, Catch::Contains("keep-alive connection the server had closed"));
    CHECK(log.find("HTTP 503") == std::string::npos);
    CHECK(read_lines(daemon.dead_letter()).empty());
    REQUIRE(daemon.stop());
}

// Sockets on this machine in SYN_SENT towards 127.0.0.1:port (/proc/net/tcp, state 02).
std::size_t connects_pending_to(int port) {
    std::ifstream table("/proc/net/tcp");
    std::string line;
    std::getline(table, line);  // the header
    char wanted[16];
    std::snprintf(wanted, sizeof wanted, "0100007F:%04X", static_cast<unsigned>(port));
    std::size_t count = 0;
    while (std::getline(table, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state;
        fields >> slot >> local >> remote >> state;
        if (remote == wanted && state == "02") ++count;
    }
    return count;
}

TEST_CASE("hostile receivers: a reload from https to http while a connect is pending",
          "[integration][hostile][reload]") {
    // A listener with a full accept queue: the daemon's SYN is dropped, so its connect stays
    // pending (the kernel retries it after about 1 s) while the reload switches to http.
    Listener hanging(0);
    std::vector<int> fillers;
    for (int i = 0; i < 2; ++i) {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = htons(static_cast<std::uint16_t>(hanging.port));
        ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
        fillers.push_back(fd);
    }
    RawReceiver receiver([](int fd, const std::string&, std::size_t) { return send_all(fd, ok_response); });
    TempDir dir;
    const auto config = dir / "avr-webhookd.conf";
    std::ofstream(config) << "url = https://127.0.0.1:" << hanging.port << "/hook\ntimeout = 5s\nretry = 3\n"
                          << "retry_base = 20ms\nretry_max_delay = 100ms\n";
    auto daemon = DaemonProcess::with_config_file(dir, config, {});
    REQUIRE(daemon.wait_ready());
    const auto pending_before = connects_pending_to(hanging.port);
    exchange(daemon.socket(), line_of("call_started", "", "across-reload"));
    // The daemon's connect is pending once one more SYN_SENT socket points at the listener.
    REQUIRE(wait_until([&] { return connects_pending_to(hanging.port) > pending_before; }, 10s));

    {
        const auto temporary = config.string() + ".new";
        std::ofstream(temporary) << "url = " << receiver.url() << "\ntimeout = 5s\nretry = 3\n"
                                 << "retry_base = 20ms\nretry_max_delay = 100ms\n";
        std::filesystem::rename(temporary, config);
    }
    REQUIRE(daemon.process().send_signal(SIGHUP));
    REQUIRE(daemon.process().wait_for_output("reload: configuration applied", 10s));
    // Now let the pending connect through: accept everything, answer nothing (TLS stays pending).
    std::atomic<bool> stop{false};
    std::vector<int> accepted;
    std::thread acceptor([&] {
        while (!stop) {
            pollfd entry{hanging.fd, POLLIN, 0};
            if (::poll(&entry, 1, 20) > 0)
                if (const int fd = ::accept4(hanging.fd, nullptr, nullptr, SOCK_CLOEXEC); fd >= 0)
                    accepted.push_back(fd);
        }
    });

    const bool delivered = receiver.wait_for_requests(1, 20s);
    stop = true;
    acceptor.join();
    for (const int fd : fillers) ::close(fd);
    for (const int fd : accepted) ::close(fd);
    INFO(daemon.log());
    REQUIRE(daemon.process().running());  // no crash on the attempt begun with https
    REQUIRE(delivered);                   // and the retry went to the new http url
    CHECK(receiver.bodies().at(0).find("call_started") != std::string::npos);
    REQUIRE(daemon.stop());
    CHECK(read_lines(daemon.dead_letter()).empty());
}
