#include "pipelined_producer.hpp"

#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace avr_webhookd::test {

namespace {

constexpr std::size_t chunk_bytes = 64 * 1024;

int connect_nonblocking(const std::filesystem::path& socket) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
        throw std::runtime_error("cannot connect to " + socket.string() + ": " + std::strerror(errno));
    return fd;
}

}  // namespace

PipelinedProducer::PipelinedProducer(const std::filesystem::path& socket, std::uint64_t lines, LineSource source,
                                     ReplyCheck check)
    : fd_(connect_nonblocking(socket)), lines_(lines), source_(std::move(source)), check_(std::move(check)) {}

PipelinedProducer::~PipelinedProducer() { ::close(fd_); }

std::size_t PipelinedProducer::unread_by_daemon() const {
    int unread = 0;
    return ::ioctl(fd_, SIOCOUTQ, &unread) == 0 ? static_cast<std::size_t>(unread) : 0;
}

bool PipelinedProducer::write_some() {
    if (!write_open_) return false;
    if (out_begin_ == out_.size()) {
        out_.clear();
        out_begin_ = 0;
        lines_written_ += lines_in_out_;
        lines_in_out_ = 0;
        while (out_.size() < chunk_bytes && next_line_ <= lines_) {
            source_(next_line_++, out_);
            ++lines_in_out_;
        }
        if (out_.empty()) {  // every line is out: the daemon answers the rest and closes
            ::shutdown(fd_, SHUT_WR);
            write_open_ = false;
            return false;
        }
    }
    const auto sent = ::send(fd_, out_.data() + out_begin_, out_.size() - out_begin_, MSG_NOSIGNAL);
    if (sent <= 0) {
        if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) write_open_ = false;
        return false;
    }
    out_begin_ += static_cast<std::size_t>(sent);
    return true;
}

void PipelinedProducer::read_some(std::string_view data) {
    while (!data.empty()) {
        const auto newline = data.find('\n');
        if (newline == std::string_view::npos) {
            partial_reply_.append(data);
            return;
        }
        std::string_view reply = data.substr(0, newline);
        if (!partial_reply_.empty()) {
            partial_reply_.append(reply);
            reply = partial_reply_;
        }
        ++replies_;
        if (first_wrong_.empty() && !check_(replies_, reply))
            first_wrong_ = "reply " + std::to_string(replies_) + ": " + std::string(reply.substr(0, 300));
        partial_reply_.clear();
        data.remove_prefix(newline + 1);
    }
}

bool PipelinedProducer::write_until_stalled(std::chrono::milliseconds stall, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (write_some()) continue;
        if (!write_open_) return false;
        pollfd poll_fd{fd_, POLLOUT, 0};
        if (::poll(&poll_fd, 1, static_cast<int>(stall.count())) == 0) return true;
    }
    return false;
}

bool PipelinedProducer::run(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string buffer(chunk_bytes, '\0');
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd poll_fd{fd_, static_cast<short>(POLLIN | (write_open_ ? POLLOUT : 0)), 0};
        if (::poll(&poll_fd, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) return false;
        if (poll_fd.revents & POLLOUT)
            while (write_some()) {}
        if (poll_fd.revents & (POLLIN | POLLHUP | POLLERR)) {
            const auto got = ::read(fd_, buffer.data(), buffer.size());
            if (got == 0) return true;
            if (got < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                return false;
            }
            read_some(std::string_view(buffer.data(), static_cast<std::size_t>(got)));
        }
    }
}

}  // namespace avr_webhookd::test
