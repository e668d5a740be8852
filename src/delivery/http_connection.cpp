#include <avr_webhookd/delivery/http_connection.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace avr_webhookd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using Clock = HttpConnection::Clock;

// Shared with the handlers of the waits armed on the connection (the watch, the deadline timer),
// which run after it is gone when it closes with one pending.
struct HttpConnection::Readiness {
    enum class Watch { unarmed, armed, fired };
    HttpConnection* connection = nullptr;  // null once it is gone
    Watch watch = Watch::unarmed;
    std::uint64_t watch_number = 0;             // of the watch armed last: an older one's completion is ignored
    std::optional<Clock::time_point> deadline;  // of the exchange under way
    bool timer_armed = false;
    bool timed_out = false;  // the deadline passed: the socket's operations were cancelled
};

namespace {

using Readiness = HttpConnection::Readiness;

struct WatchFired {
    std::shared_ptr<Readiness> readiness;
    std::uint64_t number;
    void operator()(const boost::system::error_code& ec) const {
        if (ec != asio::error::operation_aborted && readiness->watch_number == number)
            readiness->watch = Readiness::Watch::fired;
    }
};

}  // namespace

// The deadline timer is not set anew for each exchange: it fires at the deadline it was given and,
// if the exchange under way then has a later one, waits again until that one. So it costs nothing
// per request, and fires about once per `timeout` on a busy connection.
struct DeadlinePassed {
    std::shared_ptr<Readiness> readiness;
    void operator()(const boost::system::error_code& ec) const {
        if (ec == asio::error::operation_aborted) return;  // set to an earlier deadline, or the connection closed
        auto& state = *readiness;
        state.timer_armed = false;
        if (!state.connection || !state.deadline) return;  // gone, or idle
        if (Clock::now() < *state.deadline) {
            state.connection->arm_deadline(*state.deadline);
            return;
        }
        state.timed_out = true;
        boost::system::error_code ignored;
        state.connection->tcp().socket().cancel(ignored);
    }
};

HttpConnection::HttpConnection(beast::tcp_stream stream, std::shared_ptr<std::size_t> counter,
                               HttpResponseLimits limits)
    : count(std::move(counter)),
      plain(std::move(stream)),
      reader(limits),
      readiness_(std::make_shared<Readiness>()),
      deadline_timer_(tcp().get_executor()) {
    readiness_->connection = this;
    boost::system::error_code ignored;  // reads and writes here are non-blocking calls; Asio's own stay as they are
    tcp().socket().non_blocking(true, ignored);
}

HttpConnection::HttpConnection(beast::tcp_stream stream, std::shared_ptr<ssl::context> context,
                               std::shared_ptr<std::size_t> counter, HttpResponseLimits limits)
    : count(std::move(counter)),
      tls_context(std::move(context)),
      tls(std::in_place, std::move(stream), *tls_context),
      reader(limits),
      readiness_(std::make_shared<Readiness>()),
      deadline_timer_(tcp().get_executor()) {
    readiness_->connection = this;
    boost::system::error_code ignored;
    tcp().socket().non_blocking(true, ignored);
}

HttpConnection::~HttpConnection() { readiness_->connection = nullptr; }

bool HttpConnection::take() {
    if (readiness_->watch != Readiness::Watch::fired) return true;
    if (peer_closed_or_wrote()) return false;
    readiness_->watch = Readiness::Watch::unarmed;  // it was stale; begin_exchange() arms a new watch
    return true;
}

// What the idle-time peek used to do for every request, now only after readiness while idle.
bool HttpConnection::peer_closed_or_wrote() {
    char byte;
    const auto got = ::recv(tcp().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return got >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

void HttpConnection::begin_exchange(Clock::time_point deadline) {
    if (!reused) tcp().expires_never();  // the deadline is the timer's from here; connect() left its own
    arm_deadline(deadline);
    if (readiness_->watch == Readiness::Watch::unarmed) arm_watch();
}

boost::system::error_code HttpConnection::send_now(Request& request) {
    boost::system::error_code ec;
    auto sent = plain->socket().send(request, 0, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
    for (auto& buffer : request) {
        const auto part = std::min(sent, buffer.size());
        buffer += part;
        sent -= part;
    }
    return ec;
}

bool HttpConnection::readable() const { return readiness_->watch == Readiness::Watch::fired; }

bool HttpConnection::timed_out() const { return readiness_->timed_out; }

boost::system::error_code HttpConnection::read_now(HttpResponseReader& reader) {
    readiness_->watch = Readiness::Watch::unarmed;  // fired, or about to fire for what this reads
    bool filled = false;                            // the last read filled its buffer
    std::size_t taken = 0;
    while (reader.state() == HttpResponseReader::State::reading) {
        if (taken >= read_budget) {  // a peer that keeps the socket full: the event loop goes first
            readiness_->watch = Readiness::Watch::fired;
            return {};
        }
        const auto space = reader.prepare();
        boost::system::error_code ec;
        const auto got = tls ? tls->read_some(asio::buffer(space.data(), space.size()), ec)
                             : plain->socket().read_some(asio::buffer(space.data(), space.size()), ec);
        reader.commit(got);
        taken += got;
        if (ec == asio::error::would_block || ec == asio::error::try_again) return {};
        if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
            reader.finish();
            return {};
        }
        if (ec) return ec;
        filled = got == space.size();
        // A plain socket read short of the buffer is empty now: what comes next is reported as
        // readiness. A TLS stream may hold decrypted or undecrypted bytes beyond what it returned.
        if (!tls && !filled) return {};
    }
    // The response ended exactly where a read's buffer did: the socket may hold more, which no
    // readiness will report (it came with what was read).
    if (!tls && filled && reader.reusable() && more_after_full_read()) reader.feed("?");
    return {};
}

bool HttpConnection::more_after_full_read() {
    char byte;
    boost::system::error_code ec;
    const auto got = plain->socket().read_some(asio::buffer(&byte, 1), ec);
    return got > 0 || (ec && ec != asio::error::would_block && ec != asio::error::try_again);
}

void HttpConnection::end_exchange() { readiness_->deadline.reset(); }

void HttpConnection::park() { arm_watch(); }

void HttpConnection::arm_watch() {
    readiness_->watch = Readiness::Watch::armed;
    tcp().socket().async_wait(asio::socket_base::wait_read, WatchFired{readiness_, ++readiness_->watch_number});
}

void HttpConnection::arm_deadline(Clock::time_point deadline) {
    auto& state = *readiness_;
    state.deadline = deadline;
    state.timed_out = false;
    if (state.timer_armed && deadline_timer_.expiry() <= deadline) return;  // it fires first, then waits again
    deadline_timer_.expires_at(deadline);  // a later one is cancelled: its handler sees operation_aborted
    deadline_timer_.async_wait(DeadlinePassed{readiness_});
    state.timer_armed = true;
}

}  // namespace avr_webhookd
