#include "process.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include <csignal>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace avr_webhookd::test {

namespace {

using Clock = std::chrono::steady_clock;

std::vector<char*> c_strings(std::vector<std::string>& strings) {
    std::vector<char*> pointers;
    pointers.reserve(strings.size() + 1);
    for (auto& s : strings) pointers.push_back(s.data());
    pointers.push_back(nullptr);
    return pointers;
}

int open_output(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot create " + path.string() + ": " + std::strerror(errno));
    return fd;
}

// Only async-signal-safe calls between fork and exec.
[[noreturn]] void exec_child(int stdout_fd, int stderr_fd, char** argv, char** envp) {
    ::setpgid(0, 0);
    int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(stdout_fd, 1);
    ::dup2(stderr_fd, 2);
    // Nothing else the test process holds may live on in the child: an inherited listening
    // socket or connection of an in-process receiver would stay open after the test closed it.
    ::close_range(3, ~0U, 0);
    // Signals blocked or ignored by the test runner must not be inherited.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int signal : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) ::signal(signal, SIG_DFL);
    ::execvpe(argv[0], argv, envp);
    const char* reason = std::strerror(errno);
    const char prefix[] = "exec failed: ";
    [[maybe_unused]] auto w1 = ::write(2, prefix, sizeof prefix - 1);
    [[maybe_unused]] auto w2 = ::write(2, argv[0], std::strlen(argv[0]));
    [[maybe_unused]] auto w3 = ::write(2, ": ", 2);
    [[maybe_unused]] auto w4 = ::write(2, reason, std::strlen(reason));
    [[maybe_unused]] auto w5 = ::write(2, "\n", 1);
    ::_exit(127);
}

ExitStatus decode(int raw) {
    ExitStatus status;
    if (WIFEXITED(raw)) {
        status.code = WEXITSTATUS(raw);
    } else if (WIFSIGNALED(raw)) {
        status.signal = WTERMSIG(raw);
    }
    return status;
}

}  // namespace

std::string ExitStatus::describe() const {
    if (exited()) return "exit code " + std::to_string(code);
    return "killed by signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
}

std::vector<std::string> minimal_environment() {
    std::vector<std::string> environment;
    for (const char* name : {"PATH", "HOME"})
        if (const char* value = std::getenv(name)) environment.push_back(std::string(name) + "=" + value);
    return environment;
}

std::size_t memory_kib(pid_t pid, std::string_view field) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    const std::string prefix = std::string(field) + ":";
    for (std::string line; std::getline(status, line);)
        if (line.starts_with(prefix)) return std::stoul(line.substr(prefix.size()));
    return 0;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step) {
    auto deadline = Clock::now() + timeout;
    while (true) {
        if (condition()) return true;
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(step);
    }
}

Process::Process(Options options) {
    if (options.arguments.empty()) throw std::invalid_argument("Process: no program given");
    stdout_path_ = options.output_directory / (options.name + ".stdout");
    stderr_path_ = options.output_directory / (options.name + ".stderr");
    int stdout_fd = open_output(stdout_path_);
    int stderr_fd = open_output(stderr_path_);

    auto argv = c_strings(options.arguments);
    auto envp = c_strings(options.environment);
    pid_ = ::fork();
    if (pid_ == 0) exec_child(stdout_fd, stderr_fd, argv.data(), envp.data());
    int fork_errno = errno;
    ::close(stdout_fd);
    ::close(stderr_fd);
    if (pid_ < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(fork_errno));
    // Also from the parent, so that a kill() right after start reaches the whole group.
    ::setpgid(pid_, pid_);
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      status_(std::move(other.status_)),
      stdout_path_(std::move(other.stdout_path_)),
      stderr_path_(std::move(other.stderr_path_)) {}

Process::~Process() {
    if (pid_ > 0 && !status_) kill();
}

bool Process::reap(bool block) {
    if (status_) return true;
    int raw = 0;
    pid_t result;
    do {
        result = ::waitpid(pid_, &raw, block ? 0 : WNOHANG);
    } while (result < 0 && errno == EINTR);
    if (result == pid_) {
        status_ = decode(raw);
        return true;
    }
    return false;
}

bool Process::running() { return pid_ > 0 && !reap(false); }

bool Process::send_signal(int signal) {
    if (!running()) return false;
    return ::kill(pid_, signal) == 0;
}

std::optional<ExitStatus> Process::wait(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return std::nullopt;
    if (!wait_until([this] { return reap(false); }, timeout, std::chrono::milliseconds(5))) return std::nullopt;
    return status_;
}

ExitStatus Process::kill() {
    if (!status_) {
        ::kill(-pid_, SIGKILL);
        ::kill(pid_, SIGKILL);  // in case it left its group
        reap(true);
    } else {
        ::kill(-pid_, SIGKILL);  // grandchildren left in the group
    }
    return *status_;
}

std::string Process::stdout_text() const { return read_file(stdout_path_); }
std::string Process::stderr_text() const { return read_file(stderr_path_); }

bool Process::wait_for_output(std::string_view text, std::chrono::milliseconds timeout) {
    auto printed = [&] {
        return stdout_text().find(text) != std::string::npos || stderr_text().find(text) != std::string::npos;
    };
    bool ended = false;
    bool found = wait_until(
        [&] {
            if (printed()) return true;
            ended = !running();
            return ended;
        },
        timeout);
    return found && (!ended || printed());
}

std::string Process::output_for_diagnosis() const {
    return "--- stdout:\n" + stdout_text() + "--- stderr:\n" + stderr_text() + "---";
}

CommandResult run_command(std::vector<std::string> arguments, const std::filesystem::path& output_directory,
                          std::chrono::milliseconds timeout, std::vector<std::string> environment) {
    static int counter = 0;
    Process process({.arguments = std::move(arguments),
                     .environment = std::move(environment),
                     .output_directory = output_directory,
                     .name = "command-" + std::to_string(++counter)});
    auto status = process.wait(timeout);
    CommandResult result{status ? *status : process.kill(), {}, {}};
    result.out = process.stdout_text();
    result.err = process.stderr_text();
    return result;
}

bool program_available(std::string_view program) {
    if (program.find('/') != std::string_view::npos) return ::access(std::string(program).c_str(), X_OK) == 0;
    const char* path = std::getenv("PATH");
    std::stringstream directories(path ? path : "/usr/bin:/bin");
    std::string directory;
    while (std::getline(directories, directory, ':')) {
        if (directory.empty()) continue;
        auto candidate = std::filesystem::path(directory) / program;
        if (::access(candidate.c_str(), X_OK) == 0) return true;
    }
    return false;
}

TempDirectory::TempDirectory(std::string_view prefix) {
    std::string pattern = "/tmp/" + std::string(prefix) + ".XXXXXX";
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed: " + std::string(std::strerror(errno)));
    path_ = pattern;
}

TempDirectory::~TempDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream file(path, std::ios::binary);
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}

}  // namespace avr_webhookd::test
