#pragma once

#include <optional>
#include <string_view>

namespace avr_webhookd {

// How the webhook secret is presented to the receiver (setting `signature`). Shared vocabulary
// of the configuration, the signer (delivery/signature.hpp) and the test receiver.
enum class SignatureMode {
    plain,        // X-AVR-WEBHOOK-SECRET: <secret>  (what AVR Core and its receivers do)
    hmac_sha256,  // X-AVR-WEBHOOK-SECRET: <hex HMAC-SHA256(secret, body)>
    standard,     // Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature
};

// "plain", "hmac-sha256", "standard"
std::optional<SignatureMode> parse_signature_mode(std::string_view text);
std::string_view to_string(SignatureMode mode);

}  // namespace avr_webhookd
