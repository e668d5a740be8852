#pragma once

// Child processes for integration tests: fork/exec with explicit arguments and environment,
// stdout and stderr captured in files, waits bounded by deadlines, and no process left behind.

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace avr_webhookd::test {

// How a process ended: exited with `code`, or was killed by `signal`.
struct ExitStatus {
    int code = -1;
    int signal = 0;

    bool exited() const { return signal == 0; }
    bool success() const { return signal == 0 && code == 0; }
    std::string describe() const;  // "exit code 3" or "killed by signal 9 (Killed)"
};

// "NAME=value" entries: PATH and HOME from this process, nothing else, so a developer's
// WEBHOOK_* or NOTIFY_SOCKET never leaks into a test.
std::vector<std::string> minimal_environment();

// A memory figure of a process from /proc/<pid>/status, in KiB: "VmRSS" (resident now) or
// "VmHWM" (the peak resident size); 0 when it cannot be read.
std::size_t memory_kib(pid_t pid, std::string_view field);

// Polls `condition` until it holds or `timeout` passes; true when it held.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = std::chrono::milliseconds(10));

// A running child. It is started in its own process group; the destructor SIGKILLs the group
// and reaps the child if it is still running.
class Process {
public:
    struct Options {
        std::vector<std::string> arguments;  // arguments[0] is the program (searched in PATH)
        std::vector<std::string> environment = minimal_environment();
        std::filesystem::path output_directory;  // stdout/stderr files go here; required
        std::string name = "process";            // file names: <name>.stdout, <name>.stderr
    };

    // Throws std::runtime_error when the output files cannot be created or fork fails. A
    // program that cannot be executed exits with code 127 and says why on its stderr.
    explicit Process(Options options);
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    Process(Process&& other) noexcept;
    Process& operator=(Process&&) = delete;

    pid_t pid() const { return pid_; }
    // True until the child has ended (reaps it when it has).
    bool running();
    // Sends `signal` to the child (not its group). False once it has been reaped.
    bool send_signal(int signal);
    // Waits for the child to end; nullopt when it still runs after `timeout`.
    std::optional<ExitStatus> wait(std::chrono::milliseconds timeout);
    // SIGKILL to the process group, then reap.
    ExitStatus kill();

    const std::filesystem::path& stdout_path() const { return stdout_path_; }
    const std::filesystem::path& stderr_path() const { return stderr_path_; }
    std::string stdout_text() const;
    std::string stderr_text() const;
    // Waits until stdout or stderr (both = either) contains `text`; false after `timeout` or
    // when the process ended without printing it.
    bool wait_for_output(std::string_view text, std::chrono::milliseconds timeout);

    // Both outputs, labelled, for failure messages.
    std::string output_for_diagnosis() const;

private:
    bool reap(bool block);

    pid_t pid_ = -1;
    std::optional<ExitStatus> status_;
    std::filesystem::path stdout_path_;
    std::filesystem::path stderr_path_;
};

struct CommandResult {
    ExitStatus status;
    std::string out;
    std::string err;
};

// Runs a command to completion (killed after `timeout`, which then shows as signal 9).
CommandResult run_command(std::vector<std::string> arguments, const std::filesystem::path& output_directory,
                          std::chrono::milliseconds timeout = std::chrono::seconds(60),
                          std::vector<std::string> environment = minimal_environment());

// True when `program` is an executable found in PATH (or is an executable path).
bool program_available(std::string_view program);

// A fresh directory under /tmp (short, so Unix socket paths fit in 108 bytes), removed with
// everything inside on destruction.
class TempDirectory {
public:
    explicit TempDirectory(std::string_view prefix = "avr-webhookd-test");
    ~TempDirectory();
    TempDirectory(const TempDirectory&) = delete;
    TempDirectory& operator=(const TempDirectory&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path& path);

}  // namespace avr_webhookd::test
