#include <avr_webhookd/delivery/transport.hpp>

#include <avr_webhookd/common/url.hpp>
#include <avr_webhookd/delivery/http_transport.hpp>
#include <avr_webhookd/delivery/nats_transport.hpp>

namespace avr_webhookd {

std::unique_ptr<Transport> make_transport(boost::asio::any_io_executor executor, const Config& config, Logger& logger,
                                          std::string_view destination) {
    if (is_nats_url(config.url))
        return std::make_unique<NatsTransport>(std::move(executor), config, logger, destination);
    return std::make_unique<HttpTransport>(std::move(executor), config, logger);
}

void check_transport(const Config& config) {
    if (is_nats_url(config.url)) NatsTransport::check(config);
    else HttpTransport::check(config);
}

}  // namespace avr_webhookd
