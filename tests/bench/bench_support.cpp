#include "bench_support.hpp"

#include "support/daemon_fixture.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace avr_webhookd::bench {

namespace asio = boost::asio;
using namespace std::chrono_literals;

std::string event_body(unsigned call, std::size_t number, std::string_view text) {
    const std::string utterance =
        text.empty() ? "Change my address, order " + std::to_string(100000 + number) : std::string(text);
    return "{\"uuid\":\"" + test::call_uuid(call) +
           "\",\"type\":\"transcription\",\"timestamp\":\"2024-05-01T12:00:00.000Z\",\"payload\":{\"role\":\"user\","
           "\"text\":\"" +
           utterance + "\"}}";
}

std::string event_lines(std::size_t count, unsigned calls) {
    std::string input;
    input.reserve(count * 180);
    for (std::size_t i = 0; i < count; ++i) {
        input += event_body(static_cast<unsigned>(i % calls) + 1, i);
        input += '\n';
    }
    return input;
}

double status_mib(pid_t pid, std::string_view field) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':')
            return std::stod(line.substr(field.size() + 1)) / 1024.0;  // the kernel reports kB
    throw std::runtime_error("no " + std::string(field) + " in /proc/" + std::to_string(pid) + "/status");
}

double cpu_seconds(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::string field;
    double ticks = 0;
    for (int number = 3; number <= 15 && fields >> field; ++number)
        if (number >= 14) ticks += std::stod(field);
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

int connect_unix(const std::filesystem::path& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

unsigned short free_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return acceptor.local_endpoint().port();
}

std::optional<double> median(std::vector<double> values) {
    if (values.empty()) return std::nullopt;
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

double quantile(const std::vector<double>& sorted, double q) {
    if (sorted.empty()) return 0;
    const auto index = static_cast<std::size_t>(q * static_cast<double>(sorted.size()));
    return sorted[std::min(index, sorted.size() - 1)];
}

bool poll_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::microseconds step) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(step);
    }
    return true;
}

test::Process start_daemon(const DaemonSpec& spec, const test::TempDirectory& dir, std::chrono::milliseconds timeout) {
    test::Process::Options options;
    options.arguments = {spec.binary,
                         "--config",
                         "",
                         "--socket",
                         (dir / "in.sock").string(),
                         "--url",
                         spec.url,
                         "--concurrency",
                         std::to_string(spec.concurrency),
                         "--log-level",
                         "error"};
    if (spec.spool == "none") {
        options.arguments.insert(options.arguments.end(), {"--spool-dir", ""});
    } else {
        options.arguments.insert(options.arguments.end(),
                                 {"--spool-dir", (dir / "spool").string(), "--spool-sync", spec.spool});
    }
    if (!spec.ca_file.empty()) options.arguments.insert(options.arguments.end(), {"--ca-file", spec.ca_file});
    options.arguments.insert(options.arguments.end(), spec.extra.begin(), spec.extra.end());
    options.output_directory = dir.path();
    options.name = "daemon";
    test::Process daemon(std::move(options));
    if (!test::wait_until([&] { return !daemon.running() || test::can_connect(dir / "in.sock"); }, timeout) ||
        !daemon.running())
        throw std::runtime_error("the daemon did not start: " + daemon.output_for_diagnosis());
    return daemon;
}

void stop_daemon(test::Process& daemon) {
    daemon.send_signal(SIGTERM);
    const auto status = daemon.wait(20s);
    if (!status || !status->success())
        throw std::runtime_error("the daemon did not stop cleanly\n" + daemon.output_for_diagnosis());
    if (const auto log = daemon.stderr_text(); !log.empty()) std::fprintf(stderr, "daemon log:\n%s", log.c_str());
}

Attached::Attached(const std::string& command, pid_t pid, const std::filesystem::path& output_directory) {
    if (command.empty()) return;
    std::string text = command;
    for (auto at = text.find("{pid}"); at != std::string::npos; at = text.find("{pid}"))
        text.replace(at, 5, std::to_string(pid));
    test::Process::Options options;
    options.arguments = {"/bin/sh", "-c", "exec " + text};
    options.output_directory = output_directory;
    options.name = "attached";
    process_.emplace(std::move(options));
    std::this_thread::sleep_for(700ms);  // perf and strace need a moment to attach
}

Attached::~Attached() {
    if (!process_) return;
    process_->send_signal(SIGINT);
    if (!process_->wait(60s)) process_->kill();
    std::fprintf(stderr, "%s", process_->stderr_text().c_str());
}

}  // namespace avr_webhookd::bench
