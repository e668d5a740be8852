#include <avr_webhookd/delivery/http_transport.hpp>

#include <avr_webhookd/common/url.hpp>

#include <stdexcept>

namespace avr_webhookd {

HttpTransport::HttpTransport(boost::asio::any_io_executor executor, const Config& config, Logger& logger)
    : client_(std::move(executor), options_for(config), logger) {}

bool HttpTransport::accepts(const Config& config) const { return !is_nats_url(config.url); }

HttpClientOptions HttpTransport::options_for(const Config& config) {
    std::string error;
    auto url = parse_url(config.url, &error);
    if (!url) throw std::runtime_error("invalid setting url: " + error);
    HttpClientOptions options;
    options.url = std::move(*url);
    options.timeout = config.timeout;
    options.tls_verify = config.tls_verify;
    options.ca_file = config.ca_file;
    options.max_idle_connections = config.concurrency;
    return options;
}

void HttpTransport::check(const Config& config) {
    const auto options = options_for(config);
    if (options.url.tls) (void)make_tls_client_context(options.tls_verify, options.ca_file);
}

}  // namespace avr_webhookd
