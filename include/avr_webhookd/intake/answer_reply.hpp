#pragma once

#include <avr_webhookd/intake/event_sink.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

// The one reply line a producer gets for an event of a respond type (respond_types), ending in
// "\n":
//   answered: {"ok":true,"line":N,"id":"...","status":200,"response":<the body>}
//     (the body as compact JSON when it is JSON, else as a string; "" when empty)
//   no answer (given up without a response, or none within respond_timeout):
//     {"ok":false,"line":N,"id":"...","error":"...","queued":<true when delivery goes on>}
std::string answer_reply(std::uint64_t line, std::string_view id, const std::optional<EventSink::Answer>& answer,
                         std::chrono::milliseconds respond_timeout);

// The receiver's body as JSON text for a reply: compact JSON when it parses, else a JSON string.
std::string answer_body_json(std::string_view body);

}  // namespace avr_webhookd
