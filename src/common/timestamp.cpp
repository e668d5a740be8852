#include <avr_webhookd/common/timestamp.hpp>

#include <cstdio>
#include <optional>

namespace avr_webhookd {
namespace {

bool read_digits(std::string_view text, std::size_t position, std::size_t count, int& value) {
    if (position + count > text.size()) return false;
    value = 0;
    for (std::size_t i = position; i < position + count; ++i) {
        if (text[i] < '0' || text[i] > '9') return false;
        value = value * 10 + (text[i] - '0');
    }
    return true;
}

int days_in_month(int year, int month) {
    static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

}  // namespace

void append_utc_millis(std::string& out, std::chrono::system_clock::time_point time) {
    using namespace std::chrono;
    const auto millis_since_epoch = floor<milliseconds>(time);
    const auto day = floor<days>(millis_since_epoch);
    const year_month_day date{day};
    const hh_mm_ss clock{millis_since_epoch - day};
    char buffer[32];
    const int length =
        std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(date.year()),
                      static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                      static_cast<int>(clock.hours().count()), static_cast<int>(clock.minutes().count()),
                      static_cast<int>(clock.seconds().count()), static_cast<int>(clock.subseconds().count()));
    out.append(buffer, static_cast<std::size_t>(length));
}

std::string format_utc_millis(std::chrono::system_clock::time_point time) {
    std::string out;
    append_utc_millis(out, time);
    return out;
}

std::optional<std::chrono::system_clock::time_point> parse_iso8601_datetime(std::string_view text) {
    int year, month, day, hour, minute, second;
    if (!read_digits(text, 0, 4, year) || text.size() < 19 || text[4] != '-' || !read_digits(text, 5, 2, month) ||
        text[7] != '-' || !read_digits(text, 8, 2, day) || (text[10] != 'T' && text[10] != 't') ||
        !read_digits(text, 11, 2, hour) || text[13] != ':' || !read_digits(text, 14, 2, minute) || text[16] != ':' ||
        !read_digits(text, 17, 2, second))
        return std::nullopt;
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 ||
        second > 60)
        return std::nullopt;
    using namespace std::chrono;
    std::size_t position = 19;
    nanoseconds fraction{0};
    if (position < text.size() && text[position] == '.') {
        const std::size_t first_digit = ++position;
        long long digits = 0;
        while (position < text.size() && text[position] >= '0' && text[position] <= '9' && position - first_digit < 9)
            digits = digits * 10 + (text[position++] - '0');
        if (position == first_digit || (position < text.size() && text[position] >= '0' && text[position] <= '9'))
            return std::nullopt;  // no digit, or more than nine
        for (auto scale = position - first_digit; scale < 9; ++scale) digits *= 10;
        fraction = nanoseconds(digits);
    }
    const std::string_view zone = text.substr(position);
    int zone_hours = 0, zone_minutes = 0, sign = 1;
    if (zone != "Z" && zone != "z") {
        if (zone.empty() || (zone[0] != '+' && zone[0] != '-')) return std::nullopt;
        sign = zone[0] == '-' ? -1 : 1;
        const bool colon = zone.size() == 6 && zone[3] == ':';
        if (!colon && zone.size() != 5) return std::nullopt;
        if (!read_digits(zone, 1, 2, zone_hours) || !read_digits(zone, colon ? 4 : 3, 2, zone_minutes) ||
            zone_hours > 23 || zone_minutes > 59)
            return std::nullopt;
    }
    // Nanoseconds since 1970 hold about 1678..2261: a date beyond is valid text, placed at the edge.
    if (year > 2261) return system_clock::time_point::max();
    if (year < 1679) return system_clock::time_point::min();
    const sys_days date = year_month_day{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                                         std::chrono::day{static_cast<unsigned>(day)}};
    const auto local = date + hours(hour) + minutes(minute) + seconds(second) + fraction;
    const auto offset = minutes(sign * (zone_hours * 60 + zone_minutes));
    return time_point_cast<system_clock::duration>(local - offset);
}

bool is_iso8601_datetime(std::string_view text) { return parse_iso8601_datetime(text).has_value(); }

}  // namespace avr_webhookd
