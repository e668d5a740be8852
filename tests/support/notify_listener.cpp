#include "notify_listener.hpp"

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace avr_webhookd::test {

namespace {

using Clock = std::chrono::steady_clock;

// `address` as NOTIFY_SOCKET writes it: a path (length includes the NUL) or "@name".
socklen_t fill_address(sockaddr_un& address, std::string_view name) {
    if (name.size() >= sizeof address.sun_path)
        throw std::runtime_error("socket address too long: " + std::string(name));
    address = {};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, name.data(), name.size());
    bool abstract = !name.empty() && name.front() == '@';
    if (abstract) address.sun_path[0] = '\0';
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (abstract ? 0 : 1));
}

std::runtime_error system_error(const std::string& what) {
    return std::runtime_error(what + ": " + std::strerror(errno));
}

// Waits for `fd` to be readable until `deadline`.
bool readable_before(int fd, Clock::time_point deadline) {
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() < 0) return false;
        pollfd ready{fd, POLLIN, 0};
        int result = ::poll(&ready, 1, static_cast<int>(left.count()));
        if (result > 0) return true;
        if (result == 0) return false;
        if (errno != EINTR) return false;
    }
}

}  // namespace

NotifyListener::NotifyListener(std::string address) : address_(std::move(address)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw system_error("socket");
    sockaddr_un socket_address;
    auto length = fill_address(socket_address, address_);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&socket_address), length) != 0) {
        auto error = system_error("bind " + address_);
        ::close(fd_);
        throw error;
    }
}

NotifyListener::NotifyListener(const std::filesystem::path& directory)
    : NotifyListener((directory / "notify.sock").string()) {}

NotifyListener::~NotifyListener() {
    ::close(fd_);
    if (!address_.empty() && address_.front() == '/') ::unlink(address_.c_str());
}

std::optional<std::string> NotifyListener::receive(std::chrono::milliseconds timeout) {
    if (!readable_before(fd_, Clock::now() + timeout)) return std::nullopt;
    char buffer[4096];
    ssize_t size = ::recv(fd_, buffer, sizeof buffer, 0);
    if (size < 0) return std::nullopt;
    return std::string(buffer, static_cast<std::size_t>(size));
}

std::optional<std::string> NotifyListener::receive_until(std::string_view assignment, std::chrono::milliseconds timeout,
                                                         std::string* seen) {
    auto deadline = Clock::now() + timeout;
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() < 0) return std::nullopt;
        auto datagram = receive(left);
        if (!datagram) return std::nullopt;
        if (seen) *seen += *datagram + "\n";
        if (has_assignment(*datagram, assignment)) return datagram;
    }
}

bool has_assignment(std::string_view datagram, std::string_view assignment) {
    while (!datagram.empty()) {
        auto end = datagram.find('\n');
        if (datagram.substr(0, end) == assignment) return true;
        if (end == std::string_view::npos) break;
        datagram.remove_prefix(end + 1);
    }
    return false;
}

}  // namespace avr_webhookd::test
