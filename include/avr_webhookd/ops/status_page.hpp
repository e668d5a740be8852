#pragma once

#include <avr_webhookd/ops/admin_server.hpp>

#include <boost/beast/http/verb.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

// The operator's status page: src/ops/status_page.html, embedded into the binary at build time
// (cmake/embed_file.cmake). One self-contained file: inline style and script, no external
// resource, so it works on an air-gapped host. It reads GET /status every few seconds.
std::string_view status_page_html();

// Its Content-Security-Policy: nothing but the page's own inline script and style (allowed by
// their SHA-256, computed from the embedded page) and fetches to the admin endpoint itself. An
// injected <script> or inline handler would not run, whatever a receiver's message holds.
const std::string& status_page_csp();

// The status routes of the admin endpoint, GET or HEAD: "/" is the page (text/html, with the CSP
// and anti-framing headers), "/status" the JSON document `status_json()` renders
// (application/json). Other methods get 405. nullopt for any other path.
std::optional<AdminResponse> route_status_request(boost::beast::http::verb method, std::string_view path,
                                                  const std::function<std::string()>& status_json);

}  // namespace avr_webhookd
