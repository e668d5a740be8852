#pragma once

// Shared fixtures for integration tests: temporary folders, an in-process webhook receiver on
// its own thread, the real daemon as a child process, and a Unix-socket producer client.

#include "build_paths.hpp"
#include "process.hpp"

#include <avr_webhookd/tools/healthcheck.hpp>
#include <avr_webhookd/tools/receiver.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace avr_webhookd::test {

using namespace std::chrono_literals;

using TempDir = TempDirectory;

// avr_webhookd::Receiver on 127.0.0.1:0 (or `listen`, e.g. the port of a receiver stopped earlier),
// run by a thread of its own.
class ReceiverThread {
public:
    explicit ReceiverThread(ReceiverOptions options = {}, std::string listen = "127.0.0.1:0");
    ~ReceiverThread();
    Receiver& receiver() { return *receiver_; }
    std::string url(std::string_view path = "/webhooks/avr") const;
    std::vector<ReceivedRequest> requests() const { return receiver_->requests(); }
    // Waits until at least `count` requests have arrived.
    bool wait_for_requests(std::size_t count, std::chrono::milliseconds timeout = 10s) const;

private:
    boost::asio::io_context io_;
    std::unique_ptr<Receiver> receiver_;
    std::thread thread_;
};

// Options of a receiver that answers `status` to every request.
ReceiverOptions always_failing(int status = 503);

// The avr-webhookd binary under test, started with its socket and dead-letter file in `dir`.
class DaemonProcess {
public:
    // The socket is <dir>/<name>.sock unless `socket` is given.
    DaemonProcess(const TempDir& dir, std::vector<std::string> arguments, std::vector<std::string> environment = {},
                  std::string name = "daemon", std::filesystem::path socket = {});
    // Started with `--config config_file` instead of `--config ""` (socket and dead-letter file
    // still given on the command line), for tests that rewrite the file and reload.
    static DaemonProcess with_config_file(const TempDir& dir, const std::filesystem::path& config_file,
                                          std::vector<std::string> arguments, std::vector<std::string> environment = {},
                                          std::string name = "daemon");
    std::filesystem::path socket() const { return socket_; }
    std::filesystem::path dead_letter() const { return dead_letter_; }
    // <dir>/<name>.spool, unless the test gave --spool-dir or WEBHOOK_SPOOL_DIR itself.
    std::filesystem::path spool() const { return spool_; }
    Process& process() { return process_; }
    // Waits until the socket accepts connections.
    bool wait_ready(std::chrono::milliseconds timeout = 10s);
    std::string log() const { return process_.stderr_text(); }
    // Sends `signal` and waits for the exit status.
    std::optional<ExitStatus> stop(int signal = 15, std::chrono::milliseconds timeout = 20s);

private:
    DaemonProcess(const TempDir& dir, std::string config_file, std::vector<std::string> arguments,
                  std::vector<std::string> environment, std::string name, std::filesystem::path socket);

    std::filesystem::path socket_;
    std::filesystem::path dead_letter_;
    std::filesystem::path spool_;
    Process process_;
};

std::string daemon_binary();

// The admin address the daemon logged at start ("127.0.0.1:PORT" with the real port when it was
// asked for port 0, or the socket path); "" when it logged none within `timeout`.
std::string logged_admin_address(DaemonProcess& daemon, std::chrono::milliseconds timeout = 10s);
// GET `target` on the admin endpoint at `admin` (as logged_admin_address gives it).
AdminReply admin_get(const std::string& admin, std::string_view target, std::chrono::milliseconds timeout = 5s);

// Connects to the socket, writes `input`, half-closes, and returns the reply lines read until
// the daemon closes the connection (or the deadline passes).
std::vector<std::string> exchange(const std::filesystem::path& socket, std::string_view input,
                                  std::chrono::milliseconds timeout = 10s);
// True when something listens on the Unix socket.
bool can_connect(const std::filesystem::path& socket);

// Reads what the peer writes on `fd` until it closes the connection or `timeout` passes.
std::string read_until_closed(int fd, std::chrono::milliseconds timeout);
// GET over the admin endpoint's Unix socket: the whole answer, head and body, read until the
// daemon closes the connection (or `timeout` passes).
std::string admin_text(const std::filesystem::path& admin, std::string_view target,
                       std::chrono::milliseconds timeout = 10s);
// The value of the unlabelled sample `name` in a Prometheus text, or -1 when there is none.
double metric(const std::string& exposition, const std::string& name);

std::vector<std::string> read_lines(const std::filesystem::path& file);

// Writes a config file in one rename, so a reload never reads a half-written file.
void write_config(const std::filesystem::path& file, const std::string& text);
std::size_t occurrences(const std::string& text, std::string_view what);
// Sends SIGHUP and waits for the reload's outcome: the `count`-th occurrence of `outcome` in the log.
bool reload(DaemonProcess& daemon, std::string_view outcome, std::size_t count = 1);

// The daemon's dead-letter file, one JSON object per line.
std::vector<boost::json::object> dead_letters(const DaemonProcess& daemon);
// Waits until the dead-letter file has at least `count` lines.
bool wait_for_dead_letters(const DaemonProcess& daemon, std::size_t count,
                           std::chrono::milliseconds timeout = std::chrono::seconds(20));
// A member of a dead-letter line's "failure", as text (numbers and null serialized).
std::string failure_field(const boost::json::object& line, std::string_view field);

// The value of a received header (`name` in lower case), or "" when it is absent.
std::string header(const ReceivedRequest& request, const std::string& name);

// A transcription event line (without newline) for call `uuid`.
std::string event_line(std::string_view uuid, std::string_view type, std::string_view text = {},
                       std::string_view id = {});
// A canonical UUID derived from a number, for many calls.
std::string call_uuid(unsigned number);

}  // namespace avr_webhookd::test
