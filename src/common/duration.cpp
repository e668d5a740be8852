#include <avr_webhookd/common/duration.hpp>

#include <array>
#include <charconv>
#include <cstdint>
#include <limits>

namespace avr_webhookd {

namespace {

struct Unit {
    std::string_view suffix;
    std::int64_t milliseconds;
};

// Largest first, so format_duration picks the coarsest exact unit.
constexpr std::array<Unit, 4> units{{{"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}}};

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
    const auto digits_end = text.find_first_not_of("0123456789");
    const auto number = text.substr(0, digits_end);
    const auto suffix = digits_end == std::string_view::npos ? std::string_view{} : text.substr(digits_end);
    if (number.empty()) {
        return std::nullopt;
    }
    std::int64_t count = 0;
    const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), count);
    if (error != std::errc{} || end != number.data() + number.size()) {
        return std::nullopt;  // out of range
    }
    std::int64_t scale = 1;
    if (!suffix.empty()) {
        scale = 0;
        for (const auto& unit : units) {
            if (unit.suffix == suffix) {
                scale = unit.milliseconds;
            }
        }
        if (scale == 0) {
            return std::nullopt;
        }
    }
    if (count > std::numeric_limits<std::int64_t>::max() / scale) {
        return std::nullopt;
    }
    return std::chrono::milliseconds{count * scale};
}

std::string format_duration(std::chrono::milliseconds duration) {
    const auto count = duration.count();
    if (count == 0) {
        return "0ms";
    }
    for (const auto& unit : units) {
        if (count % unit.milliseconds == 0) {
            return std::to_string(count / unit.milliseconds) + std::string{unit.suffix};
        }
    }
    return std::to_string(count) + "ms";
}

}  // namespace avr_webhookd
