#include <avr_webhookd/ops/admin_server.hpp>

#include <catch2/catch.hpp>

using namespace avr_webhookd;
namespace http = boost::beast::http;

TEST_CASE("admin: addresses are HOST:PORT, [IPv6]:PORT or an absolute socket path", "[admin]") {
    auto address = parse_admin_address("127.0.0.1:9464");
    REQUIRE(address);
    CHECK(address->host == "127.0.0.1");
    CHECK(address->port == "9464");
    CHECK_FALSE(address->is_unix());
    CHECK(to_string(*address) == "127.0.0.1:9464");

    address = parse_admin_address("[::1]:0");
    REQUIRE(address);
    CHECK(address->host == "::1");
    CHECK(address->port == "0");
    CHECK(to_string(*address) == "[::1]:0");

    address = parse_admin_address("localhost:65535");
    REQUIRE(address);
    CHECK(address->host == "localhost");

    address = parse_admin_address("/run/avr-webhookd/admin.sock");
    REQUIRE(address);
    CHECK(address->is_unix());
    CHECK(address->unix_path == "/run/avr-webhookd/admin.sock");
    CHECK(to_string(*address) == "/run/avr-webhookd/admin.sock");

    for (const char* bad :
         {"", "127.0.0.1", "127.0.0.1:", ":9464", "127.0.0.1:65536", "127.0.0.1:+80", "127.0.0.1:80x", "[::1]",
          "[::1:80", "::1:80", "[::1]x80", "host name:80", "relative/path.sock", "/run/dir/"}) {
        std::string error;
        CAPTURE(bad);
        CHECK_FALSE(parse_admin_address(bad, &error));
        CHECK_FALSE(error.empty());
    }
    CHECK_FALSE(parse_admin_address("/" + std::string(107, 'a')));
    CHECK(parse_admin_address("/" + std::string(106, 'a')));
}

namespace {

struct Fakes {
    AdminStatus now{true, std::nullopt};
    int status_calls = 0;
    int metrics_calls = 0;
    std::function<AdminStatus()> status = [this] {
        ++status_calls;
        return now;
    };
    std::function<std::string()> metrics = [this] {
        ++metrics_calls;
        return std::string{"avr_webhookd_up 1\n"};
    };

    AdminResponse route(http::verb method, std::string_view target) {
        return route_admin_request(method, target, status, metrics);
    }
};

}  // namespace

TEST_CASE("admin: /healthz is 200 when accepting and healthy, else 503 with the reason", "[admin]") {
    Fakes fakes;
    auto response = fakes.route(http::verb::get, "/healthz");
    CHECK(response.status == 200);
    CHECK(response.body == "ok\n");
    CHECK(fakes.status_calls == 1);
    CHECK(fakes.metrics_calls == 0);

    fakes.now.unhealthy = "delivery stuck: receiver failing for 5m";
    response = fakes.route(http::verb::get, "/healthz");
    CHECK(response.status == 503);
    CHECK(response.body == "delivery stuck: receiver failing for 5m\n");

    fakes.now = AdminStatus{false, std::nullopt};
    response = fakes.route(http::verb::get, "/healthz?verbose=1");
    CHECK(response.status == 503);
    CHECK(response.body == "not accepting events\n");
}

TEST_CASE("admin: /readyz follows accepting only", "[admin]") {
    Fakes fakes;
    fakes.now.unhealthy = "stuck";
    CHECK(fakes.route(http::verb::get, "/readyz").status == 200);
    fakes.now.accepting = false;
    const auto response = fakes.route(http::verb::head, "/readyz");
    CHECK(response.status == 503);
    CHECK(response.body == "not accepting events\n");
}

TEST_CASE("admin: /metrics is the Prometheus text and asks for nothing else", "[admin]") {
    Fakes fakes;
    const auto response = fakes.route(http::verb::get, "/metrics");
    CHECK(response.status == 200);
    CHECK(response.content_type == "text/plain; version=0.0.4; charset=utf-8");
    CHECK(response.body == "avr_webhookd_up 1\n");
    CHECK(fakes.metrics_calls == 1);
    CHECK(fakes.status_calls == 0);
    CHECK(fakes.route(http::verb::head, "/metrics").status == 200);
}

TEST_CASE("admin: other paths are 404, other methods 405 with Allow", "[admin]") {
    Fakes fakes;
    for (const char* target : {"/", "/healthz/", "/HEALTHZ", "/metricsx", "http://host/healthz", "*"}) {
        CAPTURE(target);
        CHECK(fakes.route(http::verb::get, target).status == 404);
    }
    CHECK(fakes.route(http::verb::post, "/nothing").status == 404);
    for (const auto method : {http::verb::post, http::verb::put, http::verb::delete_, http::verb::options}) {
        const auto response = fakes.route(method, "/metrics");
        CHECK(response.status == 405);
        CHECK(response.allow == "GET, HEAD");
    }
    CHECK(fakes.status_calls == 0);
    CHECK(fakes.metrics_calls == 0);
}
