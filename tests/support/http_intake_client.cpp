#include "http_intake_client.hpp"

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <regex>
#include <stdexcept>

namespace avr_webhookd::test {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

unsigned short bound_port(DaemonProcess& daemon, const std::string& prefix) {
    const std::regex bound(prefix + "127\\.0\\.0\\.1:([0-9]+)");
    std::string port;  // copied out while the log text the match points into is alive
    const bool found = wait_until(
        [&] {
            const auto log = daemon.log();
            std::smatch match;
            if (!std::regex_search(log, match, bound)) return false;
            port = match[1].str();
            return true;
        },
        std::chrono::seconds(10));
    if (!found) throw std::runtime_error("no line " + prefix + " in the log:\n" + daemon.log());
    return static_cast<unsigned short>(std::stoi(port));
}

unsigned short http_port(DaemonProcess& daemon) {
    return bound_port(daemon, "accepting AVR Core's webhook requests on http://");
}

unsigned short admin_port(DaemonProcess& daemon) {
    return bound_port(daemon, "serving /healthz, /readyz and /metrics on ");
}

RawHttpClient::RawHttpClient(unsigned short port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
        throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
}

RawHttpClient::~RawHttpClient() { ::close(fd_); }

void RawHttpClient::send(std::string_view bytes) {
    while (!bytes.empty()) {
        const auto sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (sent <= 0) throw std::runtime_error("send failed");
        bytes.remove_prefix(static_cast<std::size_t>(sent));
    }
}

bool RawHttpClient::send_some(std::string_view bytes, std::size_t& sent) {
    sent = 0;
    const auto count = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (count > 0) sent = static_cast<std::size_t>(count);
    return count > 0 || errno == EAGAIN || errno == EWOULDBLOCK;
}

std::optional<Reply> RawHttpClient::read_reply(std::chrono::milliseconds timeout) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (!buffered_.empty()) {
            boost::beast::error_code error;
            const auto used = parser.put(boost::asio::buffer(buffered_), error);
            if (error && error != http::error::need_more) return std::nullopt;
            buffered_.erase(0, used);
            if (parser.is_done()) break;
            if (used > 0) continue;
        }
        if (!receive(deadline)) return std::nullopt;
    }
    Reply reply;
    reply.status = parser.get().result_int();
    for (const auto& field : parser.get()) {
        std::string name(field.name_string());
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
        reply.headers[name] = std::string(field.value());
    }
    reply.body = parser.get().body();
    return reply;
}

bool RawHttpClient::closed_within(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (receive(deadline)) buffered_.clear();
    return closed_;
}

bool RawHttpClient::receive(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd descriptor{fd_, POLLIN, 0};
    if (::poll(&descriptor, 1, static_cast<int>(left.count())) <= 0) return false;
    char chunk[4096];
    const auto got = ::recv(fd_, chunk, sizeof chunk, 0);
    if (got <= 0) {
        closed_ = true;
        return false;
    }
    buffered_.append(chunk, static_cast<std::size_t>(got));
    return true;
}

std::string core_body(std::string_view type, std::string_view text, std::string_view timestamp) {
    return std::string(R"({"uuid":")") + std::string(intake_call) + R"(","type":")" + std::string(type) +
           R"(","timestamp":")" + std::string(timestamp) + R"(","payload":{"role":"user","text":")" +
           std::string(text) + R"("}})";
}

std::string core_request(unsigned short port, std::string_view body, std::string_view with_secret,
                         std::string_view content_type, std::string_view method) {
    return std::string(method) + " /events HTTP/1.1\r\n" +
           "Accept: application/json, text/plain, */*\r\n"
           "Content-Type: " +
           std::string(content_type) + "\r\n" + "X-AVR-WEBHOOK-SECRET: " + std::string(with_secret) + "\r\n" +
           "User-Agent: axios/1.7.9\r\n" + "Content-Length: " + std::to_string(body.size()) + "\r\n" +
           "Accept-Encoding: gzip, compress, deflate, br\r\n" + "Host: 127.0.0.1:" + std::to_string(port) + "\r\n" +
           "Connection: keep-alive\r\n\r\n" + std::string(body);
}

}  // namespace avr_webhookd::test
