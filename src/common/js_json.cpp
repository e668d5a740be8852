#include <avr_webhookd/common/js_json.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>

namespace avr_webhookd {
namespace {

constexpr char hex_digits[] = "0123456789abcdef";

template <class Integer>
void append_integer(std::string& out, Integer number) {
    char buffer[24];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, number);
    out.append(buffer, result.ptr);
}

}  // namespace

void append_js_string(std::string& out, std::string_view text) {
    out.push_back('"');
    std::size_t clean_start = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        out.append(text.data() + clean_start, i - clean_start);
        clean_start = i + 1;
        switch (c) {
        case '"':
            out.append("\\\"");
            break;
        case '\\':
            out.append("\\\\");
            break;
        case '\b':
            out.append("\\b");
            break;
        case '\f':
            out.append("\\f");
            break;
        case '\n':
            out.append("\\n");
            break;
        case '\r':
            out.append("\\r");
            break;
        case '\t':
            out.append("\\t");
            break;
        default:
            out.append("\\u00");
            out.push_back(hex_digits[c >> 4]);
            out.push_back(hex_digits[c & 0xF]);
        }
    }
    out.append(text.data() + clean_start, text.size() - clean_start);
    out.push_back('"');
}

// ECMAScript Number::toString: shortest round-trip digits, plain notation for exponents
// in [-7, 21), exponential ("1.5e+21", "1e-7") outside it.
void append_js_number(std::string& out, double number) {
    if (!std::isfinite(number)) {  // JSON.stringify(Infinity) === "null"
        out.append("null");
        return;
    }
    if (number == 0) {  // covers -0, which JavaScript prints as "0"
        out.push_back('0');
        return;
    }
    char buffer[40];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, number, std::chars_format::scientific);
    std::string_view text(buffer, static_cast<std::size_t>(result.ptr - buffer));
    if (text.front() == '-') {
        out.push_back('-');
        text.remove_prefix(1);
    }
    const auto e_pos = text.find('e');
    std::string digits;
    digits.reserve(20);
    for (char c : text.substr(0, e_pos))
        if (c != '.') digits.push_back(c);
    const int exponent = std::atoi(std::string(text.substr(e_pos + 1)).c_str());
    const int k = static_cast<int>(digits.size());
    const int n = exponent + 1;  // position of the decimal point relative to the digits
    if (k <= n && n <= 21) {
        out.append(digits);
        out.append(static_cast<std::size_t>(n - k), '0');
    } else if (0 < n && n <= 21) {
        out.append(digits, 0, static_cast<std::size_t>(n));
        out.push_back('.');
        out.append(digits, static_cast<std::size_t>(n));
    } else if (-6 < n && n <= 0) {
        out.append("0.");
        out.append(static_cast<std::size_t>(-n), '0');
        out.append(digits);
    } else {
        out.push_back(digits[0]);
        if (k > 1) {
            out.push_back('.');
            out.append(digits, 1);
        }
        out.push_back('e');
        out.push_back(n - 1 >= 0 ? '+' : '-');
        append_integer(out, std::abs(n - 1));
    }
}

void append_js_json(std::string& out, const boost::json::value& value) {
    // JavaScript numbers are doubles: integers beyond 2^53 print as the double they round to.
    constexpr std::int64_t exact_limit = std::int64_t{1} << 53;
    switch (value.kind()) {
    case boost::json::kind::null:
        out.append("null");
        break;
    case boost::json::kind::bool_:
        out.append(value.get_bool() ? "true" : "false");
        break;
    case boost::json::kind::int64: {
        const auto number = value.get_int64();
        if (number >= -exact_limit && number <= exact_limit) append_integer(out, number);
        else append_js_number(out, static_cast<double>(number));
        break;
    }
    case boost::json::kind::uint64: {
        const auto number = value.get_uint64();
        if (number <= static_cast<std::uint64_t>(exact_limit)) append_integer(out, number);
        else append_js_number(out, static_cast<double>(number));
        break;
    }
    case boost::json::kind::double_:
        append_js_number(out, value.get_double());
        break;
    case boost::json::kind::string: {
        const auto& text = value.get_string();
        append_js_string(out, std::string_view(text.data(), text.size()));
        break;
    }
    case boost::json::kind::array: {
        out.push_back('[');
        bool first = true;
        for (const auto& element : value.get_array()) {
            if (!first) out.push_back(',');
            first = false;
            append_js_json(out, element);
        }
        out.push_back(']');
        break;
    }
    case boost::json::kind::object:
        append_js_json(out, value.get_object());
        break;
    }
}

void append_js_json(std::string& out, const boost::json::object& object) {
    out.push_back('{');
    bool first = true;
    for (const auto& member : object) {
        if (!first) out.push_back(',');
        first = false;
        append_js_string(out, std::string_view(member.key().data(), member.key().size()));
        out.push_back(':');
        append_js_json(out, member.value());
    }
    out.push_back('}');
}

}  // namespace avr_webhookd
