#include "nginx_sink.hpp"

#include "bench_support.hpp"

#include <boost/asio/connect.hpp>
#include <boost/beast/http.hpp>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace avr_webhookd::bench {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using namespace std::chrono_literals;

NginxSink::NginxSink(const std::filesystem::path& cert, const std::filesystem::path& key)
    : dir_("relay-bench-nginx"),
      http_port_(free_port()),
      https_port_(free_port()),
      cert_(cert),
      key_(key),
      status_socket_(io_) {
    write_config();
    test::Process::Options options;
    options.arguments = {
        "nginx", "-p", dir_.path().string(), "-c", (dir_ / "nginx.conf").string(), "-e", (dir_ / "error.log").string()};
    options.output_directory = dir_.path();
    options.name = "nginx";
    nginx_.emplace(std::move(options));
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), http_port_);
    const bool up = test::wait_until(
        [&] {
            boost::system::error_code error;
            status_socket_.close(error);
            status_socket_.connect(endpoint, error);
            return !error || !nginx_->running();
        },
        10s);
    if (!up || !nginx_->running())
        throw std::runtime_error("nginx did not start:\n" + nginx_->output_for_diagnosis() +
                                 test::read_file(dir_ / "error.log"));
    mark();
}

NginxSink::~NginxSink() {
    boost::system::error_code error;
    status_socket_.close(error);
    if (nginx_) {
        nginx_->send_signal(SIGQUIT);  // graceful stop of master and worker
        if (!nginx_->wait(10s)) nginx_->kill();
    }
}

void NginxSink::write_config() const {
    const auto dir = dir_.path().string();
    std::ofstream conf(dir_ / "nginx.conf");
    conf << "daemon off;\nmaster_process on;\nworker_processes 1;\npid " << dir << "/nginx.pid;\n"
         << "error_log " << dir << "/error.log warn;\n"
         << "events { worker_connections 4096; }\n"
         << "http {\n  access_log off;\n  keepalive_requests 100000000;\n  keepalive_timeout 300s;\n"
         << "  client_body_temp_path " << dir << "/body;\n  proxy_temp_path " << dir << "/proxy;\n"
         << "  fastcgi_temp_path " << dir << "/fastcgi;\n  uwsgi_temp_path " << dir << "/uwsgi;\n"
         << "  scgi_temp_path " << dir << "/scgi;\n"
         << "  server {\n    listen 127.0.0.1:" << http_port_ << ";\n    listen 127.0.0.1:" << https_port_
         << " ssl;\n    ssl_certificate " << cert_.string() << ";\n    ssl_certificate_key " << key_.string()
         << ";\n    location = /nginx_status { stub_status; }\n    location / { return 200; }\n  }\n}\n";
    if (!conf) throw std::runtime_error("cannot write " + (dir_ / "nginx.conf").string());
}

std::string NginxSink::http_url() const { return "http://127.0.0.1:" + std::to_string(http_port_) + "/hook"; }
std::string NginxSink::https_url() const { return "https://127.0.0.1:" + std::to_string(https_port_) + "/hook"; }

// stub_status answers "Active connections: N\nserver accepts handled requests\n A H R\n...".
std::size_t NginxSink::status_requests() {
    http::request<http::empty_body> request{http::verb::get, "/nginx_status", 11};
    request.set(http::field::host, "127.0.0.1");
    http::write(status_socket_, request);
    http::response<http::string_body> response;
    http::read(status_socket_, status_buffer_, response);
    const auto& text = response.body();
    const auto line = text.find('\n', text.find("requests"));
    if (response.result() != http::status::ok || line == std::string::npos)
        throw std::runtime_error("unexpected stub_status answer: " + text);
    unsigned long long accepts = 0, handled = 0, requests = 0;
    if (std::sscanf(text.c_str() + line, " %llu %llu %llu", &accepts, &handled, &requests) != 3)
        throw std::runtime_error("unexpected stub_status answer: " + text);
    return static_cast<std::size_t>(requests);
}

void NginxSink::mark() {
    base_ = status_requests();
    queries_ = 0;
}

std::size_t NginxSink::received() {
    const auto total = status_requests();
    ++queries_;
    return total - base_ - queries_;
}

bool NginxSink::wait_for(std::size_t count, std::chrono::milliseconds timeout) {
    return poll_until([&] { return received() >= count; }, timeout, 2ms);
}

}  // namespace avr_webhookd::bench
