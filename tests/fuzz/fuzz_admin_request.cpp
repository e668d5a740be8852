// Admin requests as a connection delivers them: raw bytes through HttpRequestReader with the admin
// server's limits, each complete request routed by route_admin_request, keep-alive requests one
// after another on the same bytes. Never a crash; memory stays within the reader's bounds; a
// refused request gets 400, 413 or 431; every answer is one of the routes' statuses, and status
// and metrics are asked for only where the route table says.
//
// Input: byte 0 picks the fake status (accepting, unhealthy) and whether the status page is
// served; the rest is the connection's bytes.
#include "request_stream.hpp"

#include <avr_webhookd/common/http_request_reader.hpp>
#include <avr_webhookd/ops/admin_server.hpp>

#include <functional>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace avr_webhookd;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

void route(const http::request<http::string_body>& request, std::uint8_t scenario) {
    int status_calls = 0;
    int metrics_calls = 0;
    const auto status = [&] {
        ++status_calls;
        AdminStatus now;
        now.accepting = (scenario & 1) != 0;
        if (scenario & 2) now.unhealthy = std::string("receiver down\n\n");
        return now;
    };
    const auto metrics = [&] {
        ++metrics_calls;
        return std::string("# TYPE avr_webhookd_up gauge\navr_webhookd_up 1\n");
    };
    int status_json_calls = 0;
    std::function<std::string()> status_json;
    if (scenario & 4)
        status_json = [&] {
            ++status_json_calls;
            return std::string("{}\n");
        };
    const AdminResponse response =
        route_admin_request(request.method(), request.target(), status, metrics, status_json);
    check(response.status == 200 || response.status == 404 || response.status == 405 || response.status == 503);
    check((response.status == 405) == !response.allow.empty());
    check(status_calls + metrics_calls + status_json_calls <= 1);
    if (status_json_calls == 1) check(response.status == 200 && response.content_type == "application/json");
    check(!response.body.empty() && response.body.back() == '\n');
    if (metrics_calls == 1) check(response.status == 200 && response.content_type == prometheus_content_type);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t scenario = data[0];
    std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
    HttpRequestReader reader(admin_request_limits(AdminLimits{}));
    fuzz::read_requests(
        bytes, reader, [&](const http::request<http::string_body>& request) { route(request, scenario); },
        [](const HttpRequestReader&) {});
    return 0;
}
