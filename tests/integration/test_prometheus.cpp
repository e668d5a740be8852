// The monitoring files against a real Prometheus (Debian's `prometheus` and `promtool`): the
// compose profile's scrape and rule files pass `promtool check`, a scrape of the daemon passes
// `promtool check metrics`, and every PromQL expression of the Grafana dashboard returns data
// from a Prometheus scraping a daemon under load (one destination healthy, one failing).

#include "support/daemon_fixture.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <cctype>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

using namespace avr_webhookd;
using namespace avr_webhookd::test;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

const fs::path source_dir = AVR_WEBHOOKD_SOURCE_DIR;

// Every "expr" of the dashboard (panels, rows and their panels, whatever the nesting).
void collect_expressions(const json::value& value, std::vector<std::string>& out) {
    if (const auto* object = value.if_object()) {
        for (const auto& [key, member] : *object) {
            if (key == "expr" && member.is_string()) out.emplace_back(member.as_string());
            else collect_expressions(member, out);
        }
    } else if (const auto* array = value.if_array()) {
        for (const auto& item : *array) collect_expressions(item, out);
    }
}

// The dashboard's variables as Grafana would fill them in for "All" over a short range.
std::string with_variables(const std::string& expression) {
    static const std::map<std::string, std::string> values{
        {"__rate_interval", "15s"}, {"__interval", "5s"}, {"__range", "1m"}, {"instance", ".*"}, {"destination", ".*"}};
    static const std::regex variable(R"(\$\{?(\w+)\}?)");
    std::string out;
    auto rest = expression.cbegin();
    for (std::sregex_iterator it(expression.begin(), expression.end(), variable), end; it != end; ++it) {
        const auto found = values.find((*it)[1].str());
        if (found == values.end()) throw std::runtime_error("the test does not know the variable " + it->str());
        out.append(rest, (*it)[0].first).append(found->second);
        rest = (*it)[0].second;
    }
    return out.append(rest, expression.cend());
}

std::string url_encoded(std::string_view text) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out.push_back(static_cast<char>(c));
        else out.append({'%', hex[c >> 4], hex[c & 15]});
    }
    return out;
}

// Prometheus on a loopback port it picks itself, scraping `target` every second, storing in `dir`.
struct PrometheusServer {
    PrometheusServer(const TempDir& dir, const std::string& target)
        : config(dir / "prometheus.yml"), process([&] {
              std::ofstream(config) << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                                       "scrape_configs:\n  - job_name: avr-webhookd\n    static_configs:\n"
                                       "      - targets: [\""
                                    << target << "\"]\n";
              return Process::Options{.arguments = {"prometheus", "--config.file=" + config.string(),
                                                    "--storage.tsdb.path=" + (dir / "prometheus-data").string(),
                                                    "--web.listen-address=127.0.0.1:0"},
                                      .output_directory = dir.path(),
                                      .name = "prometheus"};
          }()) {}

    // The address it listens on, from its log ("Listening on" address=127.0.0.1:PORT).
    std::string address() {
        static const std::regex listening(R"(msg="Listening on" address=(127\.0\.0\.1:[0-9]+))");
        std::string found;
        wait_until(
            [&] {
                std::smatch match;
                const auto log = process.stderr_text();
                if (std::regex_search(log, match, listening)) found = match[1].str();
                return !found.empty() || !process.running();
            },
            60s, 100ms);
        return found;
    }

    // The instant query's result vector; empty when Prometheus has nothing (yet).
    json::array query(const std::string& listen, const std::string& expression) {
        const auto reply = admin_get(listen, "/api/v1/query?query=" + url_encoded(expression), 10s);
        if (reply.status != 200) return {};
        const auto document = json::parse(reply.body);
        if (document.at("status") != "success") return {};
        return document.at("data").at("result").as_array();
    }

    fs::path config;
    Process process;
};

bool has_finite_value(const json::array& result) {
    for (const auto& series : result) {
        const auto& value = series.at("value").as_array().at(1).as_string();
        if (value != "NaN" && value != "+Inf" && value != "-Inf") return true;
    }
    return false;
}

}  // namespace

TEST_CASE("monitoring: promtool accepts the compose profile's Prometheus configuration and rules",
          "[integration][prometheus]") {
    if (!program_available("promtool")) FAIL("promtool is not installed: `make test` installs prometheus");
    TempDir dir;
    auto result = run_command(
        {"promtool", "check", "config", (source_dir / "docker/prometheus/prometheus.yml").string()}, dir.path(), 60s);
    INFO(result.out << result.err);
    CHECK(result.status.success());
    CHECK_THAT(result.out, Catch::Contains("SUCCESS: 1 rule files found") && Catch::Contains(" rules found"));
    result = run_command({"promtool", "check", "rules", (source_dir / "docker/prometheus/alerts.yml").string()},
                         dir.path(), 60s);
    CHECK(result.status.success());
}

TEST_CASE("monitoring: every PromQL expression of the dashboard returns data from a daemon under load",
          "[integration][prometheus]") {
    if (!program_available("prometheus")) FAIL("prometheus is not installed: `make test` installs it");
    std::ifstream dashboard_file(source_dir / "docker/grafana/avr-webhookd.json");
    std::stringstream dashboard_text;
    dashboard_text << dashboard_file.rdbuf();
    std::vector<std::string> expressions;
    collect_expressions(json::parse(dashboard_text.str()), expressions);
    REQUIRE(expressions.size() >= 15);

    TempDir dir;
    ReceiverThread healthy;
    ReceiverThread failing(always_failing());
    DaemonProcess daemon(
        dir, {"--url", healthy.url(), "--destination-crm-url", failing.url(), "--destination-crm-retry", "1",
              "--destination-crm-retry-base", "200ms", "--admin", "127.0.0.1:0"});
    REQUIRE(daemon.wait_ready());
    const auto admin = logged_admin_address(daemon);
    REQUIRE_FALSE(admin.empty());

    // Load: a few events a second over several calls, and now and then a line the intake rejects.
    std::atomic<bool> stop{false};
    std::thread producer([&] {
        for (unsigned n = 0; !stop; ++n) {
            std::string lines = event_line(call_uuid(n % 7), "transcription", "load", "p" + std::to_string(n)) + "\n";
            if (n % 10 == 0) lines += "{not json\n";
            try {
                exchange(daemon.socket(), lines);
            } catch (const std::exception&) {  // the daemon is gone (a failed REQUIRE stopped the test): stop
                return;
            }
            std::this_thread::sleep_for(50ms);  // pacing, not a wait for a condition
        }
    });
    struct Stop {
        std::atomic<bool>& stop;
        std::thread& producer;
        ~Stop() {
            stop = true;
            if (producer.joinable()) producer.join();
        }
    } stop_producer{stop, producer};

    // promtool's own lint of what the daemon exposes.
    REQUIRE(healthy.wait_for_requests(5));
    std::ofstream(dir / "scrape.txt") << admin_get(admin, "/metrics").body;
    const auto lint =
        run_command({"sh", "-c", "promtool check metrics < " + (dir / "scrape.txt").string()}, dir.path(), 60s);
    INFO(lint.out << lint.err);
    CHECK(lint.status.success());

    PrometheusServer prometheus(dir, admin);
    const auto listen = prometheus.address();
    INFO(prometheus.process.output_for_diagnosis());
    REQUIRE_FALSE(listen.empty());
    std::set<std::string> waiting;
    for (const auto& expression : expressions) waiting.insert(with_variables(expression));
    // Each expression until it returns data: rates need two scrapes in their window, the
    // failure and latency series need failures and deliveries in it.
    wait_until(
        [&] {
            for (auto it = waiting.begin(); it != waiting.end();)
                it = has_finite_value(prometheus.query(listen, *it)) ? waiting.erase(it) : std::next(it);
            return waiting.empty();
        },
        90s, 1s);
    for (const auto& expression : waiting) FAIL_CHECK("no data for: " << expression);
    stop = true;
    producer.join();
    REQUIRE(daemon.stop());
}
