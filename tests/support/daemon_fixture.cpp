#include "daemon_fixture.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <csignal>

#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace avr_webhookd::test {

namespace fs = std::filesystem;

ReceiverThread::ReceiverThread(ReceiverOptions options, std::string listen) {
    options.listen = std::move(listen);
    options.quiet = true;
    receiver_ = std::make_unique<Receiver>(io_, std::move(options));
    receiver_->start();
    thread_ = std::thread([this] { io_.run(); });
}

ReceiverThread::~ReceiverThread() {
    receiver_->stop();
    io_.stop();
    thread_.join();
}

std::string ReceiverThread::url(std::string_view path) const { return receiver_->base_url() + std::string(path); }

bool ReceiverThread::wait_for_requests(std::size_t count, std::chrono::milliseconds timeout) const {
    return receiver_->wait_for([count](const auto& requests) { return requests.size() >= count; }, timeout);
}

std::string daemon_binary() { return AVR_WEBHOOKD_BINARY; }

ReceiverOptions always_failing(int status) {
    ReceiverOptions options;
    options.fail_first = 1'000'000'000;
    options.fail_status = status;
    return options;
}

std::string logged_admin_address(DaemonProcess& daemon, std::chrono::milliseconds timeout) {
    constexpr std::string_view prefix = "admin: serving /healthz, /readyz and /metrics on ";
    if (!daemon.process().wait_for_output(prefix, timeout)) return {};
    const auto log = daemon.log();
    const auto start = log.find(prefix) + prefix.size();
    return log.substr(start, log.find('\n', start) - start);
}

AdminReply admin_get(const std::string& admin, std::string_view target, std::chrono::milliseconds timeout) {
    const auto address = parse_admin_address(admin);
    if (!address) throw std::runtime_error("not an admin address: " + admin);
    return query_admin(*address, boost::beast::http::verb::get, target, timeout);
}

DaemonProcess::DaemonProcess(const TempDir& dir, std::vector<std::string> arguments,
                             std::vector<std::string> environment, std::string name, std::filesystem::path socket)
    : DaemonProcess(dir, std::string(), std::move(arguments), std::move(environment), std::move(name),
                    std::move(socket)) {}

DaemonProcess DaemonProcess::with_config_file(const TempDir& dir, const std::filesystem::path& config_file,
                                              std::vector<std::string> arguments, std::vector<std::string> environment,
                                              std::string name) {
    return DaemonProcess(dir, config_file.string(), std::move(arguments), std::move(environment), std::move(name), {});
}

DaemonProcess::DaemonProcess(const TempDir& dir, std::string config_file, std::vector<std::string> arguments,
                             std::vector<std::string> environment, std::string name, std::filesystem::path socket)
    : socket_(socket.empty() ? dir / (name + ".sock") : std::move(socket)),
      dead_letter_(dir / (name + "-dead.ndjson")),
      spool_(dir / (name + ".spool")),
      process_([&] {
          Process::Options options;
          options.arguments = {daemon_binary(),  "--config",      config_file,          "--socket",
                               socket_.string(), "--dead-letter", dead_letter_.string()};
          // Each daemon has its own spool unless the test chooses one (or none).
          const auto chooses = [](const std::string& item) {
              return item.starts_with("--spool-dir") || item.starts_with("WEBHOOK_SPOOL_DIR=");
          };
          if (std::none_of(arguments.begin(), arguments.end(), chooses) &&
              std::none_of(environment.begin(), environment.end(), chooses)) {
              options.arguments.push_back("--spool-dir");
              options.arguments.push_back(spool_.string());
          }
          options.arguments.insert(options.arguments.end(), arguments.begin(), arguments.end());
          options.environment.insert(options.environment.end(), environment.begin(), environment.end());
          options.output_directory = dir.path();
          options.name = name;
          return options;
      }()) {}

bool DaemonProcess::wait_ready(std::chrono::milliseconds timeout) {
    return wait_until([&] { return !process_.running() || can_connect(socket_); }, timeout) && process_.running();
}

std::optional<ExitStatus> DaemonProcess::stop(int signal, std::chrono::milliseconds timeout) {
    process_.send_signal(signal);
    return process_.wait(timeout);
}

namespace {

int connect_unix(const fs::path& socket) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

}  // namespace

bool can_connect(const fs::path& socket) {
    const int fd = connect_unix(socket);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

std::string admin_text(const fs::path& admin, std::string_view target, std::chrono::milliseconds timeout) {
    const int fd = connect_unix(admin);
    if (fd < 0) throw std::runtime_error("cannot connect to " + admin.string() + ": " + std::strerror(errno));
    std::string request = "GET " + std::string(target) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    std::string_view rest = request;
    while (!rest.empty()) {
        const auto sent = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
        if (sent <= 0) break;
        rest.remove_prefix(static_cast<std::size_t>(sent));
    }
    auto text = read_until_closed(fd, timeout);
    ::close(fd);
    return text;
}

std::string read_until_closed(int fd, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string text;
    char buffer[4096];
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd poll_fd{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&poll_fd, 1, static_cast<int>(left.count())) <= 0) break;
        const auto got = ::read(fd, buffer, sizeof buffer);
        if (got <= 0) break;
        text.append(buffer, static_cast<std::size_t>(got));
    }
    return text;
}

double metric(const std::string& exposition, const std::string& name) {
    std::istringstream lines(exposition);
    for (std::string line; std::getline(lines, line);)
        if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    return -1;
}

std::vector<std::string> exchange(const fs::path& socket, std::string_view input, std::chrono::milliseconds timeout) {
    const int fd = connect_unix(socket);
    if (fd < 0) throw std::runtime_error("cannot connect to " + socket.string() + ": " + std::strerror(errno));
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string replies;
    bool write_open = true;
    char buffer[65536];
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd poll_fd{fd, static_cast<short>(POLLIN | (write_open ? POLLOUT : 0)), 0};
        if (::poll(&poll_fd, 1, static_cast<int>(left.count())) <= 0) break;
        if (write_open && (poll_fd.revents & POLLOUT)) {
            const auto written = ::send(fd, input.data(), input.size(), MSG_NOSIGNAL);
            // A daemon that refused us may have closed already: stop writing, read its reply.
            if (written < 0) input = {};
            else input.remove_prefix(static_cast<std::size_t>(written));
            if (input.empty()) {
                ::shutdown(fd, SHUT_WR);
                write_open = false;
            }
        }
        if (poll_fd.revents & (POLLIN | POLLHUP)) {
            const auto got = ::read(fd, buffer, sizeof buffer);
            if (got <= 0) break;
            replies.append(buffer, static_cast<std::size_t>(got));
        }
    }
    ::close(fd);
    std::vector<std::string> lines;
    std::istringstream stream(replies);
    for (std::string line; std::getline(stream, line);) lines.push_back(line);
    return lines;
}

void write_config(const fs::path& file, const std::string& text) {
    const auto temporary = file.string() + ".new";
    std::ofstream(temporary) << text;
    fs::rename(temporary, file);
}

std::size_t occurrences(const std::string& text, std::string_view what) {
    std::size_t count = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++count;
    return count;
}

bool reload(DaemonProcess& daemon, std::string_view outcome, std::size_t count) {
    if (!daemon.process().send_signal(SIGHUP)) return false;
    return wait_until([&] { return occurrences(daemon.log(), outcome) >= count || !daemon.process().running(); },
                      10s) &&
           daemon.process().running();
}

std::vector<boost::json::object> dead_letters(const DaemonProcess& daemon) {
    std::vector<boost::json::object> lines;
    for (const auto& line : read_lines(daemon.dead_letter())) lines.push_back(boost::json::parse(line).as_object());
    return lines;
}

bool wait_for_dead_letters(const DaemonProcess& daemon, std::size_t count, std::chrono::milliseconds timeout) {
    return wait_until([&] { return read_lines(daemon.dead_letter()).size() >= count; }, timeout);
}

std::string failure_field(const boost::json::object& line, std::string_view field) {
    const auto& value = line.at("failure").at(field);
    return value.is_string() ? std::string(value.as_string()) : boost::json::serialize(value);
}

std::vector<std::string> read_lines(const fs::path& file) {
    std::vector<std::string> lines;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) lines.push_back(line);
    return lines;
}

std::string header(const ReceivedRequest& request, const std::string& name) {
    const auto found = request.headers.find(name);
    return found == request.headers.end() ? std::string() : found->second;
}

std::string event_line(std::string_view uuid, std::string_view type, std::string_view text, std::string_view id) {
    std::string line = "{\"uuid\":\"" + std::string(uuid) + "\",\"type\":\"" + std::string(type) + "\"";
    if (!id.empty()) line += ",\"id\":\"" + std::string(id) + "\"";
    if (type == "transcription") line += ",\"payload\":{\"role\":\"user\",\"text\":\"" + std::string(text) + "\"}";
    line += "}";
    return line;
}

std::string call_uuid(unsigned number) {
    char text[40];
    std::snprintf(text, sizeof text, "00000000-0000-4000-8000-%012x", number);
    return text;
}

}  // namespace avr_webhookd::test
