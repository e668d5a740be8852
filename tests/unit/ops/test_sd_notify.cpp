// These tests use a real AF_UNIX datagram socket in a temporary directory: the notify protocol is
// one sendto(), and a local datagram socket is the only faithful way to see its bytes.
#include <avr_webhookd/ops/sd_notify.hpp>

#include "support/notify_listener.hpp"
#include "support/process.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

using avr_webhookd::listen_fd_from_environment;
using avr_webhookd::SystemdNotifier;
using avr_webhookd::watchdog_interval_from;
using avr_webhookd::test::NotifyListener;
using avr_webhookd::test::TempDirectory;
using namespace std::chrono_literals;

namespace {

// Sets (or unsets, for nullopt) one environment variable and restores the old state on exit.
class ScopedEnv {
public:
    ScopedEnv(std::string name, std::optional<std::string> value) : name_(std::move(name)) {
        if (const char* old = std::getenv(name_.c_str())) old_ = old;
        if (value) ::setenv(name_.c_str(), value->c_str(), 1);
        else ::unsetenv(name_.c_str());
    }
    ~ScopedEnv() {
        if (old_) ::setenv(name_.c_str(), old_->c_str(), 1);
        else ::unsetenv(name_.c_str());
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    std::string name_;
    std::optional<std::string> old_;
};

std::optional<std::string> env(const char* name) {
    const char* value = std::getenv(name);
    return value ? std::optional<std::string>(value) : std::nullopt;
}

std::string unique_abstract_name() {
    static int counter = 0;
    return "@avr-webhookd-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

bool close_on_exec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

// Puts a fresh socket at descriptor 3 (without FD_CLOEXEC, as systemd passes it) and puts back
// whatever descriptor 3 was before.
class ScopedListenFd {
public:
    ScopedListenFd() {
        saved_ = ::fcntl(3, F_DUPFD_CLOEXEC, 10);  // -1 when 3 was not open
        int socket = ::socket(AF_UNIX, SOCK_STREAM, 0);
        REQUIRE(socket >= 0);
        REQUIRE(::dup2(socket, 3) == 3);
        if (socket != 3) ::close(socket);
    }
    ~ScopedListenFd() {
        if (saved_ >= 0) {
            ::dup2(saved_, 3);
            ::close(saved_);
        } else {
            ::close(3);
        }
    }
    ScopedListenFd(const ScopedListenFd&) = delete;
    ScopedListenFd& operator=(const ScopedListenFd&) = delete;

private:
    int saved_ = -1;
};

}  // namespace

TEST_CASE("sd_notify: disabled without NOTIFY_SOCKET", "[sd_notify]") {
    ScopedEnv socket("NOTIFY_SOCKET", std::nullopt);
    ScopedEnv usec("WATCHDOG_USEC", std::nullopt);
    auto notifier = SystemdNotifier::from_environment();
    CHECK_FALSE(notifier.enabled());
    CHECK_FALSE(notifier.notify("READY=1"));
    CHECK_FALSE(notifier.ready("accepting events"));
    CHECK_FALSE(notifier.watchdog_interval());
}

TEST_CASE("sd_notify: addresses that are neither a path nor abstract disable it", "[sd_notify]") {
    CHECK_FALSE(SystemdNotifier("relative/notify.sock", std::nullopt).enabled());
    CHECK_FALSE(SystemdNotifier("@", std::nullopt).enabled());
    CHECK_FALSE(SystemdNotifier("vsock:2:1234", std::nullopt).enabled());
    CHECK_FALSE(SystemdNotifier("/" + std::string(200, 'x'), std::nullopt).enabled());
    CHECK(SystemdNotifier("/run/systemd/notify", std::nullopt).enabled());
    CHECK(SystemdNotifier("@/org/freedesktop/systemd1/notify/1", std::nullopt).enabled());
}

TEST_CASE("sd_notify: exact datagrams to a socket path", "[sd_notify]") {
    TempDirectory directory;
    NotifyListener listener(directory.path());
    ScopedEnv socket("NOTIFY_SOCKET", listener.address());
    auto notifier = SystemdNotifier::from_environment();
    REQUIRE(notifier.enabled());
    CHECK(notifier.socket_address() == listener.address());

    CHECK(notifier.notify("READY=1\nSTATUS=accepting events"));
    CHECK(listener.receive() == "READY=1\nSTATUS=accepting events");

    CHECK(notifier.ready("accepting events on /run/x.sock"));
    CHECK(listener.receive() == "READY=1\nSTATUS=accepting events on /run/x.sock");
    CHECK(notifier.ready(""));
    CHECK(listener.receive() == "READY=1");
    CHECK(notifier.status("3 queued"));
    CHECK(listener.receive() == "STATUS=3 queued");
    CHECK(notifier.stopping());
    CHECK(listener.receive() == "STOPPING=1");
    CHECK(notifier.watchdog());
    CHECK(listener.receive() == "WATCHDOG=1");

    CHECK(notifier.reloading());
    auto reloading = listener.receive();
    REQUIRE(reloading);
    CHECK(reloading->rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
    auto usec = reloading->substr(std::strlen("RELOADING=1\nMONOTONIC_USEC="));
    CHECK_FALSE(usec.empty());
    CHECK(usec.find_first_not_of("0123456789") == std::string::npos);

    CHECK_FALSE(listener.receive(50ms));  // nothing else was sent
}

TEST_CASE("sd_notify: a status with newlines stays one STATUS line", "[sd_notify]") {
    TempDirectory directory;
    NotifyListener listener(directory.path());
    SystemdNotifier notifier(listener.address(), std::nullopt);
    CHECK(notifier.status("line one\nREADY=1\rthree"));
    CHECK(listener.receive() == "STATUS=line one READY=1 three");
}

TEST_CASE("sd_notify: abstract socket names", "[sd_notify]") {
    NotifyListener listener(unique_abstract_name());
    ScopedEnv socket("NOTIFY_SOCKET", listener.address());
    auto notifier = SystemdNotifier::from_environment();
    REQUIRE(notifier.enabled());
    CHECK(notifier.watchdog());
    CHECK(listener.receive() == "WATCHDOG=1");
}

TEST_CASE("sd_notify: a missing listener is a failure, not an exception", "[sd_notify]") {
    TempDirectory directory;
    std::string address;
    {
        NotifyListener listener(directory.path());
        address = listener.address();
    }
    SystemdNotifier notifier(address, std::nullopt);
    REQUIRE(notifier.enabled());
    CHECK_FALSE(notifier.notify("READY=1"));
    CHECK_FALSE(SystemdNotifier(unique_abstract_name(), std::nullopt).notify("READY=1"));
}

TEST_CASE("sd_notify: the environment is left as it was", "[sd_notify]") {
    ScopedEnv socket("NOTIFY_SOCKET", "/run/systemd/notify");
    ScopedEnv usec("WATCHDOG_USEC", "30000000");
    ScopedEnv pid("WATCHDOG_PID", std::nullopt);
    auto notifier = SystemdNotifier::from_environment();
    CHECK(env("NOTIFY_SOCKET") == "/run/systemd/notify");
    CHECK(env("WATCHDOG_USEC") == "30000000");
}

TEST_CASE("sd_notify: watchdog interval is half of WATCHDOG_USEC", "[sd_notify]") {
    auto own = std::to_string(::getpid());
    SECTION("no WATCHDOG_PID") {
        ScopedEnv usec("WATCHDOG_USEC", "30000000");
        ScopedEnv pid("WATCHDOG_PID", std::nullopt);
        CHECK(SystemdNotifier::from_environment().watchdog_interval() == std::chrono::microseconds(15000000));
    }
    SECTION("WATCHDOG_PID is ours") {
        ScopedEnv usec("WATCHDOG_USEC", "200000");
        ScopedEnv pid("WATCHDOG_PID", own);
        CHECK(SystemdNotifier::from_environment().watchdog_interval() == 100ms);
    }
    SECTION("WATCHDOG_PID is another process") {
        ScopedEnv usec("WATCHDOG_USEC", "200000");
        ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid() + 1));
        CHECK_FALSE(SystemdNotifier::from_environment().watchdog_interval());
    }
    SECTION("unset") {
        ScopedEnv usec("WATCHDOG_USEC", std::nullopt);
        CHECK_FALSE(SystemdNotifier::from_environment().watchdog_interval());
    }
}

TEST_CASE("sd_notify: invalid watchdog values are ignored", "[sd_notify]") {
    CHECK_FALSE(watchdog_interval_from("0", nullptr, 42));
    CHECK_FALSE(watchdog_interval_from("", nullptr, 42));
    CHECK_FALSE(watchdog_interval_from("-5", nullptr, 42));
    CHECK_FALSE(watchdog_interval_from("30s", nullptr, 42));
    CHECK_FALSE(watchdog_interval_from("1000", "x", 42));
    CHECK(watchdog_interval_from("1000", "42", 42) == std::chrono::microseconds(500));
    CHECK(watchdog_interval_from("1", nullptr, 42) == std::chrono::microseconds(0));
}

TEST_CASE("sd_notify: socket activation takes descriptor 3", "[sd_notify]") {
    ScopedListenFd listen_fd;
    ScopedEnv pid("LISTEN_PID", std::to_string(::getpid()));
    ScopedEnv fds("LISTEN_FDS", "1");
    ScopedEnv names("LISTEN_FDNAMES", "avr-webhookd.socket");
    REQUIRE_FALSE(close_on_exec(3));

    std::string error = "stale";
    auto fd = listen_fd_from_environment(&error);
    CHECK(fd == 3);
    CHECK(error.empty());
    CHECK(close_on_exec(3));
    CHECK_FALSE(env("LISTEN_PID"));
    CHECK_FALSE(env("LISTEN_FDS"));
    CHECK_FALSE(env("LISTEN_FDNAMES"));
}

TEST_CASE("sd_notify: socket activation for another process is ignored", "[sd_notify]") {
    ScopedListenFd listen_fd;
    ScopedEnv pid("LISTEN_PID", std::to_string(::getpid() + 1));
    ScopedEnv fds("LISTEN_FDS", "1");

    std::string error;
    CHECK_FALSE(listen_fd_from_environment(&error));
    CHECK(error.empty());
    CHECK_FALSE(close_on_exec(3));  // not ours to touch
    CHECK_FALSE(env("LISTEN_PID"));
}

TEST_CASE("sd_notify: no socket activation without LISTEN_PID", "[sd_notify]") {
    ScopedEnv pid("LISTEN_PID", std::nullopt);
    ScopedEnv fds("LISTEN_FDS", "1");
    std::string error;
    CHECK_FALSE(listen_fd_from_environment(&error));
    CHECK(error.empty());
    CHECK(env("LISTEN_FDS") == "1");  // left alone: not a socket-activation environment
    CHECK_FALSE(listen_fd_from_environment(nullptr));
}

TEST_CASE("sd_notify: socket activation errors", "[sd_notify]") {
    auto own = std::to_string(::getpid());
    std::string error;
    SECTION("more than one socket") {
        ScopedEnv pid("LISTEN_PID", own);
        ScopedEnv fds("LISTEN_FDS", "2");
        CHECK_FALSE(listen_fd_from_environment(&error));
        CHECK_THAT(error, Catch::Contains("expected exactly one socket"));
    }
    SECTION("zero sockets is not activation") {
        ScopedEnv pid("LISTEN_PID", own);
        ScopedEnv fds("LISTEN_FDS", "0");
        CHECK_FALSE(listen_fd_from_environment(&error));
        CHECK(error.empty());
    }
    SECTION("LISTEN_FDS missing or not a number") {
        ScopedEnv pid("LISTEN_PID", own);
        ScopedEnv fds("LISTEN_FDS", "one");
        CHECK_FALSE(listen_fd_from_environment(&error));
        CHECK_THAT(error, Catch::Contains("LISTEN_FDS"));
    }
    SECTION("LISTEN_PID not a number") {
        ScopedEnv pid("LISTEN_PID", "self");
        ScopedEnv fds("LISTEN_FDS", "1");
        CHECK_FALSE(listen_fd_from_environment(&error));
        CHECK_THAT(error, Catch::Contains("LISTEN_PID"));
    }
    SECTION("descriptor 3 is closed") {
        int saved = ::fcntl(3, F_DUPFD_CLOEXEC, 10);
        ::close(3);
        ScopedEnv pid("LISTEN_PID", own);
        ScopedEnv fds("LISTEN_FDS", "1");
        CHECK_FALSE(listen_fd_from_environment(&error));
        CHECK_THAT(error, Catch::Contains("descriptor 3"));
        if (saved >= 0) {
            ::dup2(saved, 3);
            ::close(saved);
        }
    }
}
