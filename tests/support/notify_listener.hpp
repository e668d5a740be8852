#pragma once

// A datagram socket standing in for systemd's NOTIFY_SOCKET, to read what a process notifies.

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

}  // namespace avr_webhookd::test
