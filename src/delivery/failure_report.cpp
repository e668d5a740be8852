#include <avr_webhookd/delivery/failure_report.hpp>

#include <avr_webhookd/common/js_json.hpp>
#include <avr_webhookd/common/url.hpp>
#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/common/timestamp.hpp>
#include <avr_webhookd/common/utf8.hpp>
#include <avr_webhookd/ops/logger.hpp>

namespace avr_webhookd {
namespace {

std::string display_code(const AttemptOutcome& outcome) {
    if (!outcome.code.empty()) return single_line(outcome.code);
    if (outcome.status != 0) return "HTTP " + std::to_string(outcome.status);
    return "UNKNOWN";
}

// A JSON string literal that always parses, even from a server's invalid UTF-8: each byte that
// is not part of well-formed UTF-8 becomes U+FFFD, then the text is escaped as JSON.stringify does.
void append_json_string(std::string& out, std::string_view text) {
    if (!find_invalid_utf8(text)) {
        append_js_string(out, text);
        return;
    }
    append_js_string(out, repaired_utf8(text));
}

void append_json_member(std::string& out, std::string_view key, std::string_view value) {
    append_json_string(out, key);
    out.push_back(':');
    append_json_string(out, value);
}


bool is_json_object_text(std::string_view body) {
    return body.size() >= 2 && body.front() == '{' && body.back() == '}';
}

}  // namespace

std::string failure_block(std::string_view event_type, const AttemptOutcome& last, std::string_view url_for_log,
                          std::string_view method) {
    const auto code = display_code(last);
    auto message = single_line(last.message);
    if (message.empty()) message = code;
    // Empty without a response, exactly as the specification's block prints it ("Status: ").
    const auto status = last.status != 0 ? std::to_string(last.status) : std::string();

    std::string block;
    block += "[WEBHOOK][" + ascii_upper(single_line(event_type)) + "] Retry failed\n";
    block += "Webhook Error:\n";
    block += "Message: " + message + "\n";
    block += "Code: " + code + "\n";
    block += "URL: " + single_line(url_for_log) + "\n";
    block += "Method: " + std::string(method) + "\n";
    block += "Status: " + status;
    return block;
}

std::string dead_letter_line(std::string_view event_id, std::string_view body, std::string_view reason,
                             const AttemptOutcome& last, int attempts, std::chrono::system_clock::time_point when,
                             std::string_view destination) {
    std::string line;
    line.reserve(body.size() + event_id.size() + reason.size() + last.message.size() + destination.size() + 180);
    line.push_back('{');
    append_json_member(line, "id", event_id);
    if (!destination.empty()) {
        line.push_back(',');
        append_json_member(line, "destination", destination);
    }
    if (is_json_object_text(body)) {
        const auto members = body.substr(1, body.size() - 2);
        if (members.find_first_not_of(" \t\r\n") != std::string_view::npos) {
            line.push_back(',');
            line.append(members);
        }
    } else {
        line.push_back(',');
        append_json_member(line, "body", body);
    }

    line.append(",\"failure\":{");
    append_json_member(line, "reason", reason);
    line.push_back(',');
    append_json_member(line, "code", display_code(last));
    line.push_back(',');
    append_json_member(line, "message", last.message);
    line.append(",\"status\":");
    line.append(last.status != 0 ? std::to_string(last.status) : "null");
    line.append(",\"attempts\":");
    line.append(std::to_string(attempts));
    line.push_back(',');
    append_json_member(line, "time", format_utc_millis(when));
    line.append("}}");
    return line;
}

FailureRecord failure_record(const Event& event, const AttemptOutcome& outcome, int attempt, std::string_view given_up,
                             std::string_view url, std::chrono::system_clock::time_point when) {
    constexpr std::size_t max_message_bytes = 300;
    AttemptOutcome shown;
    shown.status = outcome.status;
    shown.code = Logger::sanitize(single_line(outcome.code), 60);
    shown.message = Logger::sanitize(single_line(outcome.message), max_message_bytes);
    FailureRecord record;
    record.time = when;
    record.event_type = event.type;
    record.event_id = event.id;
    record.call = event.uuid;
    record.attempt = attempt;
    record.code = display_code(shown);
    record.status = outcome.status;
    record.message = shown.message;
    record.given_up = Logger::sanitize(single_line(given_up), 120);
    record.block = failure_block(event.type, shown, url_origin(url));
    return record;
}

}  // namespace avr_webhookd
