// The real daemon in operation: reload on SIGHUP (applied and refused), /metrics matching what a
// test did, /healthz through a receiver outage, `healthcheck`, and the log formats.
#include "../support/daemon_fixture.hpp"
#include "../support/prometheus_text.hpp"

#include <avr_webhookd/ops/admin_server.hpp>
#include <avr_webhookd/tools/healthcheck.hpp>
#include <avr_webhookd/common/url.hpp>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <sstream>

using namespace avr_webhookd;
using namespace avr_webhookd::test;
namespace http = boost::beast::http;

namespace {

constexpr std::string_view call = "550e8400-e29b-41d4-a716-446655440000";
AdminReply get(const std::string& admin, std::string_view target) { return admin_get(admin, target); }

std::map<std::string, MetricFamily> fetch_metrics(const std::string& admin) {
    const auto reply = get(admin, "/metrics");
    REQUIRE(reply.reached);
    REQUIRE(reply.status == 200);
    CHECK(reply.content_type == prometheus_content_type);
    return parse_exposition(reply.body);
}

// A counter or gauge sample; 0 when the labelled sample is absent (not yet incremented). Delivery
// families are per destination: the default one's unless `labels` name another.
double metric(const std::map<std::string, MetricFamily>& families, const std::string& name,
              std::map<std::string, std::string> labels = {}) {
    const auto family = families.find("avr_webhookd_" + name);
    REQUIRE(family != families.end());
    const auto& samples = family->second.samples;
    if (!samples.empty() && samples.front().labels.contains("destination"))
        labels.try_emplace("destination", "default");
    return find_value(family->second, labels).value_or(0);
}

double labelled_sum(const std::map<std::string, MetricFamily>& families, const std::string& name) {
    double sum = 0;
    for (const auto& sample : families.at("avr_webhookd_" + name).samples) sum += sample.value;
    return sum;
}

CommandResult healthcheck(const TempDir& dir, const std::string& admin) {
    return run_command({daemon_binary(), "healthcheck", "--admin", admin}, dir.path(), 30s);
}

std::vector<std::string> log_lines(const DaemonProcess& daemon) {
    std::vector<std::string> lines;
    std::istringstream stream(daemon.log());
    for (std::string line; std::getline(stream, line);) lines.push_back(line);
    return lines;
}

// A TCP port on 127.0.0.1 that refuses connections (bound, never listening) until released,
// so a receiver can come back on the very port the daemon was told to use.
class RefusingPort {
public:
    RefusingPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        REQUIRE(fd_ >= 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        socklen_t length = sizeof address;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
        port_ = ntohs(address.sin_port);
    }
    ~RefusingPort() { release(); }
    RefusingPort(const RefusingPort&) = delete;
    RefusingPort& operator=(const RefusingPort&) = delete;

    std::string listen() const { return "127.0.0.1:" + std::to_string(port_); }
    std::string url() const { return "http://" + listen() + "/webhooks/avr"; }
    void release() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_;
    unsigned short port_ = 0;
};

}  // namespace

TEST_CASE("operations: SIGHUP applies a new url and secret to the next delivery", "[integration][operations][reload]") {
    TempDir dir;
    ReceiverThread first;
    ReceiverOptions second_options;
    second_options.secret = "new-secret";  // the receiver answers 401 to anything else
    ReceiverThread second(second_options);
    const auto config = dir / "avr-webhookd.conf";
    write_config(config, "url = " + first.url() + "\nsecret = old-secret\n");
    auto daemon = DaemonProcess::with_config_file(dir, config, {});
    REQUIRE(daemon.wait_ready());

    exchange(daemon.socket(), event_line(call, "call_started") + "\n");
    REQUIRE(first.wait_for_requests(1));
    CHECK(header(first.requests().at(0), "x-avr-webhook-secret") == "old-secret");

    write_config(config, "url = " + second.url() + "\nsecret = new-secret\n");
    REQUIRE(reload(daemon, "reload: configuration applied"));
    CHECK_THAT(daemon.log(), Catch::Contains("reload: configuration applied from " + config.string() +
                                             "; delivering to " + redact_url(second.url())));

    exchange(daemon.socket(), event_line(call, "call_ended") + "\n");
    REQUIRE(second.wait_for_requests(1));
    const auto request = second.requests().at(0);
    CHECK(boost::json::parse(request.body).at("type").as_string() == "call_ended");
    CHECK(header(request, "x-avr-webhook-secret") == "new-secret");
    CHECK(header(request, "x-avr-webhook-sequence") == "2");
    CHECK(request.status_sent == 200);
    CHECK(first.requests().size() == 1);

    REQUIRE(daemon.stop());
    const auto log = daemon.log();
    CHECK(log.find("old-secret") == std::string::npos);
    CHECK(log.find("new-secret") == std::string::npos);
}

TEST_CASE("operations: events queued across a reload are neither lost nor reordered",
          "[integration][operations][reload]") {
    TempDir dir;
    ReceiverOptions slow;
    slow.delay = 500ms;  // keeps most of the call's events queued when SIGHUP arrives
    ReceiverThread first(slow);
    ReceiverThread second;
    const auto config = dir / "avr-webhookd.conf";
    write_config(config, "url = " + first.url() + "\n");
    auto daemon = DaemonProcess::with_config_file(dir, config, {"--retry", "0"});
    REQUIRE(daemon.wait_ready());

    constexpr unsigned events = 8;
    std::string input;
    for (unsigned i = 0; i < events; ++i) input += event_line(call, "transcription", std::to_string(i)) + "\n";
    CHECK(exchange(daemon.socket(), input).empty());
    REQUIRE(first.wait_for_requests(1));

    write_config(config, "url = " + second.url() + "\n");
    REQUIRE(reload(daemon, "reload: configuration applied"));
    REQUIRE(wait_until([&] { return first.requests().size() + second.requests().size() >= events; }, 20s));

    auto requests = first.requests();
    const auto at_second = second.requests();
    CHECK(!at_second.empty());
    requests.insert(requests.end(), at_second.begin(), at_second.end());
    REQUIRE(requests.size() == events);
    for (unsigned i = 0; i < events; ++i) {
        INFO("request " << i);
        CHECK(boost::json::parse(requests[i].body).at("payload").at("text").as_string() == std::to_string(i));
        CHECK(header(requests[i], "x-avr-webhook-sequence") == std::to_string(i + 1));
        CHECK(header(requests[i], "x-avr-webhook-attempt") == "1");
    }
    REQUIRE(daemon.stop());
    CHECK(read_lines(daemon.dead_letter()).empty());
}

TEST_CASE("operations: an invalid configuration is refused on SIGHUP and the running one stays",
          "[integration][operations][reload]") {
    TempDir dir;
    ReceiverThread first, second;
    const auto config = dir / "avr-webhookd.conf";
    write_config(config, "url = " + first.url() + "\n");
    auto daemon = DaemonProcess::with_config_file(dir, config, {});
    REQUIRE(daemon.wait_ready());
    const auto socket_mode = [&] { return std::filesystem::status(daemon.socket()).permissions(); };
    const auto mode_at_start = socket_mode();

    write_config(config, "url = " + second.url() + "\ntimeout = soon\n");
    REQUIRE(reload(daemon, "reload refused"));
    const auto refusal = [&] {
        for (const auto& line : log_lines(daemon))
            if (line.find("reload refused") != std::string::npos) return line;
        return std::string();
    }();
    CHECK_THAT(refusal, Catch::Contains("timeout") && Catch::Contains("soon") &&
                            Catch::Contains("keeping the running configuration"));
    exchange(daemon.socket(), event_line(call, "call_started") + "\n");
    REQUIRE(first.wait_for_requests(1));
    CHECK(second.requests().empty());

    SECTION("a restart-only setting is reported and left as it runs") {
        write_config(config, "url = " + first.url() + "\nsocket_mode = 0600\n");
        REQUIRE(reload(daemon, "reload: configuration applied"));
        CHECK_THAT(daemon.log(),
                   Catch::Contains("reload: setting socket_mode changed; it takes effect after a restart"));
        CHECK(socket_mode() == mode_at_start);
        exchange(daemon.socket(), event_line(call, "call_ended") + "\n");
        REQUIRE(first.wait_for_requests(2));

        // Compared with what runs, so the warning stands until the restart.
        REQUIRE(reload(daemon, "reload: configuration applied", 2));
        CHECK(occurrences(daemon.log(), "setting socket_mode changed") == 2);
        CHECK(socket_mode() == mode_at_start);
    }
    CHECK(daemon.process().running());
    REQUIRE(daemon.stop());
}

TEST_CASE("operations: /metrics counts what the daemon received, rejected, retried, delivered and dead-lettered",
          "[integration][operations][metrics]") {
    TempDir dir;
    ReceiverOptions options;
    options.fail_first = 2;  // the first event is retried twice
    options.fail_status = 503;
    options.status_for_type["call_ended"] = 400;  // permanent: dead-lettered at once
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--retry", "3", "--retry-base", "20ms", "--retry-max-delay",
                               "100ms", "--admin", "127.0.0.1:0"});
    REQUIRE(daemon.wait_ready());
    const auto admin = logged_admin_address(daemon);
    REQUIRE_THAT(admin, Catch::StartsWith("127.0.0.1:") && !Catch::EndsWith(":0"));

    const auto idle = fetch_metrics(admin);
    CHECK(metric(idle, "events_received_total") == 0);
    CHECK(idle.at("avr_webhookd_events_rejected_total").samples.empty());

    constexpr unsigned delivered = 5;
    std::string input;
    for (unsigned i = 0; i < delivered; ++i) input += event_line(call, "transcription", std::to_string(i)) + "\n";
    input += "not json\n{\"uuid\":\n";
    input += event_line(call, "call_ended") + "\n";
    CHECK(exchange(daemon.socket(), input).size() == 2);  // one reply per rejected line

    std::map<std::string, MetricFamily> families;
    REQUIRE(wait_until(
        [&] {
            families = fetch_metrics(admin);
            return metric(families, "events_delivered_total") == delivered &&
                   metric(families, "events_dead_lettered_total") == 1;
        },
        20s));
    CHECK(metric(families, "events_received_total") == delivered + 3);
    CHECK(metric(families, "events_rejected_total", {{"reason", "invalid_json"}}) == 2);
    CHECK(labelled_sum(families, "events_rejected_total") == 2);
    CHECK(metric(families, "events_filtered_total") == 0);
    CHECK(metric(families, "events_received_total") ==
          labelled_sum(families, "events_rejected_total") + metric(families, "events_filtered_total") +
              metric(families, "events_delivered_total") + metric(families, "events_dead_lettered_total"));
    CHECK(metric(families, "delivery_retries_total") == 2);
    CHECK(metric(families, "delivery_attempts_total") == delivered + 2 + 1);
    CHECK(labelled_sum(families, "delivery_attempts_failed_total") == 3);
    CHECK(metric(families, "events_in_flight") == 0);
    CHECK(metric(families, "events_queued") == 0);
    CHECK(metric(families, "oldest_undelivered_event_age_seconds") == 0);
    const auto& latency = families.at("avr_webhookd_delivery_latency_seconds");
    CHECK(find_value(latency, {{"destination", "default"}}, "avr_webhookd_delivery_latency_seconds_count") ==
          delivered);
    CHECK(find_value(latency, {{"destination", "default"}, {"le", "+Inf"}},
                     "avr_webhookd_delivery_latency_seconds_bucket") == delivered);
    CHECK(find_value(latency, {{"destination", "default"}}, "avr_webhookd_delivery_latency_seconds_sum").value_or(0) >
          0);
    CHECK(read_lines(daemon.dead_letter()).size() == 1);

    if (program_available("promtool")) {
        const auto text_file = dir / "metrics.txt";
        std::ofstream(text_file) << get(admin, "/metrics").body;
        const auto check =
            run_command({"sh", "-c", "promtool check metrics < '" + text_file.string() + "'"}, dir.path());
        INFO(check.out << check.err);
        CHECK(check.status.success());
    } else {
        WARN("promtool not installed: `promtool check metrics` skipped");
    }
    REQUIRE(daemon.stop());
}

TEST_CASE("operations: /healthz turns 503 while the receiver is down past the retry budget, and back to 200",
          "[integration][operations][health]") {
    TempDir dir;
    RefusingPort port;
    DaemonProcess daemon(dir, {"--url", port.url(), "--retry", "0", "--admin", "127.0.0.1:0"});
    REQUIRE(daemon.wait_ready());
    const auto admin = logged_admin_address(daemon);
    REQUIRE(!admin.empty());

    auto healthz = get(admin, "/healthz");
    REQUIRE(healthz.reached);
    CHECK(healthz.status == 200);
    CHECK(get(admin, "/readyz").status == 200);
    const auto healthy = healthcheck(dir, admin);
    CHECK(healthy.status.success());
    CHECK(healthy.out == "healthy\n");

    exchange(daemon.socket(), event_line(call, "call_started", {}, "lost-1") + "\n");
    REQUIRE(wait_until([&] { return read_lines(daemon.dead_letter()).size() == 1; }, 20s));
    healthz = get(admin, "/healthz");
    CHECK(healthz.status == 503);
    CHECK_THAT(healthz.body, Catch::Contains("given up") && Catch::Contains("ECONNREFUSED"));
    CHECK(get(admin, "/readyz").status == 200);  // still accepting events
    const auto unhealthy = healthcheck(dir, admin);
    CHECK(unhealthy.status.exited());
    CHECK(unhealthy.status.code == 1);
    CHECK_THAT(unhealthy.out, Catch::StartsWith("unhealthy: ") && Catch::Contains("given up"));

    port.release();
    ReceiverThread receiver({}, port.listen());
    exchange(daemon.socket(), event_line(call, "call_ended") + "\n");
    REQUIRE(receiver.wait_for_requests(1));
    REQUIRE(wait_until([&] { return get(admin, "/healthz").status == 200; }, 10s));
    CHECK(healthcheck(dir, admin).status.success());
    REQUIRE(daemon.stop());
}

TEST_CASE("operations: the admin endpoint on a Unix socket", "[integration][operations][health]") {
    TempDir dir;
    ReceiverThread receiver;
    const auto admin_socket = (dir / "admin.sock").string();
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--admin", admin_socket});
    REQUIRE(daemon.wait_ready());
    REQUIRE(logged_admin_address(daemon) == admin_socket);

    CHECK(get(admin_socket, "/healthz").status == 200);
    CHECK(get(admin_socket, "/readyz").status == 200);
    exchange(daemon.socket(), event_line(call, "call_started") + "\n");
    REQUIRE(receiver.wait_for_requests(1));
    REQUIRE(wait_until([&] { return metric(fetch_metrics(admin_socket), "events_delivered_total") == 1; }, 10s));
    CHECK(healthcheck(dir, admin_socket).status.success());

    REQUIRE(daemon.stop());
    CHECK_FALSE(std::filesystem::exists(admin_socket));
    const auto after = healthcheck(dir, admin_socket);
    CHECK(after.status.code == 1);
}

TEST_CASE("operations: log_format = json writes one JSON object per line, failure blocks included",
          "[integration][operations][logging]") {
    TempDir dir;
    ReceiverOptions options;
    options.status_for_type["call_ended"] = 400;
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--log-format", "json", "--secret", "json-log-secret"});
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(),
             event_line(call, "call_started") + "\n" + "not json\n" + event_line(call, "call_ended") + "\n");
    REQUIRE(wait_until([&] { return read_lines(daemon.dead_letter()).size() == 1; }, 10s));
    REQUIRE(reload(daemon, "reload: configuration applied"));
    REQUIRE(daemon.stop());

    const auto lines = log_lines(daemon);
    REQUIRE(lines.size() >= 4);
    bool failure_block_seen = false;
    for (const auto& line : lines) {
        INFO(line);
        boost::system::error_code error;
        const auto value = boost::json::parse(line, error);
        REQUIRE_FALSE(error);
        REQUIRE(value.is_object());
        const auto& record = value.get_object();
        CHECK(record.size() == 3);
        REQUIRE(record.contains("time"));
        CHECK_THAT(std::string(record.at("time").as_string()),
                   Catch::Matches(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"));
        REQUIRE(record.contains("level"));
        CHECK_THAT(std::string(record.at("level").as_string()),
                   Catch::Equals("debug") || Catch::Equals("info") || Catch::Equals("warn") || Catch::Equals("error"));
        REQUIRE(record.contains("msg"));
        const std::string message(record.at("msg").as_string());
        if (message.starts_with("[WEBHOOK][CALL_ENDED]")) {
            failure_block_seen = true;
            CHECK(record.at("level").as_string() == "error");
            CHECK_THAT(message, Catch::Contains("\nStatus: 400"));
        }
    }
    CHECK(failure_block_seen);
    CHECK(daemon.log().find("json-log-secret") == std::string::npos);
}

TEST_CASE("operations: under journald every log line carries its priority prefix",
          "[integration][operations][logging]") {
    TempDir dir;
    ReceiverOptions options;
    options.status_for_type["call_ended"] = 400;
    ReceiverThread receiver(options);
    // Process truncates the existing file, so the daemon's stderr keeps this inode.
    const auto stderr_file = dir / "daemon.stderr";
    std::ofstream{stderr_file};
    struct stat status {};
    REQUIRE(::stat(stderr_file.c_str(), &status) == 0);
    const auto journal_stream = std::to_string(status.st_dev) + ":" + std::to_string(status.st_ino);
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--secret", "journal-secret"},
                         {"JOURNAL_STREAM=" + journal_stream});
    REQUIRE(daemon.wait_ready());
    exchange(daemon.socket(), event_line(call, "call_started") + "\n" + event_line(call, "call_ended") + "\n");
    REQUIRE(wait_until([&] { return read_lines(daemon.dead_letter()).size() == 1; }, 10s));
    REQUIRE(daemon.stop());

    const auto lines = log_lines(daemon);
    REQUIRE(lines.size() >= 4);
    bool in_failure_block = false, failure_block_seen = false;
    for (const auto& line : lines) {
        INFO(line);
        CHECK_THAT(line, Catch::Matches("<[3467]>.+"));
        if (line.find("[WEBHOOK][CALL_ENDED]") != std::string::npos) in_failure_block = failure_block_seen = true;
        if (in_failure_block) CHECK_THAT(line, Catch::StartsWith("<3>"));
        if (line.starts_with("<3>Status:")) in_failure_block = false;
    }
    CHECK(failure_block_seen);
    CHECK(daemon.log().find("journal-secret") == std::string::npos);
}
