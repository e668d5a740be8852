#pragma once

// A raw HTTP/1.1 client for the HTTP intake's integration tests: it writes bytes exactly as given
// (AVR Core's requests, or hostile ones) and reads responses with deadlines.

#include "daemon_fixture.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd::test {

inline constexpr std::string_view intake_call = "550e8400-e29b-41d4-a716-446655440000";
inline constexpr std::string_view intake_test_secret = "intake-S3cret";  // the tests' intake_secret

// The port a listener bound (127.0.0.1:0), from the daemon's start line `prefix`.
unsigned short bound_port(DaemonProcess& daemon, const std::string& prefix);
// The HTTP intake's port (http_listen = 127.0.0.1:0).
unsigned short http_port(DaemonProcess& daemon);
// The admin endpoint's port (admin = 127.0.0.1:0).
unsigned short admin_port(DaemonProcess& daemon);

struct Reply {
    unsigned status = 0;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
};

// A plain TCP client on 127.0.0.1 that writes raw bytes and reads responses with deadlines.
class RawHttpClient {
public:
    explicit RawHttpClient(unsigned short port);
    ~RawHttpClient();
    RawHttpClient(const RawHttpClient&) = delete;
    RawHttpClient& operator=(const RawHttpClient&) = delete;

    void send(std::string_view bytes);
    // Sends what the socket takes now without waiting; false once the peer closed or reset.
    bool send_some(std::string_view bytes, std::size_t& sent);
    std::optional<Reply> read_reply(std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // True when the daemon closes the connection before `timeout`.
    bool closed_within(std::chrono::milliseconds timeout);
    int fd() const { return fd_; }

private:
    bool receive(std::chrono::steady_clock::time_point deadline);

    int fd_;
    std::string buffered_;
    bool closed_ = false;
};

// JSON.stringify({uuid, type, timestamp, payload}), as AVR Core's webhook sender builds the body.
std::string core_body(std::string_view type, std::string_view text = "Hello",
                      std::string_view timestamp = "2024-01-01T12:01:45.123Z");
// The request exactly as axios 1.x sends it from AVR Core.
std::string core_request(unsigned short port, std::string_view body, std::string_view with_secret = intake_test_secret,
                         std::string_view content_type = "application/json", std::string_view method = "POST");

}  // namespace avr_webhookd::test
