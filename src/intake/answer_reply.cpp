#include <avr_webhookd/intake/answer_reply.hpp>

#include <avr_webhookd/common/duration.hpp>
#include <avr_webhookd/common/js_json.hpp>

#include <boost/json/parse.hpp>

namespace avr_webhookd {

std::string answer_body_json(std::string_view body) {
    std::string out;
    boost::system::error_code ec;
    const auto value = body.empty() ? boost::json::value{} : boost::json::parse(body, ec);
    if (!body.empty() && !ec) {
        append_js_json(out, value);  // compact: a pretty-printed body must not break the NDJSON framing
    } else {
        append_js_string(out, body);
    }
    return out;
}

std::string answer_reply(std::uint64_t line, std::string_view id, const std::optional<EventSink::Answer>& answer,
                         std::chrono::milliseconds respond_timeout) {
    const bool answered = answer && answer->status != 0;
    std::string reply = answered ? "{\"ok\":true" : "{\"ok\":false";
    reply.append(",\"line\":").append(std::to_string(line)).append(",\"id\":");
    append_js_string(reply, id);
    if (answered) {
        reply.append(",\"status\":").append(std::to_string(answer->status)).append(",\"response\":");
        reply.append(answer_body_json(answer->body));
    } else if (answer) {  // the event ended without a response: nothing more will come
        reply.append(",\"error\":");
        append_js_string(reply, "no answer from the receiver: " + answer->error);
        reply.append(",\"queued\":false");
    } else {
        reply.append(",\"error\":");
        append_js_string(reply,
                         "no answer from the receiver within respond_timeout=" + format_duration(respond_timeout) +
                             "; the event stays queued for delivery (retries, dead letters)");
        reply.append(",\"queued\":true");
    }
    reply.append("}\n");
    return reply;
}

}  // namespace avr_webhookd
