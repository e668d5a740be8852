#include <avr_webhookd/intake/http_intake_handler.hpp>

#include <avr_webhookd/common/js_json.hpp>
#include <avr_webhookd/common/text.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <stdexcept>

namespace avr_webhookd {

namespace {

constexpr unsigned retry_after_full = 1;   // seconds: the queue drains at delivery speed
constexpr unsigned retry_after_spool = 5;  // a full or failing disk takes longer

using Digest = std::array<unsigned char, EVP_MAX_MD_SIZE>;

Digest sha256(std::string_view text) {
    Digest digest{};
    unsigned int size = 0;
    EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr);
    return digest;
}

// Both sides hashed first, so the comparison takes the same time whatever the lengths.
bool secret_matches(std::string_view presented, std::string_view expected) {
    const auto a = sha256(presented);
    const auto b = sha256(expected);
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

HttpIntakeResponse json_response(unsigned status, std::string body) {
    HttpIntakeResponse response;
    response.status = status;
    response.body = std::move(body);
    return response;
}

}  // namespace

std::string http_intake_error_body(std::string_view message) {
    std::string body = "{\"ok\":false,\"error\":";
    append_js_string(body, message);
    body.append("}");
    return body;
}

bool is_json_content_type(std::string_view content_type) {
    const auto media = ascii_lower(trim(content_type.substr(0, content_type.find(';'))));
    if (media == "application/json") return true;
    return media.starts_with("application/") && media.ends_with("+json");
}

HttpIntakeOptions http_intake_options(const Config& config) {
    HttpIntakeOptions options;
    options.max_body = config.max_line;
    options.secret = config.intake_secret;
    options.allow_unknown_types = config.allow_unknown_types;
    options.queue_full = config.queue_full;
    options.respond_types = config.respond_types;
    options.respond_timeout = config.respond_timeout;
    return options;
}

HttpIntakeHandler::HttpIntakeHandler(HttpIntakeOptions options, EventSink& sink, Metrics& metrics)
    : options_(std::move(options)),
      sink_(sink),
      metrics_(metrics),
      parser_(EventParserOptions{options_.allow_unknown_types}) {}

void HttpIntakeHandler::update(HttpIntakeOptions options) {
    options_ = std::move(options);
    parser_.set_options(EventParserOptions{options_.allow_unknown_types});
}

HttpIntakeResponse HttpIntakeHandler::reject(unsigned status, std::string_view reason, std::string_view message) {
    metrics_.count_http_rejected(reason);
    return json_response(status, http_intake_error_body(message));
}

HttpIntakeResponse HttpIntakeHandler::unavailable(std::string_view reason, std::string_view message) {
    auto response = reject(503, reason, message);
    response.retry_after_seconds = reason == "spool_write_failed" ? retry_after_spool : retry_after_full;
    return response;
}

HttpIntakeResponse HttpIntakeHandler::answer_response(const std::optional<EventSink::Answer>& answer,
                                                      std::string_view event_id) {
    if (answer && answer->status != 0) {
        HttpIntakeResponse response;
        response.status = static_cast<unsigned>(answer->status);
        response.body = answer->body;  // unchanged: AVR Core reads sts_url from it
        return response;
    }
    if (answer)
        return json_response(502, http_intake_error_body("no answer from the receiver for event " +
                                                         std::string(event_id) + ": " + answer->error));
    return json_response(504,
                         http_intake_error_body("no answer from the receiver within respond_timeout=" +
                                                std::to_string(options_.respond_timeout.count()) + "ms for event " +
                                                std::string(event_id) + "; the event stays queued for delivery"));
}

HttpIntakeResponse HttpIntakeHandler::too_large() {
    ++metrics_.events_received;
    ++metrics_.http_events_received;
    return reject(413, "line_too_long",
                  "request body too large: more than max_line=" + std::to_string(options_.max_body) + " bytes");
}

HttpIntakeResponse HttpIntakeHandler::not_durable(std::string_view event_id) {
    auto response = json_response(
        503, http_intake_error_body("the event (id " + std::string{event_id} +
                                    ") was written to the spool, but the disk did not confirm it in time; it will "
                                    "be delivered if the write completes, and sending it again may duplicate it"));
    response.retry_after_seconds = retry_after_spool;
    return response;
}

HttpIntakeResponse HttpIntakeHandler::internal_error(std::string_view what) {
    return reject(500, "internal_error",
                  "internal error while handling this request (" + std::string{what} +
                      "): the event was not accepted; send it again");
}

HttpIntakeResponse HttpIntakeHandler::bad_request(std::string_view why) {
    return json_response(400, http_intake_error_body(why));
}

HttpIntakeDecision HttpIntakeHandler::handle(const HttpIntakeRequest& request,
                                             std::chrono::system_clock::time_point now, RoomWait room) {
    HttpIntakeDecision decision;
    if (request.method != "POST") {
        decision.response = json_response(405, http_intake_error_body("method not allowed: events are POSTed"));
        decision.response.allow = "POST";
        return decision;
    }
    if (room == RoomWait::may_wait) {  // counted once, not again after waiting for room
        ++metrics_.events_received;
        ++metrics_.http_events_received;
    }
    if (!options_.secret.empty() && !(request.secret && secret_matches(*request.secret, options_.secret))) {
        decision.response =
            reject(401, "unauthorized", request.secret ? "wrong X-AVR-WEBHOOK-SECRET" : "missing X-AVR-WEBHOOK-SECRET");
        return decision;
    }
    if (!request.content_type || !is_json_content_type(*request.content_type)) {
        decision.response =
            reject(415, "unsupported_media_type",
                   "Content-Type must be application/json, got " +
                       (request.content_type ? "\"" + std::string{request.content_type->substr(0, 100)} + "\""
                                             : std::string{"none"}));
        return decision;
    }
    if (request.body.size() > options_.max_body) {
        decision.response =
            reject(413, "line_too_long",
                   "request body too large: more than max_line=" + std::to_string(options_.max_body) + " bytes");
        return decision;
    }
    auto parsed = parser_.parse(request.body, now, ids_);
    if (auto* rejection = std::get_if<RejectReason>(&parsed)) {
        decision.response = reject(400, rejection->reason, rejection->message);
        return decision;
    }
    Event& event = std::get<Event>(parsed);
    if (event.body.size() > 2 * options_.max_body) {
        decision.response = reject(413, "too_large",
                                   "the event is larger than 2 x max_line=" + std::to_string(options_.max_body) +
                                       " bytes once its numbers are written out as JSON.stringify does");
        return decision;
    }
    if (!sink_.has_room()) {
        if (options_.queue_full == QueueFullPolicy::block && room == RoomWait::may_wait) {
            decision.kind = HttpIntakeDecision::Kind::wait_for_room;
            return decision;
        }
        decision.response = unavailable("queue_full",
                                        "queue full (max_queue or max_queue_bytes reached): the event "
                                        "was not accepted; send it again later");
        return decision;
    }
    return submit(std::move(event));
}

HttpIntakeDecision HttpIntakeHandler::submit(Event&& event) {
    HttpIntakeDecision decision;
    decision.event_id = event.id;
    const bool respond = std::find(options_.respond_types.begin(), options_.respond_types.end(), event.type) !=
                         options_.respond_types.end();
    auto slot = respond ? std::make_shared<HttpAnswerSlot>() : nullptr;
    const auto receipt = respond ? sink_.submit_for_answer(std::move(event),
                                                           [slot](EventSink::Answer answer) {
                                                               if (slot->answer) return;
                                                               slot->answer = std::move(answer);
                                                               if (slot->on_ready) slot->on_ready();
                                                           })
                                 : sink_.submit(std::move(event));
    switch (receipt.admission) {
    case EventSink::Admission::queued:
    case EventSink::Admission::filtered: {
        if (respond) {
            decision.kind = HttpIntakeDecision::Kind::respond_with_answer;
            decision.answer = std::move(slot);
            decision.ticket = receipt.ticket;  // the answer, too, goes out once the event is durable
            return decision;
        }
        std::string body = "{\"ok\":true,\"id\":";
        append_js_string(body, decision.event_id);
        body.append("}");
        decision.kind = HttpIntakeDecision::Kind::respond_when_durable;
        decision.ticket = receipt.ticket;
        decision.response = json_response(200, std::move(body));
        return decision;
    }
    case EventSink::Admission::not_stored:
        decision.response = unavailable("spool_write_failed", receipt.detail);
        return decision;
    case EventSink::Admission::dead_lettered:
        decision.response = unavailable("queue_full",
                                        "queue full (max_queue reached): the event was written to the "
                                        "dead-letter file, not queued");
        return decision;
    case EventSink::Admission::shutting_down:
        decision.response = unavailable("shutting_down",
                                        "the daemon is shutting down: the event was written to the "
                                        "dead-letter file, not queued");
        return decision;
    case EventSink::Admission::unknown_destination:
        decision.response = reject(422, "unknown_destination", receipt.detail);
        return decision;
    case EventSink::Admission::full:
        decision.response = unavailable("queue_full",
                                        "queue full (max_queue reached) and no dead-letter file: the "
                                        "event was not accepted");
        return decision;
    case EventSink::Admission::staged:  // only inside a batch, and this intake opens none
        throw std::logic_error("http intake: an event was staged outside a batch");
    }
    return decision;
}

}  // namespace avr_webhookd
