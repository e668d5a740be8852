#pragma once

// The receiver every ceiling and relay run posts to: nginx, started by the bench as a child in a
// temporary folder (one worker, no access log, `return 200` for every request), HTTP and HTTPS
// on loopback ports picked free. Requests are counted with nginx's stub_status counter.

#include "support/process.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>

namespace avr_webhookd::bench {

class NginxSink {
public:
    // `cert` and `key` (PEM) serve HTTPS.
    NginxSink(const std::filesystem::path& cert, const std::filesystem::path& key);
    ~NginxSink();
    NginxSink(const NginxSink&) = delete;
    NginxSink& operator=(const NginxSink&) = delete;

    std::string http_url() const;
    std::string https_url() const;

    // Starts counting from zero.
    void mark();
    // Requests nginx has received since mark(), not counting the status queries themselves.
    std::size_t received();
    // Polls until `count` requests have arrived since mark(); false after `timeout`.
    bool wait_for(std::size_t count, std::chrono::milliseconds timeout);

private:
    std::size_t status_requests();  // nginx's total request count, by one stub_status query
    void write_config() const;

    test::TempDirectory dir_;
    unsigned short http_port_;
    unsigned short https_port_;
    std::filesystem::path cert_, key_;
    std::optional<test::Process> nginx_;
    boost::asio::io_context io_;
    boost::asio::ip::tcp::socket status_socket_;
    boost::beast::flat_buffer status_buffer_;
    std::size_t base_ = 0;     // the counter at mark()
    std::size_t queries_ = 0;  // status queries since mark()
};

}  // namespace avr_webhookd::bench
