#pragma once

// Helpers shared by relay_bench's scenarios: event lines, /proc figures of the daemon, the
// daemon started for a run, medians.

#include "support/process.hpp"

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd::bench {

// A transcription event of about 170 bytes (without the newline), as AVR writes it; `text`
// replaces the default utterance (the latency scenario puts its send time there).
std::string event_body(unsigned call, std::size_t number, std::string_view text = {});
// `count` event lines (with newlines) over `calls` calls, round robin.
std::string event_lines(std::size_t count, unsigned calls);

// "VmHWM" or "VmRSS" of a process, in MiB.
double status_mib(pid_t pid, std::string_view field);
// User plus system CPU time a process has used so far, in seconds.
double cpu_seconds(pid_t pid);

// A connected Unix stream socket (close it), or -1.
int connect_unix(const std::filesystem::path& path);

// A loopback TCP port nothing listens on right now.
unsigned short free_port();

// The median of the values (the upper middle one of an even count); nullopt when empty.
std::optional<double> median(std::vector<double> values);
// The value at quantile q (0..1) of sorted values.
double quantile(const std::vector<double>& sorted, double q);

// Polls `condition` every `step` until it holds; false after `timeout`.
bool poll_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::microseconds step);

// How the daemon is started for one run.
struct DaemonSpec {
    std::string binary;
    std::string url;
    unsigned concurrency = 64;
    std::string spool = "none";  // "none" (memory only, --spool-dir ""), "interval" or "always"
    std::string ca_file;         // --ca-file when not empty
    std::vector<std::string> extra;
};

// The daemon, started in `dir` (socket <dir>/in.sock) and ready to accept connections (within
// `timeout`: a restart reads its spool first).
test::Process start_daemon(const DaemonSpec& spec, const test::TempDirectory& dir,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10));
// SIGTERM and a clean exit, or throws with the daemon's output.
void stop_daemon(test::Process& daemon);

// A profiler attached to a running process: `command` with every "{pid}" replaced, run by
// /bin/sh; stopped with SIGINT (perf record and strace then write their report).
class Attached {
public:
    Attached(const std::string& command, pid_t pid, const std::filesystem::path& output_directory);
    ~Attached();
    Attached(const Attached&) = delete;
    Attached& operator=(const Attached&) = delete;

private:
    std::optional<test::Process> process_;
};

}  // namespace avr_webhookd::bench
