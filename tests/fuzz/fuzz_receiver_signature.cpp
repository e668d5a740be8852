// The receiver's signature checks (verify, as `avr-webhookd receive` runs them) against headers
// and bodies from the input: never a crash or a signed overflow, whatever the timestamp; never
// an accepted request whose secret or signature does not match what Signer computes; and a
// request that Signer signed itself is accepted, and rejected once its body or time is off.
//
// Input: byte 0 the mode, bytes 1..8 "now" (any int64), then NUL-separated: secret, webhook-id,
// webhook-timestamp, the presented signature (X-AVR-WEBHOOK-SECRET or webhook-signature), body.
#include <avr_webhookd/delivery/signature.hpp>

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using namespace avr_webhookd;

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

std::vector<std::string_view> split(std::string_view text, std::size_t parts) {
    std::vector<std::string_view> out;
    while (out.size() + 1 < parts) {
        const auto nul = text.find('\0');
        out.push_back(text.substr(0, nul));
        text = nul == std::string_view::npos ? std::string_view{} : text.substr(nul + 1);
    }
    out.push_back(text);
    return out;
}

HeaderLookup lookup_in(const HeaderList& headers) {
    return [&headers](std::string_view name) -> std::optional<std::string_view> {
        for (const auto& [key, value] : headers)
            if (key.size() == name.size() && strncasecmp(key.data(), name.data(), key.size()) == 0) return value;
        return std::nullopt;
    };
}

std::set<std::string> words(std::string_view text) {
    std::set<std::string> out;
    std::size_t start = 0;
    while (start < text.size()) {
        const auto space = text.find(' ', start);
        const auto end = space == std::string_view::npos ? text.size() : space;
        if (end > start) out.emplace(text.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

// A request built from the input is accepted only when what it presents is what Signer makes.
void check_input_request(SignatureMode mode, std::string_view secret, const std::vector<std::string_view>& field,
                         std::int64_t now) {
    HeaderList presented{{std::string(secret_header), std::string(field[3])},
                         {std::string(standard_id_header), std::string(field[1])},
                         {std::string(standard_timestamp_header), std::string(field[2])},
                         {std::string(standard_signature_header), std::string(field[3])}};
    const Verification result = verify(mode, secret, lookup_in(presented), field[4], now);
    check(result.ok == result.reason.empty());
    // The receiver refuses to start with a secret validate() rejects, so verify never sees one.
    if (!result || secret.empty() || Signer::validate(mode, secret)) return;
    if (mode != SignatureMode::standard) {
        HeaderList expected;
        Signer(mode, std::string(secret)).headers(field[1], field[4], 0, expected);
        check(expected.at(0).second == field[3]);
        return;
    }
    std::int64_t timestamp = 0;
    const auto parsed = std::from_chars(field[2].data(), field[2].data() + field[2].size(), timestamp);
    check(parsed.ec == std::errc{} && parsed.ptr == field[2].data() + field[2].size());
    HeaderList expected;
    Signer(mode, std::string(secret)).headers(field[1], field[4], timestamp, expected);
    // Signer writes the timestamp canonically; an accepted one written otherwise ("+5", "05") was
    // signed over the text as presented, which verify also uses.
    if (std::to_string(timestamp) != field[2]) return;
    bool any = false;
    const auto genuine = words(expected.at(2).second);
    for (const auto& entry : words(field[3])) any |= genuine.contains(entry);
    check(any);
}

// Signer's own headers verify, and stop verifying when the body or the time is off.
void check_signed_request(SignatureMode mode, std::string_view secret, const std::vector<std::string_view>& field,
                          std::int64_t now) {
    if (secret.empty() || Signer::validate(mode, secret)) return;
    HeaderList headers;
    Signer(mode, std::string(secret)).headers(field[1], field[4], now, headers);
    check(verify(mode, secret, lookup_in(headers), field[4], now).ok);
    if (mode != SignatureMode::plain)
        check(!verify(mode, secret, lookup_in(headers), std::string(field[4]) + "x", now));
    if (mode == SignatureMode::standard && now < INT64_MAX - 301)
        check(!verify(mode, secret, lookup_in(headers), field[4], now + 301));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 9) return 0;
    const SignatureMode mode = data[0] % 3 == 0   ? SignatureMode::plain
                               : data[0] % 3 == 1 ? SignatureMode::hmac_sha256
                                                  : SignatureMode::standard;
    std::int64_t now = 0;
    std::memcpy(&now, data + 1, sizeof now);
    const auto field = split(std::string_view(reinterpret_cast<const char*>(data) + 9, size - 9), 5);
    check_input_request(mode, field[0], field, now);
    check_signed_request(mode, field[0], field, now);
    return 0;
}
