// The libnats side of a NATS destination: options, the connection and its callbacks, and the
// worker thread that does every call that may block. Nothing here touches Asio.
#include <avr_webhookd/delivery/nats_link.hpp>

#include <nats/nats.h>
#include <openssl/rand.h>

#include <charconv>
#include <stdexcept>

namespace avr_webhookd {

namespace {

using namespace std::chrono_literals;

// Between two rounds over one server; libnats moves on to the next server at once.
constexpr std::chrono::milliseconds reconnect_wait = 500ms;
constexpr std::chrono::milliseconds connect_timeout = 2s;  // one TCP connect and handshake
constexpr std::chrono::milliseconds ping_interval = 10s;   // a silent dead server is noticed in ~30 s
constexpr int max_pings_out = 3;
constexpr std::chrono::milliseconds write_deadline = 5s;      // a socket that takes no bytes: reconnect
constexpr std::chrono::milliseconds first_reopen_pause = 1s;  // after the server closed the connection
constexpr std::chrono::milliseconds max_reopen_pause = 30s;
constexpr std::chrono::milliseconds last_callbacks_budget = 5s;

struct OptionsDeleter {
    void operator()(natsOptions* options) const { natsOptions_Destroy(options); }
};
using OptionsPtr = std::unique_ptr<natsOptions, OptionsDeleter>;

// libnats' reason for the last failure on this thread, else the status's name.
std::string error_text(natsStatus status) {
    natsStatus last = NATS_OK;
    const char* text = nats_GetLastError(&last);
    if (text && *text) return text;
    return natsStatus_GetText(status);
}

void require(natsStatus status, std::string_view what) {
    if (status != NATS_OK) throw std::runtime_error(std::string(what) + ": " + error_text(status));
}

OptionsPtr make_options(const NatsLinkOptions& link) {
    natsOptions* raw = nullptr;
    require(natsOptions_Create(&raw), "NATS options");
    OptionsPtr options(raw);
    std::vector<const char*> servers;
    for (const auto& server : link.url.servers) servers.push_back(server.c_str());
    require(natsOptions_SetServers(options.get(), servers.data(), static_cast<int>(servers.size())), "url");
    require(natsOptions_SetName(options.get(), link.name.c_str()), "NATS connection name");
    if (link.url.tls) require(natsOptions_SetSecure(options.get(), true), "url (tls://)");
    if (!link.ca_file.empty())
        require(natsOptions_LoadCATrustedCertificates(options.get(), link.ca_file.c_str()), "ca_file");
    if (!link.cert_file.empty())
        require(natsOptions_LoadCertificatesChain(options.get(), link.cert_file.c_str(), link.key_file.c_str()),
                "cert_file/key_file");
    if (!link.tls_verify) require(natsOptions_SkipServerVerification(options.get(), true), "tls_verify");
    if (!link.user.empty())
        require(natsOptions_SetUserInfo(options.get(), link.user.c_str(), link.password.c_str()), "user");
    if (!link.token.empty()) require(natsOptions_SetToken(options.get(), link.token.c_str()), "token");
    if (!link.nkey_seed_file.empty())
        require(natsOptions_SetNKeyFromSeed(options.get(), link.nkey_public_key.c_str(), link.nkey_seed_file.c_str()),
                "nkey_seed_file");
    if (!link.creds_file.empty())
        require(natsOptions_SetUserCredentialsFromFiles(options.get(), link.creds_file.c_str(), nullptr), "creds_file");
    require(natsOptions_SetMaxReconnect(options.get(), -1), "NATS options");
    require(natsOptions_SetReconnectWait(options.get(), reconnect_wait.count()), "NATS options");
    require(natsOptions_SetTimeout(options.get(), connect_timeout.count()), "NATS options");
    require(natsOptions_SetPingInterval(options.get(), ping_interval.count()), "NATS options");
    require(natsOptions_SetMaxPingsOut(options.get(), max_pings_out), "NATS options");
    require(natsOptions_SetWriteDeadline(options.get(), write_deadline.count()), "NATS options");
    // The worker thread publishes: writing at once costs it a syscall, and spares each event the
    // flusher's 1 ms batching pause.
    require(natsOptions_SetSendAsap(options.get(), true), "NATS options");
    return options;
}

// 64 bits from OpenSSL's CSPRNG, as 16 hex digits: with it, a reply subject cannot be guessed from
// another link's (libnats' inbox prefixes are sequential, and so are the ids after it).
std::string random_token() {
    unsigned char bytes[8] = {};
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("NATS inbox: no random bytes from OpenSSL");
    static constexpr char digits[] = "0123456789abcdef";
    std::string token;
    for (const auto byte : bytes) {
        token.push_back(digits[byte >> 4]);
        token.push_back(digits[byte & 15]);
    }
    return token;
}

}  // namespace

void check_nats_link_options(const NatsLinkOptions& options) { (void)make_options(options); }

struct NatsLink::Queued {
    std::uint64_t id = 0;
    natsMsg* message = nullptr;
};

struct NatsLink::Connection {
    natsConnection* connection = nullptr;
    natsSubscription* subscription = nullptr;
};

// libnats calls these on its threads; the closure is the link, which the worker keeps alive
// until a connection's last callback has run.
struct NatsLink::Trampolines {
    static void reply(natsConnection*, natsSubscription*, natsMsg* message, void* closure) {
        auto& link = *static_cast<NatsLink*>(closure);
        const std::string_view subject = natsMsg_GetSubject(message);
        std::uint64_t id = 0;
        if (subject.starts_with(link.inbox_)) {
            const auto tail = subject.substr(link.inbox_.size());
            std::from_chars(tail.data(), tail.data() + tail.size(), id);
        }
        NatsReply reply;
        if (natsMsg_IsNoResponders(message)) {
            reply.kind = NatsReply::Kind::no_responders;
        } else {
            reply.kind = NatsReply::Kind::message;
            reply.text.assign(natsMsg_GetData(message), static_cast<std::size_t>(natsMsg_GetDataLength(message)));
        }
        natsMsg_Destroy(message);
        if (id != 0) link.report_reply(id, std::move(reply));
    }

    static void subscription_done(void* closure) {
        auto& link = *static_cast<NatsLink*>(closure);
        const std::lock_guard lock(link.mutex_);
        link.subscription_done_ = true;
        link.wake_.notify_all();
    }

    static std::string last_error(natsConnection* connection) {
        const char* text = nullptr;
        const auto status = natsConnection_GetLastError(connection, &text);
        if (text && *text) return text;
        return status == NATS_OK ? std::string() : natsStatus_GetText(status);
    }

    static std::string connected_url(natsConnection* connection) {
        char url[256] = {};
        if (natsConnection_GetConnectedUrl(connection, url, sizeof url) != NATS_OK) return {};
        return url;
    }

    static void connected(natsConnection* connection, void* closure) {
        auto& link = *static_cast<NatsLink*>(closure);
        {
            const std::lock_guard lock(link.mutex_);
            link.reopen_pause_ = 0ms;
            link.auth_error_.clear();
        }
        link.report_state(State::connected, connected_url(connection));
    }

    static void disconnected(natsConnection* connection, void* closure) {
        auto& link = *static_cast<NatsLink*>(closure);
        auto error = last_error(connection);
        if (error.empty()) error = "the connection was lost";
        {
            const std::lock_guard lock(link.mutex_);
            if (!error.empty()) link.last_error_ = error;
        }
        if (natsConnection_IsClosed(connection)) return;  // the closed callback follows
        link.report_state(State::disconnected, std::move(error));
    }

    // libnats closes a connection whose credentials were refused twice in a row; its last error
    // then says only that no server is left, so the refusal is remembered from the error callback.
    static void closed(natsConnection* connection, void* closure) {
        auto& link = *static_cast<NatsLink*>(closure);
        const char* text = nullptr;
        bool auth = natsConnection_GetLastError(connection, &text) == NATS_CONNECTION_AUTH_FAILED;
        std::string error = text && *text ? text : "the connection was closed";
        {
            const std::lock_guard lock(link.mutex_);
            if (!link.auth_error_.empty()) {
                auth = true;
                error = std::exchange(link.auth_error_, {});
            }
        }
        link.connection_closed(auth ? State::auth_failed : State::closed, std::move(error));
    }

    static void error(natsConnection* connection, natsSubscription* subscription, natsStatus status, void* closure) {
        auto& link = *static_cast<NatsLink*>(closure);
        if (status == NATS_CONNECTION_AUTH_FAILED) {
            const std::lock_guard lock(link.mutex_);
            link.auth_error_ = last_error(connection);
            if (link.auth_error_.empty()) link.auth_error_ = natsStatus_GetText(status);
            return;
        }
        if (status == NATS_SLOW_CONSUMER && subscription) {  // costs those attempts a timeout, and a retry
            int64_t dropped = 0;
            natsSubscription_GetDropped(subscription, &dropped);
            const std::lock_guard lock(link.callbacks_mutex_);
            if (link.callbacks_.slow_consumer) link.callbacks_.slow_consumer(dropped);
            return;
        }
        if (status != NATS_NOT_PERMITTED) return;
        auto text = last_error(connection);
        if (is_inbox_refusal(text)) {
            link.inbox_refused(text);
            return;
        }
        const std::lock_guard lock(link.callbacks_mutex_);
        if (link.callbacks_.permissions) link.callbacks_.permissions(std::move(text));
    }

    // "Permissions Violation for Subscription to "_INBOX.<nuid>.*"": the link subscribes to nothing else.
    static bool is_inbox_refusal(std::string_view error) {
        return error.find("Permissions Violation for Subscription") != std::string_view::npos;
    }
};

NatsLink::NatsLink(NatsLinkOptions options, Callbacks callbacks)
    : options_(std::move(options)), callbacks_(std::move(callbacks)) {
    natsInbox* inbox = nullptr;
    require(natsInbox_Create(&inbox), "NATS inbox");
    inbox_ = std::string(inbox) + "." + random_token() + ".";
    natsInbox_Destroy(inbox);
}

NatsLink::~NatsLink() {
    detach();
    close();
    if (worker_.joinable()) worker_.join();
    std::vector<Queued> left;
    {
        const std::lock_guard lock(mutex_);
        left.swap(queue_);
    }
    for (auto& item : left) natsMsg_Destroy(item.message);
}

void NatsLink::start() {
    worker_ = std::thread([this] { run(); });
}

void NatsLink::publish(std::uint64_t id, std::string_view subject, std::string_view body, std::string_view message_id,
                       const HeaderList& headers) {
    const std::string subject_text(subject);
    const std::string reply = inbox_ + std::to_string(id);
    natsMsg* message = nullptr;
    auto status =
        natsMsg_Create(&message, subject_text.c_str(), reply.c_str(), body.data(), static_cast<int>(body.size()));
    if (status == NATS_OK) status = natsMsgHeader_Set(message, "Nats-Msg-Id", std::string(message_id).c_str());
    for (const auto [name, value] : headers)  // libnats takes C strings
        if (status == NATS_OK)
            status = natsMsgHeader_Set(message, std::string(name).c_str(), std::string(value).c_str());
    if (status != NATS_OK) {
        natsMsg_Destroy(message);
        report_reply(id, NatsReply{NatsReply::Kind::refused, error_text(status)});
        return;
    }
    const std::lock_guard lock(mutex_);
    queue_.push_back(Queued{id, message});
    if (queue_.size() == 1) wake_.notify_all();
}

void NatsLink::detach() {
    const std::lock_guard lock(callbacks_mutex_);
    callbacks_ = {};
}

void NatsLink::close() {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_all();
}

void NatsLink::stop(std::chrono::milliseconds budget) {
    close();
    if (!worker_.joinable()) return;
    std::unique_lock lock(mutex_);
    const bool ended = wake_.wait_for(lock, budget, [this] { return finished_; });
    const bool keep = !ended || callbacks_may_run_;
    lock.unlock();
    if (!keep) {
        worker_.join();
        return;
    }
    // libnats may still call into this link: it stays, with its thread, for the life of the process.
    worker_.detach();
    new std::shared_ptr<NatsLink>(shared_from_this());
}

bool NatsLink::finished() {
    const std::lock_guard lock(mutex_);
    return finished_;
}

void NatsLink::report_reply(std::uint64_t id, NatsReply reply) {
    const std::lock_guard lock(callbacks_mutex_);
    if (callbacks_.reply) callbacks_.reply(id, std::move(reply));
}

void NatsLink::report_state(State state, std::string detail) {
    const std::lock_guard lock(callbacks_mutex_);
    if (callbacks_.state) callbacks_.state(state, std::move(detail));
}

// The closed callback (the last of its connection), or a first connect that failed: unless the
// link is stopping, the worker opens a new connection after a pause. A refusal of the credentials
// waits longer each time (1 s to 30 s; they may have been fixed meanwhile); servers that do not
// answer are tried again every reconnect_wait, as libnats itself does once connected.
void NatsLink::connection_closed(State state, std::string error) {
    bool stopping = false;
    {
        const std::lock_guard lock(mutex_);
        closed_seen_ = true;
        last_error_ = error;
        stopping = stopping_ || closing_;
        if (!stopping) schedule_reopen(state);
        wake_.notify_all();
    }
    if (!stopping) report_state(state, std::move(error));
}

// The server refused the reply inbox's subscription (at open(), or again after a reconnect): the
// attempts fail with its words, and the worker opens a new connection after a growing pause.
void NatsLink::inbox_refused(std::string error) {
    {
        const std::lock_guard lock(mutex_);
        if (stopping_ || reopen_) return;  // already reported for this connection
        last_error_ = error;
        schedule_reopen(State::inbox_refused);
        wake_.notify_all();
    }
    report_state(State::inbox_refused, error);
}

// Under mutex_.
void NatsLink::schedule_reopen(State state) {
    std::chrono::milliseconds pause = reconnect_wait;
    if (state != State::connecting)
        pause = reopen_pause_ =
            std::min(max_reopen_pause, reopen_pause_ == 0ms ? first_reopen_pause : reopen_pause_ * 2);
    reopen_ = true;
    reopen_at_ = std::chrono::steady_clock::now() + pause;
}

void NatsLink::run() {
    open();
    std::unique_lock lock(mutex_);
    for (;;) {
        const auto ready = [this] {
            return stopping_ || !queue_.empty() || (reopen_ && std::chrono::steady_clock::now() >= reopen_at_);
        };
        if (reopen_) wake_.wait_until(lock, reopen_at_, ready);
        else wake_.wait(lock, ready);
        if (stopping_) break;
        auto batch = std::exchange(queue_, {});
        const bool reopen = reopen_ && std::chrono::steady_clock::now() >= reopen_at_;
        lock.unlock();
        for (auto& item : batch) send(item);
        if (reopen) {
            close_connection();
            open();
        }
        lock.lock();
    }
    auto left = std::exchange(queue_, {});
    lock.unlock();
    for (auto& item : left) natsMsg_Destroy(item.message);
    close_connection();
    lock.lock();
    finished_ = true;
    wake_.notify_all();
}

// Connects (blocking: this is the worker). libnats' own retry of a failed first connect is not
// used: it reports a refusal of the credentials as "no server available", so the worker retries
// instead, and hands libnats only a connection that has been established.
void NatsLink::open() {
    {
        const std::lock_guard lock(mutex_);
        reopen_ = false;
    }
    natsConnection* connection = nullptr;
    natsStatus status = NATS_OK;
    try {
        auto options = make_options(options_);
        natsOptions_SetDisconnectedCB(options.get(), &Trampolines::disconnected, this);
        natsOptions_SetReconnectedCB(options.get(), &Trampolines::connected, this);
        natsOptions_SetClosedCB(options.get(), &Trampolines::closed, this);
        natsOptions_SetErrorHandler(options.get(), &Trampolines::error, this);
        status = natsConnection_Connect(&connection, options.get());
    } catch (const std::exception& error) {  // options that worked at start no longer do (a file removed)
        connection_closed(State::closed, error.what());
        return;
    }
    if (status != NATS_OK || !connection) {  // no connection: none of its callbacks will run
        const bool auth = status == NATS_CONNECTION_AUTH_FAILED;
        connection_closed(auth ? State::auth_failed : State::connecting, error_text(status));
        return;
    }
    {
        const std::lock_guard lock(mutex_);
        closed_seen_ = false;
    }
    connection_ = std::make_unique<Connection>();
    connection_->connection = connection;
    if (const auto refusal = subscribe(); !refusal.empty()) {
        inbox_refused(refusal);
        return;
    }
    {
        const std::lock_guard lock(mutex_);
        reopen_pause_ = 0ms;
    }
    report_state(State::connected, Trampolines::connected_url(connection));
}

// Subscribes to the reply inbox and makes sure the server took it: the server answers a refused
// subscription with an -ERR before the flush's PONG. Returns the error, or "" when subscribed (or
// when the server did not answer the flush in time: libnats' pings deal with that).
std::string NatsLink::subscribe() {
    natsConnection* connection = connection_->connection;
    const auto subject = inbox_ + "*";
    if (const auto status = natsConnection_Subscribe(&connection_->subscription, connection, subject.c_str(),
                                                     &Trampolines::reply, this);
        status != NATS_OK)
        return "cannot subscribe to the reply inbox: " + error_text(status);
    natsSubscription_SetPendingLimits(connection_->subscription, options_.max_pending_replies,
                                      options_.max_pending_bytes);
    {
        const std::lock_guard lock(mutex_);
        subscription_done_ = false;
    }
    if (natsSubscription_SetOnCompleteCB(connection_->subscription, &Trampolines::subscription_done, this) != NATS_OK)
        Trampolines::subscription_done(this);  // already closed: no callback of it will run
    (void)natsConnection_FlushTimeout(connection, connect_timeout.count());
    const char* text = nullptr;
    if (natsConnection_GetLastError(connection, &text) == NATS_NOT_PERMITTED && text &&
        Trampolines::is_inbox_refusal(text))
        return text;
    return {};
}

// Closes and destroys the current connection once its last callbacks have run.
void NatsLink::close_connection() {
    if (!connection_) return;
    {
        const std::lock_guard lock(mutex_);
        closing_ = true;
    }
    natsConnection_Close(connection_->connection);
    std::unique_lock lock(mutex_);
    if (!wait_for_last_callbacks(lock)) callbacks_may_run_ = true;
    closing_ = false;
    lock.unlock();
    natsSubscription_Destroy(connection_->subscription);
    natsConnection_Destroy(connection_->connection);
    connection_.reset();
}

bool NatsLink::wait_for_last_callbacks(std::unique_lock<std::mutex>& lock) {
    return wake_.wait_for(lock, last_callbacks_budget, [this] { return closed_seen_ && subscription_done_; });
}

void NatsLink::send(Queued& item) {
    natsConnection* connection = connection_ ? connection_->connection : nullptr;
    if (!connection || natsConnection_Status(connection) != NATS_CONN_STATUS_CONNECTED) {
        std::string error;
        {
            const std::lock_guard lock(mutex_);
            error = last_error_;
        }
        report_reply(item.id, NatsReply{NatsReply::Kind::not_connected, std::move(error)});
    } else if (const auto status = natsConnection_PublishMsg(connection, item.message); status != NATS_OK) {
        report_reply(item.id, NatsReply{NatsReply::Kind::refused, error_text(status)});
    }
    natsMsg_Destroy(item.message);
    item.message = nullptr;
}

}  // namespace avr_webhookd
