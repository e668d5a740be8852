#include "receiver_answer.hpp"

#include <boost/json.hpp>

namespace avr_webhookd::receiver_detail {

namespace json = boost::json;

namespace {

std::string json_text(const json::object& object, std::string_view key) {
    const json::value* value = object.if_contains(key);
    if (!value) return {};
    if (const json::string* text = value->if_string()) return std::string(*text);
    return json::serialize(*value);
}

}  // namespace

std::vector<std::string> describe_delivery(const json::object& body) {
    const std::string type = json_text(body, "type");
    const std::string uuid = json_text(body, "uuid");
    const std::string timestamp = json_text(body, "timestamp");
    static const json::object no_payload;
    const json::value* payload_value = body.if_contains("payload");
    const json::object& payload =
        payload_value && payload_value->is_object() ? payload_value->get_object() : no_payload;

    std::vector<std::string> lines{"Received webhook: " + type + " for call " + uuid};
    if (type == "call_started") lines.push_back("Call started: " + uuid + " at " + timestamp);
    else if (type == "call_ended") lines.push_back("Call ended: " + uuid + " at " + timestamp);
    else if (type == "interruption") lines.push_back("Interruption detected: " + uuid + " at " + timestamp);
    else if (type == "transcription")
        lines.push_back("Transcription [" + json_text(payload, "role") + "]: " + json_text(payload, "text"));
    else if (type == "dtmf_digit") lines.push_back("DTMF digit: " + json_text(payload, "digit"));
    else if (type == "call_initiated") lines.push_back("Call initiated: " + uuid + " " + json::serialize(payload));
    else if (type == "error") lines.push_back("Call error: " + json_text(payload, "message"));
    return lines;
}

Answer plan_answer(const ReceiverOptions& options, std::uint64_t request_number, bool is_post,
                   const Verification& authentication, const std::optional<json::object>& body) {
    const auto within = [request_number](int first_n) {
        return first_n > 0 && request_number <= static_cast<std::uint64_t>(first_n);
    };
    if (within(options.drop_first)) return {0, true, true, "dropped (drop-first)", {}};
    if (!is_post) return {405, false, false, "only POST is accepted", {}};
    if (!authentication) return {401, false, false, "authentication failed: " + authentication.reason, {}};
    if (within(options.redirect_first)) return {302, false, true, "redirected (redirect-first)", {}};
    if (within(options.fail_first)) return {options.fail_status, false, true, "failed on purpose (fail-first)", {}};
    if (!body) return {400, false, false, "the body is not a JSON object", {}};
    const auto forced = options.status_for_type.find(json_text(*body, "type"));
    if (forced != options.status_for_type.end())
        return {forced->second, false, true, "answered on purpose for this type (status-for)", {}};
    if (!options.sts_url.empty() && json_text(*body, "type") == "call_initiated") {
        json::object routing;
        routing["sts_url"] = options.sts_url + "?uuid=" + json_text(*body, "uuid");
        return {200, false, false, {}, json::serialize(routing)};
    }
    return {200, false, false, {}, {}};
}

std::optional<json::object> parse_body(std::string_view body) {
    boost::system::error_code error;
    json::value value = json::parse(body, error);
    if (error || !value.is_object()) return std::nullopt;
    return std::move(value.get_object());
}

}  // namespace avr_webhookd::receiver_detail
