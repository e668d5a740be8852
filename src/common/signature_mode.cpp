#include <avr_webhookd/common/signature_mode.hpp>

namespace avr_webhookd {

std::optional<SignatureMode> parse_signature_mode(std::string_view text) {
    if (text == "plain") return SignatureMode::plain;
    if (text == "hmac-sha256") return SignatureMode::hmac_sha256;
    if (text == "standard") return SignatureMode::standard;
    return std::nullopt;
}

std::string_view to_string(SignatureMode mode) {
    switch (mode) {
    case SignatureMode::plain:
        return "plain";
    case SignatureMode::hmac_sha256:
        return "hmac-sha256";
    case SignatureMode::standard:
        return "standard";
    }
    return "unknown";
}

}  // namespace avr_webhookd
