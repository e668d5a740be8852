// The Asio side of a NATS JetStream destination: attempts wait on timers of their own, and the
// link's threads post replies and connection states to the loop, which wakes the attempts.
#include <avr_webhookd/delivery/nats_transport.hpp>

#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/common/url.hpp>
#include <avr_webhookd/delivery/nkey.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_map>

namespace avr_webhookd {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;
using State = NatsLink::State;

namespace {

// How long a transport's destruction waits for libnats to close a connection.
constexpr std::chrono::seconds close_budget{2};

SubjectTemplate subject_or_throw(const Config& config) {
    std::string error;
    auto subject = SubjectTemplate::parse(config.nats.subject, &error);
    if (!subject) throw std::runtime_error("invalid setting subject: " + error);
    return std::move(*subject);
}

std::string read_text_file(const std::string& path, std::string_view setting) {
    std::ifstream file(path, std::ios::binary);
    if (!file) throw std::runtime_error("invalid setting " + std::string(setting) + ": cannot read " + path);
    return std::string(std::istreambuf_iterator<char>(file), {});
}

// The subject of a permissions violation: Permissions Violation for Publish to "avr.events.x".
std::optional<std::string> violated_subject(std::string_view error) {
    const auto open = error.find('"');
    const auto close = open == std::string_view::npos ? open : error.find('"', open + 1);
    if (close == std::string_view::npos || error.find("Publish") == std::string_view::npos) return std::nullopt;
    return std::string(error.substr(open + 1, close - open - 1));
}

}  // namespace

NatsLinkOptions nats_link_options(const Config& config, std::string_view destination) {
    std::string error;
    auto url = parse_nats_url(config.url, &error);
    if (!url) throw std::runtime_error("invalid setting url: " + error);
    NatsLinkOptions options;
    options.name = "avr-webhookd " + std::string(destination);
    const auto& nats = config.nats;
    options.user = url->user.empty() ? nats.user : url->user;
    options.password = url->user.empty() ? nats.password : url->password;
    options.token = url->token.empty() ? nats.token : url->token;
    options.url = std::move(*url);
    if (!nats.nkey_seed_file.empty()) {
        auto key = nkey_user_public_key_from_file_text(read_text_file(nats.nkey_seed_file, "nkey_seed_file"), &error);
        if (!key) throw std::runtime_error("invalid setting nkey_seed_file: " + error);
        options.nkey_public_key = std::move(*key);
        options.nkey_seed_file = nats.nkey_seed_file;
    }
    options.creds_file = nats.creds_file;
    options.ca_file = config.ca_file;
    options.cert_file = nats.cert_file;
    options.key_file = nats.key_file;
    options.tls_verify = config.tls_verify;
    options.max_pending_replies = static_cast<int>(std::max(1024U, 4 * config.concurrency));
    return options;
}

namespace {

// One attempt, in its coroutine frame: woken (its timer cancelled) by a reply or a new state.
struct Pending {
    asio::steady_timer wake;  // expires at the attempt's deadline
    std::string subject;
    bool published = false;
    std::optional<NatsReply> reply;
};

}  // namespace

struct NatsTransport::Shared {
    Shared(asio::any_io_executor executor_, Logger& logger_, std::string destination_, std::string servers_)
        : executor(std::move(executor_)),
          logger(logger_),
          destination(std::move(destination_)),
          servers(std::move(servers_)) {}

    asio::any_io_executor executor;
    Logger& logger;
    std::string destination;
    std::string servers;  // the url, redacted
    std::uint64_t next_id = 1;
    std::unordered_map<std::uint64_t, Pending*> pending;
    std::uint64_t generation = 0;  // the link whose states count
    State state = State::connecting;
    std::string detail;  // the server when connected, else the last error
    bool logged_connecting = false;
    bool logged_inbox_refused = false;  // once until a connection works: each reopen is refused alike
    std::int64_t dropped_replies = 0;   // PubAcks libnats dropped on the current connection (slow consumer)
    std::uint64_t ignored_replies = 0;  // replies on the inbox that were no PubAck (the first is logged)

    // The connection's state refuses every attempt (until it changes).
    bool refuses() const { return state == State::auth_failed || state == State::inbox_refused; }

    NatsReply not_connected() const {
        if (state == State::auth_failed) return NatsReply{NatsReply::Kind::auth_failed, detail};
        if (state == State::inbox_refused) return NatsReply{NatsReply::Kind::inbox_refused, detail};
        return NatsReply{NatsReply::Kind::not_connected, detail};
    }

    void complete(Pending& attempt, NatsReply reply) {
        attempt.reply = std::move(reply);
        attempt.wake.cancel();
    }

    void on_reply(std::uint64_t id, NatsReply reply) {
        const auto found = pending.find(id);
        if (found == pending.end()) return;  // its attempt has ended
        if (!nats_reply_settles(reply)) {    // not JetStream's: the attempt waits on for its PubAck
            if (ignored_replies++ == 0)
                logger.warn("nats: destination " + destination +
                            " ignored a reply that is no JetStream PubAck (a core NATS responder on the subject?): " +
                            single_line(std::string_view(reply.text).substr(0, 200)) +
                            "; such replies are ignored, the attempts wait for their PubAck");
            return;
        }
        complete(*found->second, std::move(reply));
    }

    void on_state(std::uint64_t from, State now, std::string text) {
        if (from != generation) return;  // a link replaced by a reload
        const bool changed = now != state || (now == State::connecting && !logged_connecting);
        state = now;
        detail = std::move(text);
        if (state == State::connected) logged_inbox_refused = false;
        if (changed) log_state();
        for (auto& [id, attempt] : pending) {
            if (state == State::inbox_refused) complete(*attempt, not_connected());  // no PubAck can come
            if (attempt->published) continue;
            if (state == State::auth_failed) complete(*attempt, not_connected());
            else if (state == State::connected) attempt->wake.cancel();  // publish now
        }
    }

    void on_permissions(const std::string& error) {
        const auto subject = violated_subject(error);
        if (!subject) return;
        for (auto& [id, attempt] : pending)
            if (attempt->published && attempt->subject == *subject)
                complete(*attempt, NatsReply{NatsReply::Kind::permissions, error});
    }

    void on_slow_consumer(std::int64_t dropped) {
        dropped_replies = dropped;
        logger.warn("nats: destination " + destination + ": libnats dropped replies (" + std::to_string(dropped) +
                    " on this connection so far): the reply inbox's pending limit was reached; those attempts time "
                    "out and are retried (Nats-Msg-Id keeps one copy in the stream)");
    }

    void log_state() {
        const std::string who = "nats: destination " + destination;
        const auto why = single_line(detail);
        switch (state) {
        case State::connected:
            logger.info(who + " connected to " + (detail.empty() ? servers : redact_url(detail)));
            return;
        case State::connecting:
            if (!std::exchange(logged_connecting, true))
                logger.warn(who + " cannot connect to " + servers + " yet (" + why + "); retrying");
            return;
        case State::disconnected:
            logger.warn(who + " lost its connection (" + why + "); reconnecting to " + servers);
            return;
        case State::closed:
            logger.error(who + ": the server closed the connection (" + why + "); opening a new one");
            return;
        case State::auth_failed:
            logger.error(who + ": " + servers + " refused the credentials (" + why +
                         "); events are given up as NATS_AUTHORIZATION_VIOLATION until it accepts them");
            return;
        case State::inbox_refused:
            if (std::exchange(logged_inbox_refused, true)) return;
            logger.error(who + ": " + servers + " refused the subscription to the reply inbox (" + why +
                         "); no PubAck can come back: allow these credentials to subscribe to _INBOX.>; events are "
                         "given up as NATS_PERMISSIONS_VIOLATION until it does");
            return;
        }
    }
};

namespace {

// Removes the attempt from the pending map however its frame ends.
struct Forget {
    NatsTransport::Shared& shared;
    std::uint64_t id;
    ~Forget() { shared.pending.erase(id); }
};

}  // namespace

NatsTransport::NatsTransport(asio::any_io_executor executor, const Config& config, Logger& logger,
                             std::string_view destination)
    : shared_(std::make_shared<Shared>(std::move(executor), logger, std::string(destination), redact_url(config.url))),
      subject_(subject_or_throw(config)),
      timeout_(config.timeout),
      destination_(destination) {
    open_link(nats_link_options(config, destination));
}

NatsTransport::~NatsTransport() {
    retired_.push_back(link_);
    for (auto& link : retired_) {
        link->detach();
        link->close();
    }
    // libnats closes each connection on the link's own thread, within close_budget. While the event
    // loop runs (a destination removed at a reload), a server that does not answer would hold it
    // that long: a thread of its own, which owns the links, waits instead. Once the loop has ended
    // (the daemon's stop) it is waited for here, so that no libnats thread runs on into exit().
    auto stop_all = [links = std::move(retired_)] {
        for (const auto& link : links) link->stop(close_budget);
    };
    const auto* loop = shared_->executor.target<asio::io_context::executor_type>();
    if (loop == nullptr || loop->context().stopped()) {
        stop_all();
        return;
    }
    try {
        std::thread(stop_all).detach();
    } catch (const std::system_error&) {
        stop_all();
    }
}

void NatsTransport::open_link(NatsLinkOptions options) {
    const auto generation = ++shared_->generation;
    shared_->state = State::connecting;
    shared_->detail.clear();
    std::weak_ptr<Shared> weak = shared_;
    const auto executor = shared_->executor;
    NatsLink::Callbacks callbacks;
    callbacks.reply = [weak, executor](std::uint64_t id, NatsReply reply) {
        asio::post(executor, [weak, id, reply = std::move(reply)]() mutable {
            if (const auto shared = weak.lock()) shared->on_reply(id, std::move(reply));
        });
    };
    callbacks.state = [weak, executor, generation](State state, std::string detail) {
        asio::post(executor, [weak, generation, state, detail = std::move(detail)]() mutable {
            if (const auto shared = weak.lock()) shared->on_state(generation, state, std::move(detail));
        });
    };
    callbacks.permissions = [weak, executor](std::string error) {
        asio::post(executor, [weak, error = std::move(error)] {
            if (const auto shared = weak.lock()) shared->on_permissions(error);
        });
    };
    callbacks.slow_consumer = [weak, executor](std::int64_t dropped) {
        asio::post(executor, [weak, dropped] {
            if (const auto shared = weak.lock()) shared->on_slow_consumer(dropped);
        });
    };
    link_ = std::make_shared<NatsLink>(std::move(options), std::move(callbacks));
    link_->start();
}

awaitable<AttemptOutcome> NatsTransport::send(const Event& event, const HeaderList& headers) {
    const auto shared = shared_;  // this attempt's state outlives a reload's new link or subject
    const auto link = link_;
    const auto timeout = timeout_;
    Pending attempt{asio::steady_timer(shared->executor, Clock::now() + timeout),
                    subject_.render(event.type, event.uuid, destination_), false, std::nullopt};
    const auto id = shared->next_id++;
    shared->pending.emplace(id, &attempt);
    const Forget forget{*shared, id};
    if (shared->refuses()) attempt.reply = shared->not_connected();
    while (!attempt.reply && shared->state != State::connected && Clock::now() < attempt.wake.expiry())
        co_await attempt.wake.async_wait(as_tuple(use_awaitable));
    if (!attempt.reply && shared->state == State::connected) {
        attempt.published = true;
        link->publish(id, attempt.subject, event.body, event.id, headers);
        while (!attempt.reply && Clock::now() < attempt.wake.expiry())
            co_await attempt.wake.async_wait(as_tuple(use_awaitable));
    }
    NatsReply reply;
    if (attempt.reply) reply = std::move(*attempt.reply);
    else if (!attempt.published) reply = shared->not_connected();
    co_return nats_outcome(reply, NatsAttempt{attempt.subject, shared->servers, timeout});
}

void NatsTransport::update(const Config& config) {
    auto options = nats_link_options(config, destination_);
    subject_ = subject_or_throw(config);
    timeout_ = config.timeout;
    shared_->servers = redact_url(config.url);
    std::erase_if(retired_, [](const auto& link) {
        if (!link->finished()) return false;
        link->stop(std::chrono::milliseconds(0));
        return true;
    });
    // A new concurrency alone opens no new connection: its pending limit comes with the next link.
    options.max_pending_replies = link_->options().max_pending_replies;
    if (options == link_->options()) return;
    link_->detach();
    link_->close();
    retired_.push_back(std::move(link_));
    open_link(std::move(options));
}

void NatsTransport::retire() {
    link_->close();
    for (auto& link : retired_) link->close();
}

bool NatsTransport::accepts(const Config& config) const { return is_nats_url(config.url); }

std::size_t NatsTransport::open_connections() const { return shared_->state == State::connected ? 1 : 0; }

void NatsTransport::check(const Config& config) {
    (void)subject_or_throw(config);
    check_nats_link_options(nats_link_options(config, "check"));
}

}  // namespace avr_webhookd
