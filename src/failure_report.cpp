#include <avr_webhookd/failure_report.hpp>

#include <cctype>
#include <cstdio>

namespace avr_webhookd {
namespace {

bool is_control(unsigned char byte) { return byte < 0x20 || byte == 0x7f; }

std::string upper_case(std::string_view text) {
    std::string upper(text);
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return upper;
}

std::string display_code(const AttemptOutcome& outcome) {
    if (!outcome.code.empty()) return single_line(outcome.code);
    if (outcome.status != 0) return "HTTP " + std::to_string(outcome.status);
    return "UNKNOWN";
}

// Length of the well-formed UTF-8 sequence starting at text[i] (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0 when the bytes there are not one.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    unsigned char second_min = 0x80, second_max = 0xbf;
    if (lead < 0x80) return 1;
    if (lead >= 0xc2 && lead <= 0xdf) {
        length = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
        length = 3;
        if (lead == 0xe0) second_min = 0xa0;
        if (lead == 0xed) second_max = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
        length = 4;
        if (lead == 0xf0) second_min = 0x90;
        if (lead == 0xf4) second_max = 0x8f;
    } else {
        return 0;
    }
    if (i + length > text.size()) return 0;
    for (std::size_t k = 1; k < length; ++k) {
        const auto byte = static_cast<unsigned char>(text[i + k]);
        const auto min = k == 1 ? second_min : static_cast<unsigned char>(0x80);
        const auto max = k == 1 ? second_max : static_cast<unsigned char>(0xbf);
        if (byte < min || byte > max) return 0;
    }
    return length;
}

// A JSON string literal that always parses: escapes quotes, backslashes and control characters,
// and replaces each byte of invalid UTF-8 with U+FFFD.
void append_json_string(std::string& out, std::string_view text) {
    static constexpr char hex_digits[] = "0123456789abcdef";
    out.push_back('"');
    for (std::size_t i = 0; i < text.size();) {
        const auto byte = static_cast<unsigned char>(text[i]);
        switch (byte) {
        case '"': out.append("\\\""); break;
        case '\\': out.append("\\\\"); break;
        case '\n': out.append("\\n"); break;
        case '\r': out.append("\\r"); break;
        case '\t': out.append("\\t"); break;
        case '\b': out.append("\\b"); break;
        case '\f': out.append("\\f"); break;
        default:
            if (byte < 0x20) {
                out.append("\\u00");
                out.push_back(hex_digits[byte >> 4]);
                out.push_back(hex_digits[byte & 0xf]);
            } else if (const auto length = utf8_sequence_length(text, i); length > 0) {
                out.append(text.substr(i, length));
                i += length;
                continue;
            } else {
                out.append("\\ufffd");
            }
        }
        ++i;
    }
    out.push_back('"');
}

void append_json_member(std::string& out, std::string_view key, std::string_view value) {
    append_json_string(out, key);
    out.push_back(':');
    append_json_string(out, value);
}

std::string utc_millis(std::chrono::system_clock::time_point when) {
    using namespace std::chrono;
    const auto millis = floor<milliseconds>(when);
    const auto day = floor<days>(millis);
    const year_month_day date{day};
    const hh_mm_ss time{millis - day};
    char text[40];
    std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                  static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                  static_cast<unsigned>(date.day()), static_cast<int>(time.hours().count()),
                  static_cast<int>(time.minutes().count()),
                  static_cast<int>(time.seconds().count()),
                  static_cast<int>(time.subseconds().count()));
    return text;
}

bool is_json_object_text(std::string_view body) {
    return body.size() >= 2 && body.front() == '{' && body.back() == '}';
}

}  // namespace

std::string single_line(std::string_view text) {
    std::string line;
    line.reserve(text.size());
    bool pending_space = false;
    for (char c : text) {
        if (is_control(static_cast<unsigned char>(c)) || c == ' ') {
            pending_space = true;
            continue;
        }
        if (pending_space && !line.empty()) line.push_back(' ');
        pending_space = false;
        line.push_back(c);
    }
    return line;
}

std::string failure_block(std::string_view event_type, const AttemptOutcome& last,
                          std::string_view url_for_log) {
    const auto code = display_code(last);
    auto message = single_line(last.message);
    if (message.empty()) message = code;
    const auto status = last.status != 0 ? std::to_string(last.status) : std::string("..");

    std::string block;
    block += "[WEBHOOK][" + upper_case(single_line(event_type)) + "] Retry failed\n";
    block += "Webhook Error:\n";
    block += "Message: " + message + "\n";
    block += "Code: " + code + "\n";
    block += "URL: " + single_line(url_for_log) + "\n";
    block += "Method: POST\n";
    block += "Status: " + status;
    return block;
}

std::string dead_letter_line(std::string_view event_id, std::string_view body,
                             std::string_view reason, const AttemptOutcome& last, int attempts,
                             std::chrono::system_clock::time_point when) {
    std::string line;
    line.reserve(body.size() + event_id.size() + reason.size() + last.message.size() + 160);
    line.push_back('{');
    append_json_member(line, "id", event_id);
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
    append_json_member(line, "time", utc_millis(when));
    line.append("}}");
    return line;
}

}  // namespace avr_webhookd
