// The status routes of the admin endpoint: the page, its JSON and their security headers.
#include <avr_webhookd/ops/status_page.hpp>

#include <catch2/catch.hpp>

#include <openssl/evp.h>

#include <array>

using namespace avr_webhookd;
namespace http = boost::beast::http;

namespace {

std::string header(const AdminResponse& response, std::string_view name) {
    for (const auto& [key, value] : response.headers)
        if (key == name) return value;
    return {};
}

std::string between(std::string_view text, std::string_view open, std::string_view close) {
    const auto begin = text.find(open) + open.size();
    return std::string(text.substr(begin, text.find(close, begin) - begin));
}

// The CSP source of `text`, computed here on its own.
std::string sha256_source(const std::string& text) {
    std::array<unsigned char, 32> digest{};
    unsigned int size = 0;
    REQUIRE(EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr) == 1);
    std::array<unsigned char, 64> base64{};
    const int length = EVP_EncodeBlock(base64.data(), digest.data(), static_cast<int>(size));
    return "'sha256-" + std::string(reinterpret_cast<const char*>(base64.data()), static_cast<std::size_t>(length)) +
           "'";
}

struct Fakes {
    int json_calls = 0;
    std::function<std::string()> status_json = [this] {
        ++json_calls;
        return std::string{R"({"version":"x"})"};
    };
    std::function<AdminStatus()> status = [] { return AdminStatus{true, std::nullopt}; };
    std::function<std::string()> metrics = [] { return std::string{}; };
    AdminResponse route(http::verb method, std::string_view target) {
        return route_admin_request(method, target, status, metrics, status_json);
    }
};

}  // namespace

TEST_CASE("status page: / is the embedded page with a CSP that lets only its own script and style run",
          "[admin][status_page]") {
    Fakes fakes;
    const auto response = fakes.route(http::verb::get, "/");
    CHECK(response.status == 200);
    CHECK(response.content_type == "text/html; charset=utf-8");
    CHECK(response.body == status_page_html());
    CHECK(response.body.starts_with("<!doctype html>"));
    CHECK(fakes.json_calls == 0);

    const auto csp = header(response, "Content-Security-Policy");
    CHECK(csp == status_page_csp());
    CHECK_THAT(csp, Catch::StartsWith("default-src 'none'; "));
    CHECK_THAT(csp,
               Catch::Contains("script-src " + sha256_source(between(response.body, "<script>", "</script>")) + ";"));
    CHECK_THAT(csp, Catch::Contains("style-src " + sha256_source(between(response.body, "<style>", "</style>")) + ";"));
    CHECK_THAT(csp, Catch::Contains("connect-src 'self'"));
    CHECK_THAT(csp, Catch::Contains("frame-ancestors 'none'"));
    CHECK_FALSE(Catch::contains(csp, "unsafe"));
    CHECK(header(response, "X-Content-Type-Options") == "nosniff");
    CHECK(header(response, "X-Frame-Options") == "DENY");
    CHECK(header(response, "Referrer-Policy") == "no-referrer");
    // Self-contained: nothing is loaded from elsewhere (an air-gapped host has no CDN).
    for (const char* outside : {"https://", "<link", "src=", "@import", "url(", "//cdn"}) {
        CAPTURE(outside);
        CHECK(response.body.find(outside) == std::string::npos);
    }
    CHECK(response.body.find("innerHTML") == std::string::npos);
    CHECK(fakes.route(http::verb::get, "/?refresh=1").status == 200);
}

TEST_CASE("status page: /status is the JSON, other methods 405, and without it both are 404", "[admin][status_page]") {
    Fakes fakes;
    auto response = fakes.route(http::verb::get, "/status");
    CHECK(response.status == 200);
    CHECK(response.content_type == "application/json");
    CHECK(response.body == R"({"version":"x"})");
    CHECK(header(response, "X-Content-Type-Options") == "nosniff");
    CHECK(fakes.json_calls == 1);
    CHECK(fakes.route(http::verb::head, "/status").body == R"({"version":"x"})");  // the length of a GET's body
    for (const auto method : {http::verb::post, http::verb::put, http::verb::delete_}) {
        response = fakes.route(method, "/status");
        CHECK(response.status == 405);
        CHECK(response.allow == "GET, HEAD");
        CHECK(fakes.route(method, "/").status == 405);
    }
    CHECK(fakes.route(http::verb::get, "/status/").status == 404);
    CHECK(fakes.route(http::verb::get, "/healthz").status == 200);

    const std::function<AdminStatus()> status = [] { return AdminStatus{true, std::nullopt}; };
    const std::function<std::string()> metrics = [] { return std::string{}; };
    CHECK(route_admin_request(http::verb::get, "/", status, metrics).status == 404);
    CHECK(route_admin_request(http::verb::get, "/status", status, metrics).status == 404);
}
