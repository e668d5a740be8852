#pragma once

#include <avr_webhookd/common/event.hpp>
#include <avr_webhookd/delivery/attempt_outcome.hpp>
#include <avr_webhookd/ops/recent_failures.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace avr_webhookd {

// The text of a given-up event shared by the log and the dead-letter file.

// The specification's failure block, lines joined by '\n', no trailing newline:
//   [WEBHOOK][CALL_STARTED] Retry failed
//   Webhook Error:
//   Message: <human-readable reason>
//   Code: <code>
//   URL: <url>
//   Method: POST
//   Status: <HTTP status, or nothing after "Status: " when there was none>
// `method` is POST for webhooks, PUBLISH for a NATS JetStream destination (whose Status is the
// JetStream API's error code, when it answered with one). The type is upper-cased. Every inserted value is made
// single-line, so a server's message cannot forge log lines. An empty message falls back to the code, an empty code to
// "HTTP <status>" or "UNKNOWN".
std::string failure_block(std::string_view event_type, const AttemptOutcome& last, std::string_view url_for_log,
                          std::string_view method = "POST");

// One dead-letter NDJSON line, without its newline: the event as an intake line plus a failure:
//   {"id":"<id>","uuid":...,"type":...,"timestamp":...,"payload":{...},
//    "failure":{"reason":"...","code":"...","message":"...","status":503|null,"attempts":4,
//               "time":"2026-01-02T03:04:05.678Z"}}
// `body` is the event's compact POST body ({"uuid":...}); it is spliced in, not re-parsed.
// Should a body ever not be a JSON object, it is kept as the string "body" so nothing is lost.
// Strings are JSON-escaped; invalid UTF-8 in them becomes U+FFFD so the line always parses.
// `status` is null when no response was read.
// `destination` (when not empty) names the destination the event failed for, as the member
// "destination" after "id": a replay delivers the line to that destination only.
std::string dead_letter_line(std::string_view event_id, std::string_view body, std::string_view reason,
                             const AttemptOutcome& last, int attempts, std::chrono::system_clock::time_point when,
                             std::string_view destination = {});

// What /status shows of a failed attempt (`given_up` empty: it will be retried) or of an event
// given up with reason `given_up`: the message made single-line, valid UTF-8 and at most 300
// bytes, and the failure block with `url` shown as its origin (no credentials, path or query).
FailureRecord failure_record(const Event& event, const AttemptOutcome& outcome, int attempt, std::string_view given_up,
                             std::string_view url,
                             std::chrono::system_clock::time_point when = std::chrono::system_clock::now());

}  // namespace avr_webhookd
