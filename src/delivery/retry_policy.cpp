#include <avr_webhookd/delivery/retry_policy.hpp>

#include <avr_webhookd/common/text.hpp>

#include <algorithm>
#include <array>
#include <limits>

namespace avr_webhookd {

using std::chrono::milliseconds;

bool is_retryable_status(int status) {
    return status == 408 || status == 425 || status == 429 || (status >= 500 && status <= 599);
}

RetryPolicy::RetryPolicy(RetrySettings settings) : settings_(settings) {}

milliseconds RetryPolicy::backoff(int attempt, double random_unit) const {
    const auto max_delay = std::max<milliseconds::rep>(settings_.max_delay.count(), 0);
    auto cap = std::clamp<milliseconds::rep>(settings_.base.count(), 0, max_delay);
    // Double step by step rather than shifting, so that no attempt count can overflow.
    for (int step = 1; step < attempt && cap < max_delay; ++step) cap = cap > max_delay / 2 ? max_delay : cap * 2;

    const double unit = std::clamp(random_unit, 0.0, 1.0);
    const auto fixed_half = cap / 2;
    const auto random_span = cap - fixed_half;
    const auto random_part = static_cast<milliseconds::rep>(unit * static_cast<double>(random_span));
    // random_unit is documented as < 1; keep an exact 1.0 (or rounding) from reaching the cap.
    return milliseconds{fixed_half + std::min(random_part, std::max<milliseconds::rep>(random_span - 1, 0))};
}

Decision RetryPolicy::decide(int attempt, const AttemptOutcome& outcome, milliseconds age, double random_unit) const {
    if (outcome.kind == FailureKind::auth) return {Verdict::give_up, milliseconds{0}, "permanent " + outcome.code};
    if (outcome.kind == FailureKind::jetstream && !is_retryable_status(outcome.status))
        return {Verdict::give_up, milliseconds{0}, "permanent " + outcome.code};
    const bool got_response = outcome.kind == FailureKind::none || outcome.kind == FailureKind::http_status;
    if (got_response) {
        const int status = outcome.status;
        if (status >= 200 && status <= 299) return {Verdict::delivered, milliseconds{0}, {}};
        if (status >= 300 && status <= 399) {
            const std::string target = outcome.location.empty() ? "(no Location)" : outcome.location;
            return {Verdict::give_up, milliseconds{0},
                    "redirect to " + target + " not followed (HTTP " + std::to_string(status) + ")"};
        }
        if (!is_retryable_status(status))
            return {Verdict::give_up, milliseconds{0}, "permanent HTTP " + std::to_string(status)};
    }

    if (settings_.retry >= 0 && attempt > settings_.retry) {
        return {Verdict::give_up, milliseconds{0},
                "retry budget exhausted (" + std::to_string(attempt) + (attempt == 1 ? " attempt)" : " attempts)")};
    }

    auto delay = backoff(attempt, random_unit);
    const bool honours_retry_after = outcome.status == 429 || outcome.status == 503;
    if (got_response && honours_retry_after && outcome.retry_after)
        delay = std::min(std::max(delay, *outcome.retry_after), settings_.max_delay);

    const auto max_age = settings_.max_age;
    if (max_age.count() > 0 && (age >= max_age || delay >= max_age - age))
        return {Verdict::give_up, milliseconds{0}, "max_age exceeded"};
    return {Verdict::retry, delay, {}};
}

namespace {

// A tiny left-to-right reader for the three HTTP date formats (RFC 9110, section 5.6.7).
class DateReader {
public:
    explicit DateReader(std::string_view text) : text_(text) {}

    bool at_end() const { return position_ == text_.size(); }
    char peek(std::size_t ahead = 0) const {
        return position_ + ahead < text_.size() ? text_[position_ + ahead] : '\0';
    }

    bool literal(std::string_view expected) {
        if (text_.substr(position_, expected.size()) != expected) return false;
        position_ += expected.size();
        return true;
    }

    // Exactly `count` digits.
    std::optional<int> number(std::size_t count) {
        int value = 0;
        for (std::size_t i = 0; i < count; ++i) {
            const char c = peek(i);
            if (c < '0' || c > '9') return std::nullopt;
            value = value * 10 + (c - '0');
        }
        position_ += count;
        return value;
    }

    // Returns the index of the matching name, consuming it.
    template <std::size_t N>
    std::optional<unsigned> one_of(const std::array<std::string_view, N>& names) {
        for (unsigned i = 0; i < N; ++i)
            if (literal(names[i])) return i;
        return std::nullopt;
    }

private:
    std::string_view text_;
    std::size_t position_ = 0;
};

constexpr std::array<std::string_view, 7> short_day_names{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> long_day_names{"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                         "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 12> month_names{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct DateFields {
    int year = 0;
    unsigned month = 0;  // 1..12
    int day = 0;
    int hour = 0, minute = 0, second = 0;
};

bool read_time_of_day(DateReader& reader, DateFields& fields) {
    const auto hour = reader.number(2);
    if (!hour || !reader.literal(":")) return false;
    const auto minute = reader.number(2);
    if (!minute || !reader.literal(":")) return false;
    const auto second = reader.number(2);
    if (!second) return false;
    fields.hour = *hour;
    fields.minute = *minute;
    fields.second = *second;
    return true;
}

bool read_month(DateReader& reader, DateFields& fields) {
    const auto month = reader.one_of(month_names);
    if (!month) return false;
    fields.month = *month + 1;
    return true;
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (after "Sun, ").
bool read_imf_fixdate(DateReader& reader, DateFields& fields) {
    const auto day = reader.number(2);
    if (!day || !reader.literal(" ") || !read_month(reader, fields) || !reader.literal(" ")) return false;
    const auto year = reader.number(4);
    if (!year || !reader.literal(" ") || !read_time_of_day(reader, fields)) return false;
    fields.day = *day;
    fields.year = *year;
    return reader.literal(" GMT");
}

// RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" (after "Sunday, "). A two-digit year more than 50
// years in the future means the most recent past year with those digits (RFC 9110).
bool read_rfc850_date(DateReader& reader, DateFields& fields, int current_year) {
    const auto day = reader.number(2);
    if (!day || !reader.literal("-") || !read_month(reader, fields) || !reader.literal("-")) return false;
    const auto two_digit_year = reader.number(2);
    if (!two_digit_year || !reader.literal(" ") || !read_time_of_day(reader, fields)) return false;
    int year = current_year - current_year % 100 + *two_digit_year;
    if (year > current_year + 50) year -= 100;
    fields.day = *day;
    fields.year = year;
    return reader.literal(" GMT");
}

// asctime: "Sun Nov  6 08:49:37 1994" (after "Sun ").
bool read_asctime_date(DateReader& reader, DateFields& fields) {
    if (!read_month(reader, fields) || !reader.literal(" ")) return false;
    const auto day = reader.literal(" ") ? reader.number(1) : reader.number(2);
    if (!day || !reader.literal(" ") || !read_time_of_day(reader, fields) || !reader.literal(" ")) return false;
    const auto year = reader.number(4);
    if (!year) return false;
    fields.day = *day;
    fields.year = *year;
    return true;
}

std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view text,
                                                        std::chrono::system_clock::time_point now) {
    using namespace std::chrono;
    DateReader reader(text);
    DateFields fields;
    bool parsed = false;
    if (reader.one_of(long_day_names)) {
        const int current_year = static_cast<int>(year_month_day{floor<days>(now)}.year());
        parsed = reader.literal(", ") && read_rfc850_date(reader, fields, current_year);
    } else if (reader.one_of(short_day_names)) {
        if (reader.literal(", ")) parsed = read_imf_fixdate(reader, fields);
        else parsed = reader.literal(" ") && read_asctime_date(reader, fields);
    }
    if (!parsed || !reader.at_end()) return std::nullopt;

    const year_month_day date{year{fields.year}, month{fields.month}, day{static_cast<unsigned>(fields.day)}};
    if (!date.ok() || fields.hour > 23 || fields.minute > 59 || fields.second > 60) return std::nullopt;
    return sys_days{date} + hours{fields.hour} + minutes{fields.minute} + seconds{fields.second};
}

}  // namespace

std::optional<milliseconds> parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) {
    value = trim(value);
    if (value.empty()) return std::nullopt;

    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        constexpr auto max_seconds = std::numeric_limits<milliseconds::rep>::max() / 1000;
        milliseconds::rep seconds = 0;
        for (char c : value) {
            seconds = seconds * 10 + (c - '0');
            if (seconds >= max_seconds) return milliseconds{max_seconds * 1000};
        }
        return milliseconds{seconds * 1000};
    }

    const auto date = parse_http_date(value, now);
    if (!date) return std::nullopt;
    if (*date <= now) return milliseconds{0};
    return std::chrono::ceil<milliseconds>(*date - now);
}

}  // namespace avr_webhookd
