#pragma once

#include <avr_webhookd/common/signature_mode.hpp>
#include <avr_webhookd/delivery/header_list.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace avr_webhookd {

inline constexpr std::string_view secret_header = "X-AVR-WEBHOOK-SECRET";
inline constexpr std::string_view standard_id_header = "webhook-id";
inline constexpr std::string_view standard_timestamp_header = "webhook-timestamp";
inline constexpr std::string_view standard_signature_header = "webhook-signature";

// Lower-case hex of HMAC-SHA256(key, data), as Node's digest('hex') prints it.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);
// Standard base64 alphabet with '=' padding.
std::string base64_encode(std::string_view bytes);
// Accepts padded or unpadded standard base64; nullopt on any other character or a bad length.
std::optional<std::string> base64_decode(std::string_view text);

// Produces the secret/signature headers of one delivery attempt. Keys are decoded once, here.
class Signer {
public:
    // An empty secret means: no secret headers at all. The secret must have passed validate().
    Signer(SignatureMode mode, std::string secret);

    // Error text when `secret` cannot be used with `mode`, nullopt when it can.
    static std::optional<std::string> validate(SignatureMode mode, std::string_view secret);

    // Appends the headers for one attempt at `unix_seconds` (standard mode signs every attempt
    // anew). `event_id` must already be a validated header-safe value.
    void headers(std::string_view event_id, std::string_view body, std::int64_t unix_seconds, HeaderList& out) const;

    SignatureMode mode() const { return mode_; }
    bool enabled() const { return !secret_.empty(); }

private:
    SignatureMode mode_;
    std::string secret_;
    std::vector<std::string> standard_keys_;  // one raw key per space-separated secret
};

// Looks a request header up by name (case-insensitively); nullopt when absent.
using HeaderLookup = std::function<std::optional<std::string_view>(std::string_view name)>;

struct Verification {
    bool ok = false;
    std::string reason;  // why it failed; empty when ok
    explicit operator bool() const { return ok; }
};

inline constexpr std::chrono::seconds standard_timestamp_tolerance{300};

// The receiver's side: checks the secret headers of a request. An empty secret accepts all.
// plain: X-AVR-WEBHOOK-SECRET equals the secret; hmac-sha256: it equals the hex HMAC of the
// body; standard: one of the webhook-signature entries matches one of the secrets and
// webhook-timestamp is within `tolerance` of `now_unix_seconds`. Comparisons are constant-time.
Verification verify(SignatureMode mode, std::string_view secret, const HeaderLookup& header, std::string_view body,
                    std::int64_t now_unix_seconds, std::chrono::seconds tolerance = standard_timestamp_tolerance);

}  // namespace avr_webhookd
