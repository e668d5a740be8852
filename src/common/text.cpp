#include <avr_webhookd/common/text.hpp>

#include <algorithm>

namespace avr_webhookd {
namespace {

bool is_control_or_space(char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte <= 0x20 || byte == 0x7f;
}

char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

}  // namespace

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ascii_lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

std::string ascii_upper(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = ascii_upper(c);
    return out;
}

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), text.begin(),
                                                      [](char a, char b) { return ascii_lower(a) == ascii_lower(b); });
}

bool is_printable_ascii(char c) { return c >= 0x20 && c <= 0x7e; }

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t");
    if (first == std::string_view::npos) return {};
    return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

std::string single_line(std::string_view text) {
    std::string line;
    line.reserve(text.size());
    bool pending_space = false;
    for (const char c : text) {
        if (is_control_or_space(c)) {
            pending_space = true;
            continue;
        }
        if (pending_space && !line.empty()) line.push_back(' ');
        pending_space = false;
        line.push_back(c);
    }
    return line;
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += separator;
        out += items[i];
    }
    return out;
}

std::string_view without_trailing_newlines(std::string_view text) {
    while (text.ends_with('\n') || text.ends_with('\r')) text.remove_suffix(1);
    return text;
}

}  // namespace avr_webhookd
