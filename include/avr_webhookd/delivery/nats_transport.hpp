#pragma once

#include <avr_webhookd/delivery/nats_link.hpp>
#include <avr_webhookd/delivery/nats_subject.hpp>
#include <avr_webhookd/delivery/transport.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace avr_webhookd {

// The link's options from a destination's settings. Throws std::runtime_error naming the setting
// for a url that is no NATS server list or an nkey_seed_file that holds no user seed.
NatsLinkOptions nats_link_options(const Config& config, std::string_view destination);

// A NATS JetStream destination (nats://, tls://): each attempt publishes the event's body to the
// destination's subject with the X-AVR-WEBHOOK-* values as NATS headers and Nats-Msg-Id = the
// event id, and is delivered when the stream's PubAck comes back (the stream, with its replicas,
// has stored it). A retry, or a replay after a crash, carries the same Nats-Msg-Id: within the
// stream's duplicate window it is stored once.
//
// The Asio side of a NatsLink: the link's threads post every reply and state change to this
// transport's executor; nothing here blocks. An attempt waits, within its `timeout`, for a
// connection (at start, or while the client reconnects), then for its PubAck; a reply that comes
// after its attempt ended is dropped (the next attempt's PubAck says "duplicate"). Publishes in
// flight are bounded by the destination's `concurrency` (one per attempt).
class NatsTransport final : public Transport {
public:
    NatsTransport(boost::asio::any_io_executor executor, const Config& config, Logger& logger,
                  std::string_view destination);
    // Detaches the links (no more callbacks) and closes them, waiting up to 2 s for libnats to end
    // each: on a thread of their own while the event loop runs (it goes on at once), here once the
    // loop has stopped.
    ~NatsTransport() override;

    boost::asio::awaitable<AttemptOutcome> send(const Event& event, const HeaderList& headers) override;
    // A new subject or timeout applies to the next attempts; new servers, credentials or TLS files
    // open a new connection (attempts on the old one end as timeouts and are retried).
    void update(const Config& config) override;
    bool accepts(const Config& config) const override;
    void close_idle() override {}
    // Closes the links (no reconnects); attempts under way end by their timeout at the latest.
    void retire() override;
    std::size_t open_connections() const override;
    std::string_view method() const override { return "PUBLISH"; }

    static void check(const Config& config);

    struct Shared;  // the loop's state, shared with what the link posts to it (nats_transport.cpp)

private:
    void open_link(NatsLinkOptions options);

    std::shared_ptr<Shared> shared_;
    std::shared_ptr<NatsLink> link_;
    std::vector<std::shared_ptr<NatsLink>> retired_;  // replaced by a reload, closing
    SubjectTemplate subject_;
    std::chrono::milliseconds timeout_;
    std::string destination_;
};

}  // namespace avr_webhookd
