#include <avr_webhookd/delivery/nats_outcome.hpp>

#include <avr_webhookd/common/text.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace avr_webhookd {

namespace {

AttemptOutcome failure(FailureKind kind, std::string code, std::string message) {
    AttemptOutcome outcome;
    outcome.kind = kind;
    outcome.code = std::move(code);
    outcome.message = std::move(message);
    return outcome;
}

std::string where(const NatsAttempt& attempt) {
    return "subject " + std::string(attempt.subject) + " on " + std::string(attempt.servers);
}

std::string_view string_member(const boost::json::object& object, std::string_view key) {
    const auto* value = object.if_contains(key);
    return value && value->is_string() ? std::string_view(value->get_string()) : std::string_view{};
}

// A JetStream API error: {"error":{"code":503,"err_code":10077,"description":"..."}, ...}.
AttemptOutcome api_error(const boost::json::object& error, const NatsAttempt& attempt) {
    const auto* code = error.if_contains("code");
    const auto* err_code = error.if_contains("err_code");
    AttemptOutcome outcome;
    outcome.kind = FailureKind::jetstream;
    // Its code is an HTTP-like error status; any other number (a 100 that a routing answer would
    // pass on as a final HTTP status, a negative one) is no status.
    const std::int64_t status = code && code->is_int64() ? code->get_int64() : 0;
    outcome.status = status >= 400 && status <= 599 ? static_cast<int>(status) : 0;
    const auto number = err_code && err_code->is_int64() ? std::to_string(err_code->get_int64()) : std::string("0");
    outcome.code = "NATS_JS_" + number;
    const auto description = string_member(error, "description");
    outcome.message = "JetStream error " + number + " (" + std::to_string(outcome.status) + ") publishing to " +
                      where(attempt) + ": " + (description.empty() ? "no description" : std::string(description));
    return outcome;
}

const boost::json::object* api_error_member(const boost::json::object& object) {
    const auto* error = object.if_contains("error");
    return error && error->is_object() ? &error->get_object() : nullptr;
}

bool is_pub_ack(const boost::json::object& object) {
    const auto* seq = object.if_contains("seq");
    return !string_member(object, "stream").empty() && seq && (seq->is_int64() || seq->is_uint64());
}

AttemptOutcome from_message(const std::string& text, const NatsAttempt& attempt) {
    boost::system::error_code ec;
    const auto parsed = boost::json::parse(text, ec);
    if (!ec && parsed.is_object()) {
        const auto& object = parsed.get_object();
        if (const auto* error = api_error_member(object)) return api_error(*error, attempt);
        const auto stream = string_member(object, "stream");
        const auto* seq = object.if_contains("seq");
        if (is_pub_ack(object)) {
            AttemptOutcome stored;
            stored.status = 200;
            stored.body = text;
            const auto* duplicate = object.if_contains("duplicate");
            stored.message =
                "stored in stream " + std::string(stream) + " as sequence " + boost::json::serialize(*seq) +
                (duplicate && duplicate->is_bool() && duplicate->get_bool() ? " (a duplicate: kept once)" : "");
            return stored;
        }
    }
    return failure(FailureKind::protocol, "NATS_INVALID_PUBACK",
                   "the reply to a publish to " + where(attempt) +
                       " is no JetStream PubAck: " + single_line(std::string_view(text).substr(0, 200)));
}

}  // namespace

bool nats_reply_settles(const NatsReply& reply) {
    if (reply.kind != NatsReply::Kind::message) return true;
    boost::system::error_code ec;
    const auto parsed = boost::json::parse(reply.text, ec);
    if (ec || !parsed.is_object()) return false;
    return api_error_member(parsed.get_object()) != nullptr || is_pub_ack(parsed.get_object());
}

AttemptOutcome nats_outcome(const NatsReply& reply, const NatsAttempt& attempt) {
    const auto said = single_line(reply.text);
    switch (reply.kind) {
    case NatsReply::Kind::message:
        return from_message(reply.text, attempt);
    case NatsReply::Kind::no_responders:
        return failure(FailureKind::no_responders, "NATS_NO_RESPONDERS",
                       "no responders for " + where(attempt) +
                           ": no JetStream stream takes this subject, or the stream has no leader right now");
    case NatsReply::Kind::not_connected:
        return failure(FailureKind::connect_failed, "NATS_NOT_CONNECTED",
                       "not connected to any server of " + std::string(attempt.servers) + " within " +
                           std::to_string(attempt.timeout.count()) + "ms" + (said.empty() ? "" : ": " + said));
    case NatsReply::Kind::refused:
        return failure(FailureKind::connect_failed, "NATS_PUBLISH_FAILED",
                       "publish to " + where(attempt) + " failed: " + said);
    case NatsReply::Kind::permissions:
        return failure(FailureKind::auth, "NATS_PERMISSIONS_VIOLATION",
                       "the server refused the publish to " + where(attempt) + ": " + said);
    case NatsReply::Kind::auth_failed:
        return failure(FailureKind::auth, "NATS_AUTHORIZATION_VIOLATION",
                       "the servers of " + std::string(attempt.servers) + " refused the credentials: " + said);
    case NatsReply::Kind::inbox_refused:
        return failure(FailureKind::auth, "NATS_PERMISSIONS_VIOLATION",
                       "the servers of " + std::string(attempt.servers) +
                           " refused the subscription to the reply inbox (allow subscribe to _INBOX.>), so no PubAck "
                           "can come back: " +
                           said);
    case NatsReply::Kind::timeout:
        break;
    }
    return failure(
        FailureKind::timeout, "NATS_TIMEOUT",
        "no PubAck within " + std::to_string(attempt.timeout.count()) + "ms for the publish to " + where(attempt));
}

}  // namespace avr_webhookd
