#include <avr_webhookd/delivery/retry_policy.hpp>

#include <catch2/catch.hpp>

#include <climits>

using namespace avr_webhookd;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

AttemptOutcome http_outcome(int status) {
    AttemptOutcome outcome;
    outcome.kind = status >= 200 && status <= 299 ? FailureKind::none : FailureKind::http_status;
    outcome.status = status;
    outcome.code = "HTTP " + std::to_string(status);
    return outcome;
}

AttemptOutcome transport_outcome(FailureKind kind, std::string code) {
    AttemptOutcome outcome;
    outcome.kind = kind;
    outcome.code = std::move(code);
    return outcome;
}

RetrySettings settings_with(int retry) {
    RetrySettings settings;
    settings.retry = retry;
    return settings;
}

// 2000-01-01T00:00:00Z
const auto y2k = std::chrono::sys_days{std::chrono::year{2000} / 1 / 1};

}  // namespace

TEST_CASE("retry_policy: retryable statuses", "[retry_policy]") {
    for (int status : {408, 425, 429, 500, 501, 502, 503, 504, 599}) CHECK(is_retryable_status(status));
    for (int status : {0, 100, 200, 201, 301, 400, 401, 403, 404, 409, 410, 413, 422, 426, 499, 600})
        CHECK_FALSE(is_retryable_status(status));
}

TEST_CASE("retry_policy: verdict for each kind of response", "[retry_policy]") {
    const RetryPolicy policy(settings_with(5));
    struct Row {
        int status;
        Verdict verdict;
        const char* reason;
    };
    const Row table[] = {
        {200, Verdict::delivered, ""},
        {201, Verdict::delivered, ""},
        {204, Verdict::delivered, ""},
        {299, Verdict::delivered, ""},
        {400, Verdict::give_up, "permanent HTTP 400"},
        {401, Verdict::give_up, "permanent HTTP 401"},
        {404, Verdict::give_up, "permanent HTTP 404"},
        {422, Verdict::give_up, "permanent HTTP 422"},
        {100, Verdict::give_up, "permanent HTTP 100"},
        {408, Verdict::retry, ""},
        {425, Verdict::retry, ""},
        {429, Verdict::retry, ""},
        {500, Verdict::retry, ""},
        {502, Verdict::retry, ""},
        {503, Verdict::retry, ""},
    };
    for (const auto& row : table) {
        INFO("status " << row.status);
        const auto decision = policy.decide(1, http_outcome(row.status), 0ms, 0.5);
        CHECK(decision.verdict == row.verdict);
        CHECK(decision.reason == row.reason);
        if (row.verdict != Verdict::retry) CHECK(decision.delay == 0ms);
    }
}

TEST_CASE("retry_policy: redirects are permanent and name the Location", "[retry_policy]") {
    const RetryPolicy policy(settings_with(-1));
    auto outcome = http_outcome(301);
    outcome.location = "https://example.com/new";
    const auto decision = policy.decide(1, outcome, 0ms, 0.5);
    CHECK(decision.verdict == Verdict::give_up);
    CHECK(decision.reason == "redirect to https://example.com/new not followed (HTTP 301)");

    const auto without = policy.decide(1, http_outcome(307), 0ms, 0.5);
    CHECK(without.verdict == Verdict::give_up);
    CHECK(without.reason == "redirect to (no Location) not followed (HTTP 307)");
}

TEST_CASE("retry_policy: transport failures are retried", "[retry_policy]") {
    const RetryPolicy policy(settings_with(3));
    for (auto kind : {FailureKind::connect_refused, FailureKind::connect_failed, FailureKind::dns, FailureKind::timeout,
                      FailureKind::reset, FailureKind::tls, FailureKind::protocol}) {
        INFO("kind " << to_string(kind));
        const auto decision = policy.decide(1, transport_outcome(kind, "EX"), 0ms, 0.0);
        CHECK(decision.verdict == Verdict::retry);
        CHECK(decision.delay == 500ms);
    }
}

TEST_CASE("retry_policy: failure kinds have stable names", "[retry_policy]") {
    CHECK(to_string(FailureKind::connect_refused) == "connect_refused");
    CHECK(to_string(FailureKind::http_status) == "http_status");
    CHECK(to_string(FailureKind::none) == "none");
}

TEST_CASE("retry_policy: retry budget edges", "[retry_policy]") {
    const auto refused = transport_outcome(FailureKind::connect_refused, "ECONNREFUSED");

    SECTION("retry = 0 gives up after the first attempt") {
        const auto decision = RetryPolicy(settings_with(0)).decide(1, refused, 0ms, 0.5);
        CHECK(decision.verdict == Verdict::give_up);
        CHECK(decision.reason == "retry budget exhausted (1 attempt)");
    }
    SECTION("retry = 1 allows exactly one more attempt") {
        const RetryPolicy policy(settings_with(1));
        CHECK(policy.decide(1, refused, 0ms, 0.5).verdict == Verdict::retry);
        const auto second = policy.decide(2, refused, 0ms, 0.5);
        CHECK(second.verdict == Verdict::give_up);
        CHECK(second.reason == "retry budget exhausted (2 attempts)");
    }
    SECTION("retry = 3 reports 4 attempts") {
        const RetryPolicy policy(settings_with(3));
        CHECK(policy.decide(3, http_outcome(503), 0ms, 0.5).verdict == Verdict::retry);
        CHECK(policy.decide(4, http_outcome(503), 0ms, 0.5).reason == "retry budget exhausted (4 attempts)");
    }
    SECTION("retry = -1 has no limit but max_age") {
        const RetryPolicy policy(settings_with(-1));
        CHECK(policy.decide(1000, refused, 0ms, 0.5).verdict == Verdict::retry);
        CHECK(policy.decide(INT_MAX, refused, 0ms, 0.5).verdict == Verdict::retry);
        const auto old = policy.decide(1000, refused, 3600s, 0.5);
        CHECK(old.verdict == Verdict::give_up);
        CHECK(old.reason == "max_age exceeded");
    }
    SECTION("a permanent status is reported as such even with budget left or spent") {
        CHECK(RetryPolicy(settings_with(0)).decide(1, http_outcome(400), 0ms, 0.5).reason == "permanent HTTP 400");
        CHECK(RetryPolicy(settings_with(9)).decide(1, http_outcome(400), 0ms, 0.5).reason == "permanent HTTP 400");
    }
    SECTION("success on the last allowed attempt is delivered") {
        CHECK(RetryPolicy(settings_with(0)).decide(1, http_outcome(200), 0ms, 0.5).verdict == Verdict::delivered);
        CHECK(RetryPolicy(settings_with(2)).decide(3, http_outcome(201), 10h, 0.5).verdict == Verdict::delivered);
    }
}

TEST_CASE("retry_policy: max_age is checked against the next attempt's start", "[retry_policy]") {
    RetrySettings settings = settings_with(-1);
    settings.base = 1000ms;
    settings.max_delay = 1000ms;
    settings.max_age = 10000ms;
    const RetryPolicy policy(settings);
    const auto timeout = transport_outcome(FailureKind::timeout, "ETIMEDOUT");
    // random_unit 0 gives exactly cap/2 = 500 ms.
    const auto just_in_time = policy.decide(5, timeout, 9499ms, 0.0);
    CHECK(just_in_time.verdict == Verdict::retry);
    CHECK(just_in_time.delay == 500ms);
    CHECK(policy.decide(5, timeout, 9500ms, 0.0).reason == "max_age exceeded");
    CHECK(policy.decide(5, timeout, 10000ms, 0.0).reason == "max_age exceeded");
    CHECK(policy.decide(5, timeout, 99999ms, 0.0).reason == "max_age exceeded");

    settings.max_age = 0ms;
    CHECK(RetryPolicy(settings).decide(5, timeout, 1000h, 0.0).verdict == Verdict::retry);
}

TEST_CASE("retry_policy: backoff grows exponentially within jitter bounds", "[retry_policy]") {
    RetrySettings settings;
    settings.base = 1000ms;
    settings.max_delay = 60000ms;
    const RetryPolicy policy(settings);

    // Equal jitter: [cap/2, cap) with cap = min(max_delay, base * 2^(n-1)).
    const milliseconds caps[] = {1000ms, 2000ms, 4000ms, 8000ms, 16000ms, 32000ms, 60000ms, 60000ms};
    for (int attempt = 1; attempt <= 8; ++attempt) {
        const auto cap = caps[attempt - 1];
        INFO("attempt " << attempt);
        CHECK(policy.backoff(attempt, 0.0) == cap / 2);
        CHECK(policy.backoff(attempt, 0.5) == cap / 2 + cap / 4);
        CHECK(policy.backoff(attempt, 0.999999) == cap - 1ms);
        CHECK(policy.backoff(attempt, 1.0) == cap - 1ms);  // out of contract, still below cap
        CHECK(policy.backoff(attempt, -3.0) == cap / 2);
    }
    // Before the cap, the slowest wait of attempt n is shorter than the fastest of attempt n+1.
    for (int attempt = 1; attempt < 6; ++attempt)
        CHECK(policy.backoff(attempt, 0.999999) < policy.backoff(attempt + 1, 0.0));
}

TEST_CASE("retry_policy: backoff is overflow-safe and respects odd settings", "[retry_policy]") {
    RetrySettings settings;
    settings.base = 1000ms;
    settings.max_delay = milliseconds::max();
    const RetryPolicy unbounded(settings);
    for (int attempt : {62, 63, 64, 65, 1000, INT_MAX}) {
        const auto wait = unbounded.backoff(attempt, 0.999);
        CHECK(wait > 0ms);
        CHECK(wait <= milliseconds::max());
    }
    CHECK(unbounded.backoff(INT_MAX, 0.0) == milliseconds::max() / 2);

    settings.max_delay = 300ms;  // below base: the cap wins
    CHECK(RetryPolicy(settings).backoff(1, 0.999) < 300ms);
    CHECK(RetryPolicy(settings).backoff(1, 0.0) == 150ms);

    settings.base = 0ms;
    CHECK(RetryPolicy(settings).backoff(10, 0.5) == 0ms);

    settings.base = 1000ms;
    settings.max_delay = 60000ms;
    CHECK(RetryPolicy(settings).backoff(0, 0.0) == 500ms);  // attempt 0 treated as the first
    CHECK(RetryPolicy(settings).backoff(-5, 0.0) == 500ms);
}

TEST_CASE("retry_policy: Retry-After on 429 and 503 lengthens the wait up to the cap", "[retry_policy]") {
    RetrySettings settings = settings_with(-1);
    settings.base = 1000ms;
    settings.max_delay = 60000ms;
    const RetryPolicy policy(settings);

    auto throttled = http_outcome(429);
    throttled.retry_after = 30s;
    CHECK(policy.decide(1, throttled, 0ms, 0.0).delay == 30s);

    auto unavailable = http_outcome(503);
    unavailable.retry_after = 2h;
    CHECK(policy.decide(1, unavailable, 0ms, 0.0).delay == 60s);

    // Shorter than the backoff: the backoff stands.
    unavailable.retry_after = 0ms;
    CHECK(policy.decide(6, unavailable, 0ms, 0.0).delay == 16s);

    // Ignored on other statuses.
    auto bad_gateway = http_outcome(502);
    bad_gateway.retry_after = 30s;
    CHECK(policy.decide(1, bad_gateway, 0ms, 0.0).delay == 500ms);

    // A Retry-After that pushes past max_age gives up.
    settings.max_age = 20s;
    throttled.retry_after = 25s;
    CHECK(RetryPolicy(settings).decide(1, throttled, 0ms, 0.0).reason == "max_age exceeded");
}

TEST_CASE("retry_policy: Retry-After as delta-seconds", "[retry_policy]") {
    const auto now = std::chrono::system_clock::time_point{y2k};
    CHECK(parse_retry_after("120", now) == milliseconds{120000});
    CHECK(parse_retry_after("0", now) == 0ms);
    CHECK(parse_retry_after(" 7\t", now) == 7000ms);
    CHECK(parse_retry_after("99999999999999999999999999", now) ==
          milliseconds{milliseconds::max().count() / 1000 * 1000});
}

TEST_CASE("retry_policy: Retry-After as an HTTP date", "[retry_policy]") {
    using namespace std::chrono;
    const system_clock::time_point now = sys_days{year{1994} / 11 / 6} + 8h + 49min + 7s;

    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now) == 30s);
    CHECK(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now) == 30s);
    CHECK(parse_retry_after("Sun Nov  6 08:49:37 1994", now) == 30s);
    CHECK(parse_retry_after("Mon, 07 Nov 1994 08:49:07 GMT", now) == 24h);
    CHECK(parse_retry_after("Thu, 29 Feb 1996 00:00:00 GMT", now).has_value());

    // Sub-second "now": the wait is rounded up to whole milliseconds.
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now + 250ms + 500us) == 29750ms);
}

TEST_CASE("retry_policy: Retry-After date in the past gives zero", "[retry_policy]") {
    using namespace std::chrono;
    const system_clock::time_point now = sys_days{year{2026} / 3 / 1};
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now) == 0ms);
    CHECK(parse_retry_after("Sun, 01 Mar 2026 00:00:00 GMT", now) == 0ms);
}

TEST_CASE("retry_policy: RFC 850 two-digit years are resolved against now", "[retry_policy]") {
    using namespace std::chrono;
    const system_clock::time_point now = sys_days{year{2026} / 3 / 1};
    // 2070 is 44 years ahead of 2026, within 50: "70" means 2070.
    CHECK(parse_retry_after("Saturday, 01-Mar-70 00:00:00 GMT", now) > milliseconds{0});
    // 2077 is 51 years ahead, so "77" means 1977: in the past.
    CHECK(parse_retry_after("Tuesday, 01-Mar-77 00:00:00 GMT", now) == 0ms);
    CHECK(parse_retry_after("Monday, 02-Mar-26 00:00:00 GMT", now) == 24h);
}

TEST_CASE("retry_policy: Retry-After garbage is rejected", "[retry_policy]") {
    const auto now = std::chrono::system_clock::time_point{y2k};
    for (const char* garbage : {
             "", "   ", "-5", "1.5", "5s", "soon",
             "Sun, 06 Nov 1994 08:49:37",           // no GMT
             "Sun, 06 Nov 1994 08:49:37 UTC",       // wrong zone
             "Sun, 6 Nov 1994 08:49:37 GMT",        // one-digit day in IMF-fixdate
             "Sun, 31 Feb 1994 08:49:37 GMT",       // no such day
             "Sun, 06 Nov 1994 24:00:00 GMT",       // no such hour
             "Sun, 06 Nov 1994 08:60:00 GMT",       // no such minute
             "Sun, 06 Foo 1994 08:49:37 GMT",       // no such month
             "Xyz, 06 Nov 1994 08:49:37 GMT",       // no such day name
             "Sun, 06 Nov 1994 08:49:37 GMT junk",  // trailing text
             "Sunday, 06 Nov 1994 08:49:37 GMT",    // long day name with IMF date
             "Sun, 06-Nov-94 08:49:37 GMT",         // short day name with RFC 850 date
             "Sun Nov 06 08:49:37 1994 GMT",        // asctime has no zone
         }) {
        INFO("value: '" << garbage << "'");
        CHECK_FALSE(parse_retry_after(garbage, now).has_value());
    }
}
