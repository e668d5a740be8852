#pragma once

#include <avr_webhookd/common/url.hpp>
#include <avr_webhookd/delivery/header_list.hpp>
#include <avr_webhookd/delivery/nats_outcome.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <vector>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace avr_webhookd {

// What a NATS connection needs, from a destination's settings (nats_link_options).
struct NatsLinkOptions {
    NatsUrl url;
    std::string name;  // shown by the server's /connz: "avr-webhookd default"
    std::string user, password, token;
    std::string nkey_public_key, nkey_seed_file, creds_file;
    std::string ca_file, cert_file, key_file;
    bool tls_verify = true;
    // Replies (PubAcks) waiting in libnats for the reply thread: max(1024, 4 x concurrency), and
    // max_pending_bytes. Beyond them libnats drops replies (a slow consumer): those attempts time
    // out and are retried, and Nats-Msg-Id keeps one copy in the stream.
    int max_pending_replies = 1024;
    int max_pending_bytes = 8 * 1024 * 1024;
    bool operator==(const NatsLinkOptions&) const = default;
};

// Builds libnats' options as the link will (TLS files loaded, credentials set) and throws
// std::runtime_error with libnats' reason when that fails: check-before-apply for a reload.
void check_nats_link_options(const NatsLinkOptions& options);

// One connection to a NATS cluster, through libnats (nats.c), which runs its own threads: a read
// loop, a flusher, reconnects, and one thread that dispatches the replies. Everything here that may
// block (connecting, publishing into a full socket, closing) runs on the link's own worker thread,
// never on the caller's: publish() builds the message and queues it. Replies come to an inbox
// subscription ("_INBOX.<nuid>.<random token>.<id>"), so a reply names its publish; only a
// JetStream PubAck or API error settles it (nats_reply_settles).
//
// Connection handling: the servers are tried in turn and reconnected forever (reconnect_wait
// between rounds on one server); a first connect that fails is retried the same way. A connection
// the server closed for good (credentials refused twice) is opened again after a pause that grows
// to 30 s. Callbacks run on libnats' and the worker's threads: they must be thread-safe (the
// transport posts them to its io_context) and stop once detach() has returned.
class NatsLink : public std::enable_shared_from_this<NatsLink> {
public:
    // inbox_refused: connected, but the server refused the subscription to the reply inbox (its
    // permissions): no PubAck can come back. The link opens a new connection after a pause (1 s to
    // 30 s, as for refused credentials) in case the permissions were changed meanwhile.
    enum class State { connecting, connected, disconnected, closed, auth_failed, inbox_refused };
    struct Callbacks {
        std::function<void(std::uint64_t id, NatsReply reply)> reply;
        // The connection's state: with the server's URL when connected, else libnats' last error.
        std::function<void(State state, std::string detail)> state;
        // A publish the server refused for its permissions: the server's error
        // ("Permissions Violation for Publish to \"subject\"").
        std::function<void(std::string error)> permissions;
        // libnats dropped replies (the pending limits above were reached): the total dropped on the
        // current connection so far. Once per slow-consumer episode.
        std::function<void(std::int64_t dropped)> slow_consumer;
    };

    NatsLink(NatsLinkOptions options, Callbacks callbacks);
    // Owners call detach() and stop() first (make it a shared_ptr: stop() may have to keep it).
    ~NatsLink();
    NatsLink(const NatsLink&) = delete;
    NatsLink& operator=(const NatsLink&) = delete;

    // Starts the worker, which connects. Once.
    void start();
    // Queues one publish with the headers and Nats-Msg-Id: `message_id`. Its reply comes to
    // callbacks.reply with `id`: the server's answer, or not_connected / refused when it could not
    // be sent. Cheap: the message is built here (memory only) and sent by the worker.
    void publish(std::uint64_t id, std::string_view subject, std::string_view body, std::string_view message_id,
                 const HeaderList& headers);
    // No callback runs once this returns.
    void detach();
    // Asks the worker to close the connection and end; returns at once.
    void close();
    // close(), then waits up to `budget` for the worker to end. A worker still closing after it (a
    // libnats thread stuck) is left to finish on its own, and the link is kept alive for it (leaked
    // on purpose: libnats may still call into it).
    void stop(std::chrono::milliseconds budget);

    const NatsLinkOptions& options() const { return options_; }
    bool finished();  // the worker has ended (after close())

    struct Connection;   // libnats' connection and subscription (nats_link.cpp)
    struct Trampolines;  // libnats' callbacks, closure: this link

private:
    struct Queued;
    void run();
    void open();
    std::string subscribe();
    void close_connection();
    void send(Queued& item);
    void report_reply(std::uint64_t id, NatsReply reply);
    void report_state(State state, std::string detail);
    void connection_closed(State state, std::string error);
    void inbox_refused(std::string error);
    void schedule_reopen(State state);
    bool wait_for_last_callbacks(std::unique_lock<std::mutex>& lock);

    const NatsLinkOptions options_;
    std::string inbox_;  // "_INBOX.<nuid>.<random 64-bit token, hex>."

    std::mutex callbacks_mutex_;
    Callbacks callbacks_;  // cleared by detach()

    std::mutex mutex_;  // guards the members below
    std::condition_variable wake_;
    std::vector<Queued> queue_;
    bool stopping_ = false;
    bool closing_ = false;   // the worker closes the connection itself: its closed callback opens none
    bool finished_ = false;  // the worker has ended
    bool reopen_ = false;    // the connection closed for good: the worker opens a new one at reopen_at_
    std::chrono::steady_clock::time_point reopen_at_{};
    std::chrono::milliseconds reopen_pause_{0};
    // The current connection's last callbacks have run (its closed callback, its subscription's
    // completion): only then may it be destroyed.
    bool closed_seen_ = true, subscription_done_ = true;
    bool callbacks_may_run_ = false;  // a connection was destroyed without them: never free this link
    std::string last_error_;
    std::string auth_error_;  // the server refused the credentials: until the connection closes or connects

    std::unique_ptr<Connection> connection_;  // the worker's only
    std::thread worker_;
};

}  // namespace avr_webhookd
