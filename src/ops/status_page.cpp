#include <avr_webhookd/ops/status_page.hpp>

#include <openssl/evp.h>

#include <array>
#include <stdexcept>

namespace avr_webhookd {

namespace http = boost::beast::http;

// The page's bytes, in the .cpp that cmake/embed_file.cmake generates from status_page.html.
extern const unsigned char status_page_bytes[];
extern const std::size_t status_page_size;

namespace {

// The text between `open` and the next `close`: the page has one inline <script> and one <style>.
std::string_view element_text(std::string_view page, std::string_view open, std::string_view close) {
    const auto begin = page.find(open);
    const auto end = begin == std::string_view::npos ? begin : page.find(close, begin + open.size());
    if (end == std::string_view::npos) throw std::logic_error("status page: no " + std::string(open) + " element");
    return page.substr(begin + open.size(), end - begin - open.size());
}

// 'sha256-<base64>' as a CSP source expression.
std::string csp_hash(std::string_view text) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int digest_size = 0;
    if (EVP_Digest(text.data(), text.size(), digest.data(), &digest_size, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("status page: SHA-256 failed");
    std::array<unsigned char, 4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1> base64{};
    const int length = EVP_EncodeBlock(base64.data(), digest.data(), static_cast<int>(digest_size));
    return "'sha256-" + std::string(reinterpret_cast<const char*>(base64.data()), static_cast<std::size_t>(length)) +
           "'";
}

AdminResponse ok(std::string content_type, std::string body) {
    AdminResponse response;
    response.content_type = std::move(content_type);
    response.body = std::move(body);
    response.headers.emplace_back("X-Content-Type-Options", "nosniff");
    return response;
}

}  // namespace

std::string_view status_page_html() { return {reinterpret_cast<const char*>(status_page_bytes), status_page_size}; }

const std::string& status_page_csp() {
    static const std::string policy = [] {
        const auto page = status_page_html();
        return "default-src 'none'; script-src " + csp_hash(element_text(page, "<script>", "</script>")) +
               "; style-src " + csp_hash(element_text(page, "<style>", "</style>")) +
               "; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
               "frame-ancestors 'none'";
    }();
    return policy;
}

std::optional<AdminResponse> route_status_request(http::verb method, std::string_view path,
                                                  const std::function<std::string()>& status_json) {
    if (path != "/" && path != "/status") return std::nullopt;
    if (method != http::verb::get && method != http::verb::head) {
        AdminResponse response;
        response.status = 405;
        response.body = "method not allowed\n";
        response.allow = "GET, HEAD";
        return response;
    }
    if (path == "/status") {
        auto response = ok("application/json", status_json());
        response.headers.emplace_back("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
        return response;
    }
    auto response = ok("text/html; charset=utf-8", std::string(status_page_html()));
    response.headers.emplace_back("Content-Security-Policy", status_page_csp());
    response.headers.emplace_back("X-Frame-Options", "DENY");
    response.headers.emplace_back("Referrer-Policy", "no-referrer");
    return response;
}

}  // namespace avr_webhookd
