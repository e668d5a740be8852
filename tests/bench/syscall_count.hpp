#pragma once

// The system calls a process makes over a stretch of time, by name: `perf stat` counting the
// kernel's syscall tracepoints on the process's threads. A tracepoint count costs the counted
// process little (no stop per call, unlike strace), so relay_bench counts during its timed runs.

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "support/process.hpp"

namespace avr_webhookd::bench {

// System calls by name; "total" is every system call, named or not.
using SyscallCounts = std::map<std::string, double>;

class SyscallCounter {
public:
    // Starts counting the calls of `pid`; perf's output goes to `directory`. Without perf, or
    // where the kernel has no syscall tracepoints, nothing is counted and finish() is empty.
    SyscallCounter(pid_t pid, const std::filesystem::path& directory);
    ~SyscallCounter();
    SyscallCounter(const SyscallCounter&) = delete;
    SyscallCounter& operator=(const SyscallCounter&) = delete;

    // Stops counting: the counts since the start, or nullopt when nothing could be counted.
    std::optional<SyscallCounts> finish();

    // Whether perf can count syscall tracepoints here (checked once).
    static bool available();

private:
    std::filesystem::path output_;
    std::optional<test::Process> perf_;
};

}  // namespace avr_webhookd::bench
