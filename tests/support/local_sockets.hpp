#pragma once

// Local AF_UNIX sockets for tests: a datagram socket standing in for systemd's NOTIFY_SOCKET,
// and a blocking stream client for the daemon's event socket. Every read has a deadline.

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd::test {

class NotifyListener {
public:
    // Binds a datagram socket at `address`: a path, or "@name" for the abstract namespace.
    explicit NotifyListener(std::string address);
    // A socket file notify.sock in `directory`.
    explicit NotifyListener(const std::filesystem::path& directory);
    ~NotifyListener();
    NotifyListener(const NotifyListener&) = delete;
    NotifyListener& operator=(const NotifyListener&) = delete;

    // What NOTIFY_SOCKET must say to reach this listener.
    const std::string& address() const { return address_; }

    // The next datagram, or nullopt when none arrives within `timeout`.
    std::optional<std::string> receive(std::chrono::milliseconds timeout = std::chrono::seconds(2));

    // Receives until a datagram contains `assignment` as a whole line (e.g. "READY=1"); every
    // datagram read on the way is appended to `seen` when given. nullopt after `timeout`.
    std::optional<std::string> receive_until(std::string_view assignment, std::chrono::milliseconds timeout,
                                             std::string* seen = nullptr);

private:
    int fd_ = -1;
    std::string address_;
};

// True when `datagram` has `assignment` as one of its newline-separated lines.
bool has_assignment(std::string_view datagram, std::string_view assignment);

class UnixStreamClient {
public:
    // Connects to the stream socket at `path`; throws std::runtime_error on failure.
    explicit UnixStreamClient(const std::filesystem::path& path);
    ~UnixStreamClient();
    UnixStreamClient(const UnixStreamClient&) = delete;
    UnixStreamClient& operator=(const UnixStreamClient&) = delete;

    // Connects once; false when nothing accepts on `path` (ENOENT, ECONNREFUSED).
    static bool can_connect(const std::filesystem::path& path);

    void write_all(std::string_view bytes);
    // One reply line without its newline; nullopt on EOF or after `timeout`.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout = std::chrono::seconds(5));

private:
    int fd_ = -1;
    std::string buffer_;
};

}  // namespace avr_webhookd::test
