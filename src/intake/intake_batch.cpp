// The Unix-socket intake's group writes: the lines of one read are handed to the sink as one
// batch (EventSink::begin_batch), so that the spool writes their records with one write(2)
// instead of one each. The batch's events are taken or refused together when it ends, so their
// replies wait until then, and every other reply of the connection meanwhile waits behind them
// to keep line order. A batch ends before the reader waits for anything (its replies, room in
// the queue, the next read), before a line whose producer waits for a routing answer, and when
// its replies could fill max_reply_backlog.
#include "intake_connection.hpp"

#include <avr_webhookd/common/js_json.hpp>
#include <avr_webhookd/intake/refusal.hpp>

#include <exception>
#include <string>
#include <vector>

namespace avr_webhookd {

namespace {

constexpr std::size_t max_batch_lines = 256;
// The most a staged event's reply comes to besides its id (escaped at most 6 to 1): "ok", or a
// refusal with the spool's error.
constexpr std::size_t ok_reply_overhead = 256;
constexpr std::size_t id_escape_factor = 6;

}  // namespace

void IntakeServer::begin_batch(Connection& c) {
    if (batch_owner_ == &c) return;
    if (batch_owner_ != nullptr) end_batch(*batch_owner_);  // not expected: batches end before any wait
    sink_.begin_batch();
    batch_owner_ = &c;
}

void IntakeServer::defer_staged(Connection& c, std::uint64_t number, std::string_view id, bool acknowledge) {
    const std::size_t offset = c.deferred_text.size();
    if (acknowledge) c.deferred_text.append(id);
    c.deferred.push_back(Connection::Deferred{number, true, acknowledge, ReplyBacklog::Kind::promised, 0, offset,
                                              acknowledge ? id.size() : 0});
    c.deferred_bound += ok_reply_overhead + id_escape_factor * id.size();
}

// Whether the batch's replies, once queued, could reach max_reply_backlog (a staged event counted
// with the longest reply it can get), or it holds max_batch_lines lines.
bool IntakeServer::batch_full(const Connection& c) const {
    if (batch_owner_ != &c) return false;
    return c.deferred.size() >= max_batch_lines || c.replies.bytes() + c.deferred_bound >= c.replies.limit();
}

void IntakeServer::end_batch(Connection& c) {
    if (batch_owner_ != &c) return;
    batch_owner_ = nullptr;
    EventSink::Receipt outcome(EventSink::Admission::queued);
    try {
        outcome = sink_.end_batch();
    } catch (const std::exception& error) {  // a bug or bad_alloc: the producer sends them again
        const auto what = Logger::sanitize(error.what());
        logger_.error("intake: " + c.name() + ": internal error while writing a batch of lines: " + what);
        outcome = EventSink::Receipt(EventSink::Admission::not_stored, 0,
                                     "internal error while storing this line (" + what +
                                         "): the event may not have been accepted; send it again");
    }
    // Taken out first: should a reply throw (bad_alloc), no later batch sends these again.
    std::vector<Connection::Deferred> deferred;
    std::string texts;
    deferred.swap(c.deferred);
    texts.swap(c.deferred_text);
    c.deferred_bound = 0;
    const auto refused = refusal_of(outcome);
    for (const auto& reply : deferred) {
        const std::string_view text(texts.data() + reply.offset, reply.length);
        if (!reply.staged) queue_reply(c, text, reply.kind, reply.ticket);
        else if (refused) reject(c, reply.number, refused->reason, refused->message);
        else if (reply.acknowledge) queue_ok(c, reply.number, text, outcome.ticket);
    }
    deferred.clear();  // their capacity, for the next batch
    texts.clear();
    c.deferred.swap(deferred);
    c.deferred_text.swap(texts);
}

// The reader is leaving by an exception (a bug, bad_alloc) with the batch open: it ends here, so
// that the sink is not left batching; the connection goes, and its replies with it.
void IntakeServer::abandon_batch(Connection& c) noexcept {
    if (batch_owner_ != &c) return;
    try {
        end_batch(c);
    } catch (...) {
        batch_owner_ = nullptr;
    }
}

void IntakeServer::queue_ok(Connection& c, std::uint64_t number, std::string_view id, std::uint64_t ticket) {
    std::string& reply = c.reply_text;
    reply.assign("{\"ok\":true,\"line\":");
    reply.append(std::to_string(number)).append(",\"id\":");
    append_js_string(reply, id);
    reply.append("}\n");
    queue_reply(c, reply, ReplyBacklog::Kind::promised, ticket);  // "ok" only once the spool keeps it
}

}  // namespace avr_webhookd
