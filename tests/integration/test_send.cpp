// `send` against an in-process fake daemon on a Unix socket.

#include <avr_webhookd/tools/send_command.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

using namespace avr_webhookd;
namespace fs = std::filesystem;

namespace {

class SendTempDir {
public:
    SendTempDir() {
        std::string pattern = (fs::temp_directory_path() / "avr-webhookd-send-XXXXXX").string();
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~SendTempDir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    SendTempDir(const SendTempDir&) = delete;
    SendTempDir& operator=(const SendTempDir&) = delete;
    std::string operator/(std::string_view name) const { return (path_ / name).string(); }
    std::string write(std::string_view name, const std::string& content) const {
        const auto file = *this / name;
        std::ofstream(file, std::ios::binary) << content;
        return file;
    }

private:
    fs::path path_;
};

// Serves one producer connection like the daemon does: numbers physical lines from 1, rejects
// lines containing "bad" (and with ack_all accepts the others out loud), replies while it reads
// with blocking writes, and closes after the producer's EOF.
class FakeDaemon {
public:
    enum class Mode { ack_errors, ack_all, refuse };

    FakeDaemon(std::string path, Mode mode) : path_(std::move(path)), mode_(mode) {
        listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
        if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
            ::listen(listener_, 4) != 0)
            throw std::runtime_error("fake daemon cannot listen on " + path_);
        thread_ = std::thread([this] { run(); });
    }
    ~FakeDaemon() {
        stopping_ = true;
        if (thread_.joinable()) thread_.join();
        ::close(listener_);
        ::unlink(path_.c_str());
    }
    FakeDaemon(const FakeDaemon&) = delete;
    FakeDaemon& operator=(const FakeDaemon&) = delete;

    // Everything the producer sent; call after run_send_command returned.
    std::string received() {
        if (thread_.joinable()) thread_.join();
        return received_;
    }

private:
    void run() {
        int connection = -1;
        while (!stopping_ && connection < 0) {
            pollfd ready{listener_, POLLIN, 0};
            if (::poll(&ready, 1, 50) > 0) connection = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        }
        if (connection < 0) return;
        if (mode_ == Mode::refuse) {
            send_all(connection, "{\"ok\":false,\"error\":\"too many producer connections (max_connections=1)\"}\n");
            ::close(connection);
            return;
        }
        std::string partial;
        char buffer[16 * 1024];
        for (;;) {
            const auto got = ::recv(connection, buffer, sizeof buffer, 0);
            if (got <= 0) break;
            received_.append(buffer, static_cast<std::size_t>(got));
            partial.append(buffer, static_cast<std::size_t>(got));
            std::size_t start = 0;
            for (auto newline = partial.find('\n'); newline != std::string::npos; newline = partial.find('\n', start)) {
                answer(connection, std::string_view{partial}.substr(start, newline - start));
                start = newline + 1;
            }
            partial.erase(0, start);
        }
        if (!partial.empty()) answer(connection, partial);
        ::close(connection);
    }

    void answer(int connection, std::string_view line) {
        const auto number = std::to_string(++line_number_);
        if (line.empty()) return;
        if (line.find("bad") != std::string_view::npos)
            send_all(connection, "{\"ok\":false,\"line\":" + number + ",\"error\":\"bad event\"}\n");
        else if (mode_ == Mode::ack_all)
            send_all(connection, "{\"ok\":true,\"line\":" + number + ",\"id\":\"id-" + number + "\"}\n");
    }

    static void send_all(int connection, const std::string& data) {
        std::size_t sent = 0;
        while (sent < data.size()) {
            const auto written = ::send(connection, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            if (written <= 0) return;
            sent += static_cast<std::size_t>(written);
        }
    }

    std::string path_;
    Mode mode_;
    int listener_ = -1;
    std::thread thread_;
    std::atomic<bool> stopping_ = false;
    std::string received_;
    std::uint64_t line_number_ = 0;
};

struct SendRun {
    int status;
    std::string out;
    std::string err;
};

SendRun send(const std::vector<std::string>& args, const Environment& env = {}) {
    std::ostringstream out, err;
    Environment environment = env;
    environment.emplace("WEBHOOK_CONFIG", "");  // never read the machine's config file
    const int status = run_send_command(args, environment, out, err);
    return {status, out.str(), err.str()};
}

std::size_t count_lines(const std::string& text) {
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

TEST_CASE("send command: all lines accepted exits 0 and prints nothing with ack = errors", "[send][integration]") {
    SendTempDir dir;
    const auto socket = dir / "events.sock";
    FakeDaemon daemon(socket, FakeDaemon::Mode::ack_errors);
    const auto events = dir.write("events.ndjson", "{\"type\":\"call_started\"}\n{\"type\":\"call_ended\"}\n");

    const auto run = send({"--socket", socket, events});
    CHECK(run.status == 0);
    CHECK(run.out.empty());
    CHECK(run.err.empty());
    CHECK(daemon.received() == "{\"type\":\"call_started\"}\n{\"type\":\"call_ended\"}\n");
}

TEST_CASE("send command: rejected lines are printed readably and exit 1 with a summary", "[send][integration]") {
    SendTempDir dir;
    const auto socket = dir / "events.sock";
    FakeDaemon daemon(socket, FakeDaemon::Mode::ack_errors);
    const auto first = dir.write("first.ndjson", "{\"a\":1}\n\n{\"bad\":2}\n{\"c\":3}");  // no final newline
    const auto second = dir.write("second.ndjson", "bad\r\n{\"d\":4}\n");

    const auto run = send({"--socket", socket, first, second});
    CHECK(run.status == 1);
    CHECK(run.out == first + " line 3: rejected: bad event\n" + second + " line 1: rejected: bad event\n");
    CHECK(run.err == "2 of 5 lines rejected\n");
    // The first file's last line was ended so that it did not join the second file's first.
    CHECK(daemon.received() == "{\"a\":1}\n\n{\"bad\":2}\n{\"c\":3}\nbad\r\n{\"d\":4}\n");
}

TEST_CASE("send command: the socket comes from WEBHOOK_SOCKET or the config file", "[send][integration]") {
    SendTempDir dir;
    const auto socket = dir / "events.sock";
    const auto events = dir.write("events.ndjson", "bad\n");

    SECTION("environment") {
        FakeDaemon daemon(socket, FakeDaemon::Mode::ack_errors);
        const auto run = send({events}, {{"WEBHOOK_SOCKET", socket}});
        CHECK(run.status == 1);
        CHECK(run.out == events + " line 1: rejected: bad event\n");
    }
    SECTION("config file, which needs no url for this") {
        FakeDaemon daemon(socket, FakeDaemon::Mode::ack_errors);
        const auto config = dir.write("avr-webhookd.conf", "socket = " + socket + "\n");
        const auto run = send({"--config", config, events});
        CHECK(run.status == 1);
    }
}

TEST_CASE("send command: unreachable socket, unreadable file and a refusing daemon exit 2", "[send][integration]") {
    SendTempDir dir;
    const auto socket = dir / "events.sock";
    const auto events = dir.write("events.ndjson", "{}\n");

    auto run = send({"--socket", socket, events});
    CHECK(run.status == 2);
    CHECK(run.err == "send: cannot connect to " + socket + ": No such file or directory\n");

    {
        FakeDaemon daemon(socket, FakeDaemon::Mode::ack_errors);
        run = send({"--socket", socket, events, dir / "missing.ndjson"});
        CHECK(run.status == 2);
        CHECK(run.err == "send: cannot read " + (dir / "missing.ndjson") + ": No such file or directory\n");
    }
    {
        FakeDaemon daemon(socket, FakeDaemon::Mode::refuse);
        run = send({"--socket", socket, events});
        CHECK(run.status == 2);
        CHECK(run.out == "daemon refused the connection: too many producer connections (max_connections=1)\n");
        CHECK(run.err.find("did not take the events") != std::string::npos);
    }

    run = send({"--socket"});
    CHECK(run.status == 2);
    CHECK(run.err.find("usage:") != std::string::npos);
}

TEST_CASE("send command: a large input with a reply for every line does not deadlock", "[send][integration]") {
    SendTempDir dir;
    const auto socket = dir / "events.sock";
    FakeDaemon daemon(socket, FakeDaemon::Mode::ack_all);

    std::string input;
    std::size_t lines = 0, bad = 0;
    const std::string padding(80, 'x');
    while (input.size() < 5 * 1024 * 1024) {
        ++lines;
        const bool is_bad = lines % 10 == 0;
        bad += is_bad ? 1 : 0;
        input += "{\"type\":\"" + std::string{is_bad ? "bad" : "call_started"} + "\",\"n\":" + std::to_string(lines) +
                 ",\"pad\":\"" + padding + "\"}\n";
    }
    const auto events = dir.write("big.ndjson", input);

    const auto run = send({"--socket", socket, events});
    CHECK(run.status == 1);
    CHECK(count_lines(run.out) == lines);
    CHECK(run.out.find(events + " line 1: accepted (id id-1)\n") == 0);
    CHECK(run.out.find(events + " line 10: rejected: bad event\n") != std::string::npos);
    CHECK(run.err == std::to_string(bad) + " of " + std::to_string(lines) + " lines rejected\n");
    CHECK(daemon.received().size() == input.size());
}

TEST_CASE("send command: reads stdin for no file or \"-\"", "[send][integration]") {
    SendTempDir dir;
    const auto socket = dir / "events.sock";
    FakeDaemon daemon(socket, FakeDaemon::Mode::ack_errors);
    const auto events = dir.write("stdin.ndjson", "{}\nbad\n");

    // Point fd 0 at the file for the call, then put the real stdin back.
    const int saved_stdin = ::dup(STDIN_FILENO);
    const int file = ::open(events.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(file >= 0);
    ::dup2(file, STDIN_FILENO);
    ::close(file);
    const auto run = send({"--socket", socket, "-"});
    ::dup2(saved_stdin, STDIN_FILENO);
    ::close(saved_stdin);

    CHECK(run.status == 1);
    CHECK(run.out == "line 2: rejected: bad event\n");
    CHECK(run.err == "1 of 2 lines rejected\n");
    CHECK(daemon.received() == "{}\nbad\n");
}
