#pragma once

#include <avr_webhookd/delivery/http_client.hpp>
#include <avr_webhookd/delivery/transport.hpp>

namespace avr_webhookd {

// A webhook destination (http://, https://): each attempt is one POST by the keep-alive HttpClient.
class HttpTransport final : public Transport {
public:
    HttpTransport(boost::asio::any_io_executor executor, const Config& config, Logger& logger);

    boost::asio::awaitable<AttemptOutcome> send(const Event& event, const HeaderList& headers) override {
        return client_.post(event.body, headers);
    }
    void update(const Config& config) override { client_.update(options_for(config)); }
    bool accepts(const Config& config) const override;
    void close_idle() override { client_.close_idle(); }
    std::size_t open_connections() const override { return client_.open_connections(); }
    std::string_view method() const override { return "POST"; }

    // The client's options from a destination's settings; throws std::runtime_error for a bad url.
    static HttpClientOptions options_for(const Config& config);
    // Throws what the constructor would (a bad url, a ca_file that is no PEM bundle).
    static void check(const Config& config);
    const HttpClient& client() const { return client_; }

private:
    HttpClient client_;
};

}  // namespace avr_webhookd
