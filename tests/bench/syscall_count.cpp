#include "syscall_count.hpp"

#include <csignal>
#include <fstream>
#include <string_view>
#include <thread>

namespace avr_webhookd::bench {

using namespace std::chrono_literals;

namespace {

// The calls the daemon's paths make (intake, delivery, spool, event loop); the rest are counted
// only in the total.
constexpr std::string_view named_calls[] = {
    "sendmsg", "recvmsg",    "recvfrom",  "sendto",          "read",    "write",   "readv",
    "writev",  "pread64",    "pwrite64",  "preadv",          "pwritev", "fsync",   "fdatasync",
    "futex",   "epoll_wait", "epoll_ctl", "timerfd_settime", "accept4", "connect", "close"};

std::string event_list() {
    std::string list = "raw_syscalls:sys_enter";
    for (const auto name : named_calls) list.append(",syscalls:sys_enter_").append(name);
    return list;
}

// perf stat -x, lines: count,unit,event,... ("<not counted>" or "<not supported>" for no count).
std::optional<SyscallCounts> parse(const std::filesystem::path& file) {
    std::ifstream input(file);
    SyscallCounts counts;
    for (std::string line; std::getline(input, line);) {
        if (line.empty() || line.front() == '#') continue;
        const auto first = line.find(',');
        const auto second = first == std::string::npos ? first : line.find(',', first + 1);
        const auto third = second == std::string::npos ? second : line.find(',', second + 1);
        if (third == std::string::npos) continue;
        const std::string count = line.substr(0, first);
        std::string event = line.substr(second + 1, third - second - 1);
        if (count.empty() || count.front() < '0' || count.front() > '9') continue;
        if (event == "raw_syscalls:sys_enter") event = "total";
        else if (event.starts_with("syscalls:sys_enter_")) event.erase(0, 19);
        counts[event] = std::stod(count);
    }
    if (!counts.contains("total")) return std::nullopt;
    return counts;
}

}  // namespace

bool SyscallCounter::available() {
    static const bool can_count = [] {
        const test::TempDirectory dir("syscall-probe");
        test::Process::Options options;
        options.arguments = {"perf", "stat", "-x,", "-o", (dir / "probe.txt").string(), "-e", event_list(), "true"};
        options.output_directory = dir.path();
        options.name = "perf-probe";
        test::Process probe(std::move(options));
        const auto status = probe.wait(30s);
        return status && status->success() && parse(dir / "probe.txt").has_value();
    }();
    return can_count;
}

SyscallCounter::SyscallCounter(pid_t pid, const std::filesystem::path& directory)
    : output_(directory / "syscalls.txt") {
    if (!available()) return;
    test::Process::Options options;
    options.arguments = {"perf", "stat", "-x,", "-o", output_.string(), "-e", event_list(), "-p", std::to_string(pid)};
    options.output_directory = directory;
    options.name = "perf-stat";
    perf_.emplace(std::move(options));
    std::this_thread::sleep_for(500ms);  // perf needs a moment to attach; the daemon idles meanwhile
}

SyscallCounter::~SyscallCounter() {
    if (perf_ && perf_->running()) perf_->kill();
}

std::optional<SyscallCounts> SyscallCounter::finish() {
    if (!perf_) return std::nullopt;
    perf_->send_signal(SIGINT);  // perf stat writes its counts and exits
    const auto status = perf_->wait(30s);
    perf_.reset();
    if (!status) return std::nullopt;
    return parse(output_);
}

}  // namespace avr_webhookd::bench
