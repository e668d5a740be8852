#pragma once

#include <avr_webhookd/common/uuid.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/intake/event_parser.hpp>
#include <avr_webhookd/intake/event_sink.hpp>
#include <avr_webhookd/ops/metrics.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

// What the HTTP intake reads of a request: AVR Core's own webhook POST (see the field notes,
// "call_initiated is a question"). Views into the parsed request; nothing is copied.
struct HttpIntakeRequest {
    std::string_view method;  // as sent, e.g. "POST"
    std::string_view target;  // any path is accepted
    std::optional<std::string_view> content_type;
    std::optional<std::string_view> secret;  // X-AVR-WEBHOOK-SECRET
    std::string_view body;
};

// One response of the HTTP intake; the server adds Content-Length and Connection.
struct HttpIntakeResponse {
    unsigned status = 200;
    std::string body;                             // JSON: {"ok":true,"id":...} or {"ok":false,"error":...}
    std::string allow;                            // "POST" with 405
    std::optional<unsigned> retry_after_seconds;  // with 503
};

// What the server does with a request after handle().
//
// The receiver's answer to a respond-type event (respond_types, e.g. call_initiated), shared by
// the sink's answer handler and the server waiting for it (within respond_timeout).
struct HttpAnswerSlot {
    std::optional<EventSink::Answer> answer;
    std::function<void()> on_ready;  // set by the server: wakes its wait
};

struct HttpIntakeDecision {
    enum class Kind {
        respond,               // send `response` now
        respond_when_durable,  // the event was taken: send `response` once the spool is durable through `ticket`
        wait_for_room,         // queue full with queue_full = block: wait for room, then handle() again
        respond_with_answer,   // a respond-type event was taken: wait for `answer`, then answer_response()
    };
    Kind kind = Kind::respond;
    std::shared_ptr<HttpAnswerSlot> answer;  // with respond_with_answer
    HttpIntakeResponse response;
    std::uint64_t ticket = 0;
    std::string event_id;  // when an event was taken, for the log
};

struct HttpIntakeOptions {
    std::size_t max_body = 65536;  // max_line: the largest body taken, in bytes
    std::string secret;            // intake_secret; "" = no check (loopback only, see load_config)
    bool allow_unknown_types = false;
    QueueFullPolicy queue_full = QueueFullPolicy::block;
    std::vector<std::string> respond_types{"call_initiated"};  // answered with the receiver's reply
    std::chrono::milliseconds respond_timeout{2500};
};

HttpIntakeOptions http_intake_options(const Config& config);

// Whether the server may still wait for room before answering 503.
enum class RoomWait { may_wait, expired };

// The HTTP intake's request handling, sans-io: a parsed request in, a decision out. Validation is
// the socket's (EventParser); accepted events go to the same EventSink. Statuses: 200 taken,
// 400 invalid event (the parser's reason, naming the field), 401 wrong or missing secret, 405
// any method but POST (every path accepts POST, so the resource exists: 405 with Allow, not
// 404), 413 a body over max_line, 415 a content type that is not JSON, 503 with Retry-After
// when the queue is full or the spool cannot store. Nothing is queued unless the answer is 200.
class HttpIntakeHandler {
public:
    HttpIntakeHandler(HttpIntakeOptions options, EventSink& sink, Metrics& metrics);
    void update(HttpIntakeOptions options);
    const HttpIntakeOptions& options() const { return options_; }

    HttpIntakeDecision handle(const HttpIntakeRequest& request, std::chrono::system_clock::time_point now,
                              RoomWait room = RoomWait::may_wait);
    // A body past max_body (Content-Length or chunks), answered before it is read to its end.
    HttpIntakeResponse too_large();
    // A respond-type event's response: the receiver's status and body passed through unchanged;
    // 502 when it was given up without a response, 504 when none came within respond_timeout.
    HttpIntakeResponse answer_response(const std::optional<EventSink::Answer>& answer, std::string_view event_id);
    // The spool did not confirm the event within the server's wait.
    HttpIntakeResponse not_durable(std::string_view event_id);
    // An exception while handling a request (a bug, bad_alloc): 500, the event was not taken.
    HttpIntakeResponse internal_error(std::string_view what);
    // The server could not take a request as HTTP (bad framing, header too large).
    HttpIntakeResponse bad_request(std::string_view why);

private:
    HttpIntakeResponse reject(unsigned status, std::string_view reason, std::string_view message);
    HttpIntakeResponse unavailable(std::string_view reason, std::string_view message);
    HttpIntakeDecision submit(Event&& event);

    HttpIntakeOptions options_;
    EventSink& sink_;
    Metrics& metrics_;
    UuidGenerator ids_;
    EventParser parser_;
};

// {"ok":false,"error":"..."}, the body of every error response.
std::string http_intake_error_body(std::string_view message);
// application/json, with parameters (charset) or not, in any case; also application/<x>+json.
bool is_json_content_type(std::string_view content_type);

}  // namespace avr_webhookd
