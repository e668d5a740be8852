#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

// systemd's notify protocol (sd_notify(3)), standalone: each message is one datagram of
// newline-separated VAR=value assignments sent to the AF_UNIX socket named by NOTIFY_SOCKET.
// Without NOTIFY_SOCKET the notifier is disabled and sends nothing.
class SystemdNotifier {
public:
    // Disabled: sends nothing, no watchdog.
    SystemdNotifier() = default;
    // `socket_address` is NOTIFY_SOCKET's form: an absolute path or "@name" for an abstract
    // socket; any other form leaves the notifier disabled. `watchdog_interval` is how often to
    // send WATCHDOG=1 (already halved).
    SystemdNotifier(std::string socket_address, std::optional<std::chrono::microseconds> watchdog_interval);

    // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID; leaves them set.
    static SystemdNotifier from_environment();

    bool enabled() const { return !socket_address_.empty(); }
    const std::string& socket_address() const { return socket_address_; }

    // Sends `state` as one datagram. True only when it was sent: false when disabled or when
    // the send failed. Never throws.
    bool notify(std::string_view state) const noexcept;

    // Half of WATCHDOG_USEC when it is set and WATCHDOG_PID is absent or this process.
    std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_interval_; }

    // READY=1 with a STATUS= line (omitted when `status` is empty). Also sent after a reload.
    bool ready(std::string_view status) const;
    bool status(std::string_view status) const;
    bool stopping() const;
    // RELOADING=1 with MONOTONIC_USEC (which Type=notify-reload needs on systemd 253+; 252
    // ignores it). Send ready() once the reload is done, as systemd 252 expects.
    bool reloading() const;
    bool watchdog() const;

private:
    std::string socket_address_;
    std::optional<std::chrono::microseconds> watchdog_interval_;
};

// The interval a watchdog message is due, from WATCHDOG_USEC/WATCHDOG_PID's raw values
// (nullptr when unset) and this process's id: half the timeout, nullopt when not for us.
std::optional<std::chrono::microseconds> watchdog_interval_from(const char* watchdog_usec, const char* watchdog_pid,
                                                                long own_pid);

// The first descriptor systemd passes (SD_LISTEN_FDS_START).
inline constexpr int listen_fds_start = 3;

// Socket activation (sd_listen_fds(3)): when LISTEN_PID is this process and LISTEN_FDS is 1,
// returns fd 3 with FD_CLOEXEC set. nullopt with an empty *error when the process was not
// socket-activated (no LISTEN_PID, another process's LISTEN_PID, LISTEN_FDS=0); nullopt with a
// one-line *error for invalid values or more than one socket. Whenever LISTEN_PID is set,
// LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are unset so that they never reach a child.
// `error` may be nullptr.
std::optional<int> listen_fd_from_environment(std::string* error);

}  // namespace avr_webhookd
