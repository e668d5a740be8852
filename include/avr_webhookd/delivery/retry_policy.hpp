#pragma once

#include <avr_webhookd/delivery/attempt_outcome.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

enum class Verdict { delivered, retry, give_up };

struct Decision {
    Verdict verdict = Verdict::give_up;
    std::chrono::milliseconds delay{0};  // with Verdict::retry: wait this long before the next try
    // With Verdict::give_up, why: "permanent HTTP 400", "redirect to <Location> not followed",
    // "retry budget exhausted (4 attempts)", "max_age exceeded".
    std::string reason;
};

struct RetrySettings {
    int retry = 0;  // extra attempts after the first; -1: no limit but max_age
    std::chrono::milliseconds base{1000};
    std::chrono::milliseconds max_delay{60000};
    std::chrono::milliseconds max_age{3600000};  // zero or less: no age limit
};

// Decides, after each attempt, whether an event is delivered, retried (and after how long) or
// given up. Pure: time and randomness come in as arguments.
//
// Classification: 2xx is delivered. 3xx is permanent (redirects are not followed: a POST that
// follows one silently loses its body). Connection, DNS, TLS and protocol errors, timeouts,
// resets, 408, 425, 429 and 5xx are retried; any other status is permanent. NATS JetStream
// (delivery/nats_outcome.hpp): a PubAck is delivered; no responders, timeouts and a connection
// that is down are retried, and so are JetStream API errors with a retryable code (503, 500);
// JetStream errors with another code (400, 404) and authorization failures are permanent.
//
// Backoff before attempt n+1 uses "equal jitter": with cap = min(max_delay, base * 2^(n-1)), the
// wait is cap/2 + random_unit * cap/2, i.e. uniform in [cap/2, cap). Half of it is fixed, so
// waits still double from one attempt to the next (the ranges do not overlap until the cap is
// reached), and the random half spreads out receivers' recovering thundering herds. The wait
// never exceeds max_delay and, unless max_delay < base/2, never drops below base/2.
//
// Retry-After on 429 and 503 lengthens the wait: delay = min(max_delay, max(backoff,
// retry_after)). The server's wish is honoured up to the cap, and never shortens our backoff.
//
// Budget: with retry = R >= 0 the event is given up after attempt R+1. max_age is checked
// against the time the next attempt would start (age + delay): if that is at or past max_age,
// the event is given up now instead of waiting for nothing.
class RetryPolicy {
public:
    explicit RetryPolicy(RetrySettings settings);

    // attempt: 1 for the first try. age: time since the event was accepted.
    // random_unit: a number in [0,1) for jitter (injected so tests are deterministic).
    Decision decide(int attempt, const AttemptOutcome& outcome, std::chrono::milliseconds age,
                    double random_unit) const;

    // The wait after failed attempt `attempt` (see above). Overflow-safe for any attempt.
    std::chrono::milliseconds backoff(int attempt, double random_unit) const;

    const RetrySettings& settings() const { return settings_; }

private:
    RetrySettings settings_;
};

// 408, 425, 429 and 5xx.
bool is_retryable_status(int status);

// A Retry-After header value: delta-seconds, or an HTTP date (IMF-fixdate, RFC 850 or asctime).
// A date in the past gives zero. Garbage gives nullopt. Huge delta-seconds saturate.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::system_clock::time_point now);

}  // namespace avr_webhookd
