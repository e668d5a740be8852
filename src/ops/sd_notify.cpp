#include <avr_webhookd/ops/sd_notify.hpp>

#include <avr_webhookd/common/text.hpp>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <utility>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace avr_webhookd {

namespace {

// A whole decimal number, no sign, no spaces.
template <typename Number>
std::optional<Number> parse_decimal(std::string_view text) {
    Number value{};
    const char* end = text.data() + text.size();
    auto [last, error] = std::from_chars(text.data(), end, value);
    if (text.empty() || error != std::errc{} || last != end) return std::nullopt;
    return value;
}

bool valid_socket_address(std::string_view address) {
    return address.size() >= 2 && (address.front() == '/' || address.front() == '@') &&
           address.size() < sizeof(sockaddr_un::sun_path);
}

class ScopedFd {
public:
    explicit ScopedFd(int fd) : fd_(fd) {}
    ~ScopedFd() {
        if (fd_ >= 0) ::close(fd_);
    }
    ScopedFd(const ScopedFd&) = delete;
    ScopedFd& operator=(const ScopedFd&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

}  // namespace

SystemdNotifier::SystemdNotifier(std::string socket_address, std::optional<std::chrono::microseconds> watchdog_interval)
    : socket_address_(valid_socket_address(socket_address) ? std::move(socket_address) : std::string{}),
      watchdog_interval_(watchdog_interval) {}

SystemdNotifier SystemdNotifier::from_environment() {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    return SystemdNotifier(socket ? socket : "",
                           watchdog_interval_from(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"),
                                                  static_cast<long>(::getpid())));
}

std::optional<std::chrono::microseconds> watchdog_interval_from(const char* watchdog_usec, const char* watchdog_pid,
                                                                long own_pid) {
    if (!watchdog_usec) return std::nullopt;
    auto timeout = parse_decimal<unsigned long long>(watchdog_usec);
    if (!timeout || *timeout == 0) return std::nullopt;
    if (watchdog_pid) {
        auto pid = parse_decimal<long>(watchdog_pid);
        if (!pid || *pid != own_pid) return std::nullopt;
    }
    return std::chrono::microseconds(static_cast<std::chrono::microseconds::rep>(*timeout / 2));
}

bool SystemdNotifier::notify(std::string_view state) const noexcept {
    if (!enabled() || state.empty()) return false;

    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, socket_address_.data(), socket_address_.size());
    auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_address_.size());
    if (socket_address_.front() == '@')
        address.sun_path[0] = '\0';  // abstract namespace: the name is exactly these bytes
    else ++length;                   // a path includes its terminating NUL

    ScopedFd socket(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (socket.get() < 0) return false;
    ssize_t sent;
    do {
        sent = ::sendto(socket.get(), state.data(), state.size(), MSG_NOSIGNAL,
                        reinterpret_cast<const sockaddr*>(&address), length);
    } while (sent < 0 && errno == EINTR);
    return sent == static_cast<ssize_t>(state.size());
}

bool SystemdNotifier::ready(std::string_view status) const {
    if (status.empty()) return notify("READY=1");
    return notify("READY=1\nSTATUS=" + single_line(status));
}

bool SystemdNotifier::status(std::string_view status) const { return notify("STATUS=" + single_line(status)); }

bool SystemdNotifier::stopping() const { return notify("STOPPING=1"); }

bool SystemdNotifier::reloading() const {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    auto usec = static_cast<unsigned long long>(now.tv_sec) * 1000000ULL +
                static_cast<unsigned long long>(now.tv_nsec) / 1000ULL;
    return notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

bool SystemdNotifier::watchdog() const { return notify("WATCHDOG=1"); }

std::optional<int> listen_fd_from_environment(std::string* error) {
    std::string ignored;
    std::string& message = error ? *error : ignored;
    message.clear();

    const char* listen_pid = std::getenv("LISTEN_PID");
    if (!listen_pid) return std::nullopt;
    std::string pid_text = listen_pid;
    const char* listen_fds = std::getenv("LISTEN_FDS");
    std::string fds_text = listen_fds ? listen_fds : "";
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");

    auto pid = parse_decimal<long>(pid_text);
    if (!pid) {
        message = "socket activation: LISTEN_PID is not a process id: '" + pid_text + "'";
        return std::nullopt;
    }
    if (*pid != static_cast<long>(::getpid())) return std::nullopt;  // meant for another process

    auto count = parse_decimal<unsigned>(fds_text);
    if (!count) {
        message = "socket activation: LISTEN_FDS is not a count: '" + fds_text + "'";
        return std::nullopt;
    }
    if (*count == 0) return std::nullopt;
    if (*count > 1) {
        message = "socket activation: expected exactly one socket, got LISTEN_FDS=" + fds_text;
        return std::nullopt;
    }

    int flags = ::fcntl(listen_fds_start, F_GETFD);
    if (flags < 0 || ::fcntl(listen_fds_start, F_SETFD, flags | FD_CLOEXEC) < 0) {
        message = "socket activation: file descriptor 3 is not usable: " + std::string(std::strerror(errno));
        return std::nullopt;
    }
    return listen_fds_start;
}

}  // namespace avr_webhookd
