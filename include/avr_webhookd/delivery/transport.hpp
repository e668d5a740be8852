#pragma once

#include <avr_webhookd/common/event.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/delivery/attempt_outcome.hpp>
#include <avr_webhookd/delivery/header_list.hpp>
#include <avr_webhookd/ops/logger.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace avr_webhookd {

// How a Deliverer hands one attempt to its destination: the seam between DeliveryCore's decisions
// (retries, dead letters, the spool, metrics: the same for every destination) and the wire. Two
// kinds, chosen by the url's scheme: HttpTransport (http://, https://: a POST) and NatsTransport
// (nats://, tls://: a JetStream publish). Used from the io_context's thread only.
class Transport {
public:
    virtual ~Transport() = default;

    // One attempt: the event's body with the request headers (X-AVR-WEBHOOK-*). Expected failures
    // are outcomes, never exceptions; the attempt ends by the config's `timeout` at the latest.
    virtual boost::asio::awaitable<AttemptOutcome> send(const Event& event, const HeaderList& headers) = 0;
    // A reloaded configuration of the same kind (accepts(config)); attempts under way keep theirs.
    virtual void update(const Config& config) = 0;
    // False when `config` needs the other kind of transport (the url's scheme changed).
    virtual bool accepts(const Config& config) const = 0;
    virtual void close_idle() = 0;
    // Replaced by a transport of the other kind (a reload changed the url's scheme): closes what it
    // holds open (idle connections, a NATS connection and its thread). Attempts under way may still
    // finish, or fail and be retried on the new transport; it is destroyed once none uses it.
    virtual void retire() { close_idle(); }
    virtual std::size_t open_connections() const = 0;
    // "POST" or "PUBLISH", for the failure block.
    virtual std::string_view method() const = 0;
};

// The transport `config.url` asks for. Throws std::runtime_error as check_transport would.
std::unique_ptr<Transport> make_transport(boost::asio::any_io_executor executor, const Config& config, Logger& logger,
                                          std::string_view destination);

// Throws std::runtime_error for what would keep the transport from starting (a bad url, a ca_file
// that is no PEM bundle, an unreadable NKey seed), changing nothing: a reload checks every
// destination before applying any.
void check_transport(const Config& config);

}  // namespace avr_webhookd
