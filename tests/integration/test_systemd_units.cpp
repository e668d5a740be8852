// The systemd side, for real: the unit files through systemd-analyze, and the daemon's notify
// messages and socket activation against the built binary.
#include <avr_webhookd/config/config.hpp>

#include "support/daemon_fixture.hpp"
#include "support/notify_listener.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

using avr_webhookd::test::can_connect;
using avr_webhookd::test::DaemonProcess;
using avr_webhookd::test::event_line;
using avr_webhookd::test::exchange;
using avr_webhookd::test::NotifyListener;
using avr_webhookd::test::Process;
using avr_webhookd::test::program_available;
using avr_webhookd::test::read_file;
using avr_webhookd::test::run_command;
using avr_webhookd::test::TempDir;
using avr_webhookd::test::wait_until;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const fs::path source_dir = AVR_WEBHOOKD_SOURCE_DIR;
const std::string daemon_binary = avr_webhookd::test::daemon_binary();
// Nothing listens on the discard port: deliveries fail fast, which these tests do not look at.
const std::string unreachable_url = "http://127.0.0.1:9/events";

void write_file(const fs::path& path, const std::string& text) {
    std::ofstream file(path, std::ios::binary);
    file << text;
    REQUIRE(file.good());
}

// The units as installed, with ExecStart= pointing at the binary under test (systemd-analyze
// verify insists that the program exists).
void write_units(const fs::path& directory) {
    std::string service = read_file(source_dir / "systemd/avr-webhookd.service.in");
    const std::string placeholder = "@CMAKE_INSTALL_FULL_BINDIR@/avr-webhookd";
    auto at = service.find(placeholder);
    REQUIRE(at != std::string::npos);
    service.replace(at, placeholder.size(), daemon_binary);
    // No other @VARIABLE@ is left unconfigured.
    REQUIRE_FALSE(std::regex_search(service, std::regex("@[A-Za-z_]+@")));
    write_file(directory / "avr-webhookd.service", service);
    fs::copy_file(source_dir / "systemd/avr-webhookd.socket", directory / "avr-webhookd.socket");
}

bool skip_without(const std::string& program) {
    if (program_available(program)) return false;
    WARN("SKIPPED: " << program << " is not installed");
    return true;
}

// Lines of `text` that mention `word`.
std::string lines_mentioning(const std::string& text, const std::string& word) {
    std::istringstream lines(text);
    std::string line, found;
    while (std::getline(lines, line))
        if (line.find(word) != std::string::npos) found += line + "\n";
    return found;
}

// A directive's value in a unit file ("" when absent).
std::string directive(const std::string& unit, const std::string& name) {
    std::smatch match;
    std::regex pattern("(^|\n)" + name + "=([^\n]*)");
    return std::regex_search(unit, match, pattern) ? match[2].str() : std::string{};
}

// Reads notify datagrams until none comes for `quiet`; appends them to `seen`.
void drain(NotifyListener& listener, std::string& seen, std::chrono::milliseconds quiet = 200ms) {
    while (auto datagram = listener.receive(quiet)) seen += *datagram + "\n";
}

std::size_t count_lines(const std::string& text, const std::string& line) {
    std::istringstream lines(text);
    std::string current;
    std::size_t count = 0;
    while (std::getline(lines, current)) count += current == line;
    return count;
}

}  // namespace

// INFO() copies its message when it runs, so the condition is evaluated first and the message
// shows what the processes said by the time it failed.
#define REQUIRE_WITH_OUTPUT(condition, diagnosis)         \
    do {                                                  \
        const bool condition_held = bool(condition);      \
        INFO("condition: " #condition "\n" << diagnosis); \
        REQUIRE(condition_held);                          \
    } while (false)

TEST_CASE("systemd units: systemd-analyze verify accepts both units", "[systemd_units]") {
    if (skip_without("systemd-analyze")) return;
    TempDir directory;
    write_units(directory.path());
    auto result = run_command({"systemd-analyze", "verify", (directory / "avr-webhookd.service").string(),
                               (directory / "avr-webhookd.socket").string()},
                              directory.path());
    INFO("stdout: " << result.out << "\nstderr: " << result.err);
    CHECK(result.status.success());
    // Unknown or misspelled directives are only warnings: none may concern our units.
    CHECK(lines_mentioning(result.err, "avr-webhookd") == "");
}

TEST_CASE("systemd units: systemd-analyze security rates the service 2.0 or lower", "[systemd_units]") {
    if (skip_without("systemd-analyze")) return;
    TempDir directory;
    write_units(directory.path());
    auto result = run_command({"systemd-analyze", "security", "--no-pager", "--offline=true", "--threshold=20",
                               (directory / "avr-webhookd.service").string()},
                              directory.path());
    INFO("stdout: " << result.out << "\nstderr: " << result.err);
    std::smatch match;
    std::regex overall("Overall exposure level for avr-webhookd\\.service: ([0-9]+\\.[0-9])");
    REQUIRE(std::regex_search(result.out, match, overall));
    double exposure = std::stod(match[1].str());
    CHECK(exposure <= 2.0);
    CHECK(result.status.success());  // --threshold=20 means 2.0
}

TEST_CASE("systemd units: the socket unit matches the daemon's defaults", "[systemd_units]") {
    std::string socket = read_file(source_dir / "systemd/avr-webhookd.socket");
    std::string service = read_file(source_dir / "systemd/avr-webhookd.service.in");
    avr_webhookd::Config defaults;
    CHECK(directive(socket, "ListenStream") == defaults.socket);
    CHECK(directive(socket, "SocketMode") == "0660");
    CHECK(directive(socket, "Service") == "avr-webhookd.service");
    CHECK(directive(service, "Type") == "notify");
    CHECK(directive(service, "RuntimeDirectory") == fs::path(defaults.socket).parent_path().filename().string());
    // Dead letters live in the state directory, not in /run.
    auto dead_letter = directive(service, "Environment");
    CHECK(dead_letter ==
          "WEBHOOK_DEAD_LETTER=/var/lib/" + directive(service, "StateDirectory") + "/dead-letter.ndjson");
}

TEST_CASE("systemd units: the sysusers.d entry creates group avr", "[systemd_units]") {
    if (skip_without("systemd-sysusers")) return;
    TempDir root;
    fs::create_directories(root / "etc");
    auto result = run_command({"systemd-sysusers", "--root=" + root.path().string(),
                               (source_dir / "systemd/avr-webhookd.sysusers.conf").string()},
                              root.path());
    INFO("stdout: " << result.out << "\nstderr: " << result.err);
    CHECK(result.status.success());
    CHECK(read_file(root / "etc/group").rfind("avr:x:", 0) == 0);
}

TEST_CASE("systemd notify: the daemon reports READY once accepting, STATUS, then STOPPING", "[systemd_notify]") {
    TempDir directory;
    NotifyListener listener(directory.path());
    DaemonProcess daemon(directory, {"--url", unreachable_url}, {"NOTIFY_SOCKET=" + listener.address()});

    std::string seen;
    auto diagnosis = [&] { return "notifications:\n" + seen + daemon.process().output_for_diagnosis(); };
    auto ready = listener.receive_until("READY=1", 15s, &seen);
    REQUIRE_WITH_OUTPUT(ready, diagnosis());
    CHECK(can_connect(daemon.socket()));  // READY=1 means the socket accepts

    REQUIRE(daemon.process().send_signal(SIGTERM));
    auto stopping = listener.receive_until("STOPPING=1", 15s, &seen);
    REQUIRE_WITH_OUTPUT(stopping, diagnosis());
    auto status = daemon.process().wait(20s);
    REQUIRE_WITH_OUTPUT(status, diagnosis());
    CHECK(status->describe() == "exit code 0");
    drain(listener, seen);

    INFO(diagnosis());
    CHECK(count_lines(seen, "READY=1") == 1);
    CHECK(seen.find("STATUS=") != std::string::npos);
}

TEST_CASE("systemd notify: WATCHDOG=1 keeps coming while the event loop runs", "[systemd_notify]") {
    TempDir directory;
    NotifyListener listener(directory.path());
    DaemonProcess daemon(directory, {"--url", unreachable_url},
                         {"NOTIFY_SOCKET=" + listener.address(), "WATCHDOG_USEC=200000"});

    std::string seen;
    auto diagnosis = [&] { return "notifications:\n" + seen + daemon.process().output_for_diagnosis(); };
    REQUIRE_WITH_OUTPUT(listener.receive_until("READY=1", 15s, &seen), diagnosis());
    // Every 100 ms: five pings in a few seconds even on a loaded machine.
    for (int ping = 0; ping < 5; ++ping)
        REQUIRE_WITH_OUTPUT(listener.receive_until("WATCHDOG=1", 5s, &seen), diagnosis());
    CHECK(daemon.process().running());
}

TEST_CASE("socket activation: the daemon accepts events on the socket it inherits", "[socket_activation]") {
    if (skip_without("systemd-socket-activate")) return;
    TempDir directory;
    NotifyListener listener(directory.path());
    auto socket = directory / "events.sock";
    // systemd-socket-activate listens, and on the first connection execs the daemon in its own
    // process with LISTEN_PID/LISTEN_FDS; it passes only the -E variables along.
    Process activator(
        {.arguments = {"systemd-socket-activate", "-l", socket.string(), "-E", "NOTIFY_SOCKET=" + listener.address(),
                       "-E", "WEBHOOK_CONFIG=", daemon_binary, "--url", unreachable_url, "--socket", socket.string(),
                       "--spool-dir", (directory / "spool").string(), "--ack", "all"},
         .output_directory = directory.path(),
         .name = "activated"});
    REQUIRE_WITH_OUTPUT(activator.wait_for_output("Listening on", 15s), activator.output_for_diagnosis());

    auto replies = exchange(socket, event_line("550e8400-e29b-41d4-a716-446655440000", "call_started") + "\n", 20s);
    REQUIRE_WITH_OUTPUT(replies.size() == 1, activator.output_for_diagnosis());
    INFO("reply: " << replies.front());
    auto ack = boost::json::parse(replies.front()).as_object();
    CHECK(ack.at("ok") == true);
    CHECK(ack.at("line") == 1);
    CHECK_FALSE(ack.at("id").as_string().empty());
    CHECK(listener.receive_until("READY=1", 10s));

    REQUIRE(activator.send_signal(SIGTERM));
    auto status = activator.wait(20s);
    REQUIRE_WITH_OUTPUT(status, activator.output_for_diagnosis());
    CHECK(status->describe() == "exit code 0");
    // The socket belongs to whoever activated the daemon: it must outlive the daemon.
    CHECK(fs::exists(socket));
}

TEST_CASE("socket activation: more than one inherited socket is refused", "[socket_activation]") {
    if (skip_without("systemd-socket-activate")) return;
    TempDir directory;
    auto socket = directory / "events.sock";
    Process activator(
        {.arguments = {"systemd-socket-activate", "-l", socket.string(), "-l", (directory / "other.sock").string(),
                       "-E", "WEBHOOK_CONFIG=", daemon_binary, "--url", unreachable_url, "--socket", socket.string(),
                       "--spool-dir", (directory / "spool").string()},
         .output_directory = directory.path(),
         .name = "activated"});
    REQUIRE_WITH_OUTPUT(activator.wait_for_output("Listening on", 15s), activator.output_for_diagnosis());
    REQUIRE(wait_until([&] { return fs::exists(socket); }, 5s));
    exchange(socket, "", 5s);  // the first connection starts the daemon
    auto status = activator.wait(20s);
    INFO(activator.output_for_diagnosis());
    REQUIRE(status);
    CHECK_FALSE(status->success());
    CHECK(activator.stderr_text().find("expected exactly one socket") != std::string::npos);
}
