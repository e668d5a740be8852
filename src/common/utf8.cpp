#include <avr_webhookd/common/utf8.hpp>

namespace avr_webhookd {

std::optional<std::size_t> find_invalid_utf8(std::string_view text) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t size = text.size();
    std::size_t i = 0;
    while (i < size) {
        const unsigned char lead = bytes[i];
        if (lead < 0x80) {
            ++i;
            continue;
        }
        std::size_t length = 0;
        unsigned char min_second = 0x80, max_second = 0xBF;
        if (lead >= 0xC2 && lead <= 0xDF) {
            length = 2;
        } else if (lead >= 0xE0 && lead <= 0xEF) {
            length = 3;
            if (lead == 0xE0) min_second = 0xA0;       // overlong
            else if (lead == 0xED) max_second = 0x9F;  // UTF-16 surrogates
        } else if (lead >= 0xF0 && lead <= 0xF4) {
            length = 4;
            if (lead == 0xF0) min_second = 0x90;       // overlong
            else if (lead == 0xF4) max_second = 0x8F;  // above U+10FFFF
        } else {
            return i;
        }
        if (i + length > size) return i;
        if (bytes[i + 1] < min_second || bytes[i + 1] > max_second) return i;
        for (std::size_t k = 2; k < length; ++k)
            if ((bytes[i + k] & 0xC0) != 0x80) return i;
        i += length;
    }
    return std::nullopt;
}

std::string repaired_utf8(std::string_view text) {
    std::string repaired;
    repaired.reserve(text.size() + 8);
    while (const auto bad = find_invalid_utf8(text)) {
        repaired.append(text.substr(0, *bad)).append("\xEF\xBF\xBD");
        text.remove_prefix(*bad + 1);
    }
    repaired.append(text);
    return repaired;
}

}  // namespace avr_webhookd
