#include "avr_webhookd/delivery/signature.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <string>
#include <vector>

using namespace avr_webhookd;

namespace {

const std::string standard_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const std::string standard_id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr std::int64_t standard_timestamp = 1614265330;
const std::string standard_body = R"({"test": 2432232314})";
const std::string standard_expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

std::map<std::string, std::string> as_map(const HeaderList& headers) {
    std::map<std::string, std::string> map;
    for (const auto& [name, value] : headers) map[std::string(name)] = value;
    return map;
}

HeaderLookup lookup_in(const HeaderList& headers) {
    return [&headers](std::string_view name) -> std::optional<std::string_view> {
        for (const auto& [key, value] : headers) {
            if (key.size() == name.size() && std::equal(key.begin(), key.end(), name.begin(), [](char a, char b) {
                    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
                }))
                return std::string_view(value);
        }
        return std::nullopt;
    };
}

HeaderList signed_headers(SignatureMode mode, const std::string& secret, std::string_view body,
                          std::int64_t at = standard_timestamp) {
    HeaderList headers;
    Signer(mode, secret).headers(standard_id, body, at, headers);
    return headers;
}

}  // namespace

TEST_CASE("signature: mode names round-trip", "[signature]") {
    for (auto mode : {SignatureMode::plain, SignatureMode::hmac_sha256, SignatureMode::standard})
        CHECK(parse_signature_mode(to_string(mode)) == mode);
    CHECK(to_string(SignatureMode::hmac_sha256) == "hmac-sha256");
    CHECK_FALSE(parse_signature_mode("HMAC"));
    CHECK_FALSE(parse_signature_mode(""));
}

TEST_CASE("signature: HMAC-SHA256 matches RFC 4231 test cases 1 to 4", "[signature]") {
    CHECK(hmac_sha256_hex(std::string(20, '\x0b'), "Hi There") ==
          "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    CHECK(hmac_sha256_hex(std::string(20, '\xaa'), std::string(50, '\xdd')) ==
          "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    std::string key;
    for (char byte = 0x01; byte <= 0x19; ++byte) key.push_back(byte);
    CHECK(hmac_sha256_hex(key, std::string(50, '\xcd')) ==
          "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
}

TEST_CASE("signature: base64 round-trips and rejects malformed input", "[signature]") {
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode("foo") == "Zm9v");
    CHECK(base64_encode("foobar") == "Zm9vYmFy");
    CHECK(base64_decode("Zg==") == "f");
    CHECK(base64_decode("Zg") == "f");
    CHECK(base64_decode("Zm8=") == "fo");
    CHECK(base64_decode("Zm9vYmFy") == "foobar");
    const std::string all_bytes = [] {
        std::string bytes;
        for (int value = 0; value < 256; ++value) bytes.push_back(static_cast<char>(value));
        return bytes;
    }();
    CHECK(base64_decode(base64_encode(all_bytes)) == all_bytes);
    CHECK_FALSE(base64_decode("Zm9v!"));
    CHECK_FALSE(base64_decode("Z"));
    CHECK_FALSE(base64_decode("Zg="));
    CHECK_FALSE(base64_decode("Zm 9v"));
}

TEST_CASE("signature: plain mode sends the secret itself", "[signature]") {
    const auto headers = as_map(signed_headers(SignatureMode::plain, "s3cret", "{}"));
    CHECK(headers == std::map<std::string, std::string>{{"X-AVR-WEBHOOK-SECRET", "s3cret"}});
}

TEST_CASE("signature: an empty secret adds no headers in any mode", "[signature]") {
    for (auto mode : {SignatureMode::plain, SignatureMode::hmac_sha256, SignatureMode::standard}) {
        CHECK(signed_headers(mode, "", "{}").empty());
        CHECK_FALSE(Signer(mode, "").enabled());
    }
}

TEST_CASE("signature: hmac-sha256 mode matches Node's createHmac(...).digest('hex')", "[signature]") {
    // Expected value computed with: printf '%s' BODY | openssl dgst -sha256 -hmac 'my-webhook-secret'
    const std::string body =
        R"({"uuid":"9d2e7c4a-1f3b-4c5d-8e6f-0a1b2c3d4e5f","type":"transcription",)"
        R"("timestamp":"2024-01-01T12:00:00.000Z","payload":{"role":"user","text":"Héllo \"world\""}})";
    const auto headers = as_map(signed_headers(SignatureMode::hmac_sha256, "my-webhook-secret", body));
    CHECK(headers == std::map<std::string, std::string>{
                         {"X-AVR-WEBHOOK-SECRET", "c14711257d93ecd0858f08267640d111b5c46e6e4be734be7d270644097cd9b2"}});
}

TEST_CASE("signature: standard mode reproduces the Standard Webhooks test vector", "[signature]") {
    const auto headers = as_map(signed_headers(SignatureMode::standard, standard_secret, standard_body));
    CHECK(headers == std::map<std::string, std::string>{
                         {"webhook-id", standard_id},
                         {"webhook-timestamp", "1614265330"},
                         {"webhook-signature", standard_expected},
                     });
}

TEST_CASE("signature: standard mode signs with each of several secrets for key rotation", "[signature]") {
    // Second value: printf '%s' 'ID.TS.BODY' | openssl dgst -sha256 -hmac 'old-raw-secret' -binary | base64
    const auto headers =
        as_map(signed_headers(SignatureMode::standard, "  " + standard_secret + "  old-raw-secret ", standard_body));
    CHECK(headers.at("webhook-signature") == standard_expected + " v1,ntmiLt0W+iRCneNuIUINbZMyY+d3z8+5P9XOJfw06gw=");
}

TEST_CASE("signature: standard mode re-signs with the attempt's timestamp", "[signature]") {
    const auto first = as_map(signed_headers(SignatureMode::standard, standard_secret, standard_body, 1000));
    const auto second = as_map(signed_headers(SignatureMode::standard, standard_secret, standard_body, 1001));
    CHECK(first.at("webhook-id") == second.at("webhook-id"));
    CHECK(first.at("webhook-timestamp") == "1000");
    CHECK(second.at("webhook-timestamp") == "1001");
    CHECK(first.at("webhook-signature") != second.at("webhook-signature"));
}

TEST_CASE("signature: validate rejects secrets that cannot be used", "[signature]") {
    CHECK_FALSE(Signer::validate(SignatureMode::plain, "a normal secret"));
    CHECK(Signer::validate(SignatureMode::plain, "line\r\nX-Injected: 1"));
    CHECK(Signer::validate(SignatureMode::plain, "tab\there"));
    CHECK(Signer::validate(SignatureMode::plain, "caf\xc3\xa9"));
    CHECK(Signer::validate(SignatureMode::plain, " padded"));
    CHECK_FALSE(Signer::validate(SignatureMode::hmac_sha256, "any\nbytes\x01"));
    CHECK_FALSE(Signer::validate(SignatureMode::standard, standard_secret));
    CHECK_FALSE(Signer::validate(SignatureMode::standard, "raw-secret " + standard_secret));
    CHECK(Signer::validate(SignatureMode::standard, "whsec_not*base64"));
    CHECK(Signer::validate(SignatureMode::standard, "whsec_"));
    CHECK(Signer::validate(SignatureMode::standard, "   "));
    CHECK_THROWS_AS(Signer(SignatureMode::standard, "whsec_%%%"), std::invalid_argument);
}

TEST_CASE("signature: verify accepts what Signer produces and rejects tampering", "[signature]") {
    const std::string body = R"({"uuid":"u","type":"call_started","timestamp":"t","payload":{}})";
    const std::int64_t now = 1700000000;
    for (auto mode : {SignatureMode::plain, SignatureMode::hmac_sha256, SignatureMode::standard}) {
        const std::string secret = mode == SignatureMode::standard ? standard_secret : "s3cret";
        INFO(to_string(mode));
        const HeaderList headers = signed_headers(mode, secret, body, now);
        CHECK(verify(mode, secret, lookup_in(headers), body, now));
        CHECK_FALSE(verify(mode, secret, lookup_in({}), body, now));
        CHECK_FALSE(verify(mode, secret + "x", lookup_in(headers), body, now));
        CHECK(verify(mode, "", lookup_in({}), body, now));
        if (mode != SignatureMode::plain) CHECK_FALSE(verify(mode, secret, lookup_in(headers), body + " ", now));
    }
}

TEST_CASE("signature: standard verify checks the timestamp tolerance and accepts any rotated key", "[signature]") {
    const HeaderList headers = signed_headers(SignatureMode::standard, standard_secret, standard_body);
    const auto lookup = lookup_in(headers);
    CHECK(verify(SignatureMode::standard, standard_secret, lookup, standard_body, standard_timestamp + 300));
    CHECK(verify(SignatureMode::standard, standard_secret, lookup, standard_body, standard_timestamp - 300));
    const auto late = verify(SignatureMode::standard, standard_secret, lookup, standard_body, standard_timestamp + 301);
    CHECK_FALSE(late);
    CHECK_THAT(late.reason, Catch::Contains("tolerance"));
    CHECK(verify(SignatureMode::standard, "other-key " + standard_secret, lookup, standard_body, standard_timestamp));

    const HeaderList rotated = {{"webhook-id", standard_id},
                                {"webhook-timestamp", "1614265330"},
                                {"webhook-signature", "v1,bm9wZQ== " + standard_expected}};
    CHECK(verify(SignatureMode::standard, standard_secret, lookup_in(rotated), standard_body, standard_timestamp));
    const HeaderList bad_timestamp = {
        {"webhook-id", standard_id}, {"webhook-timestamp", "1614265330x"}, {"webhook-signature", standard_expected}};
    CHECK_FALSE(
        verify(SignatureMode::standard, standard_secret, lookup_in(bad_timestamp), standard_body, standard_timestamp));
}

TEST_CASE("signature: standard verify survives extreme webhook-timestamp values without overflow", "[signature]") {
    // Under UBSan (make sanitize) the old `now - timestamp` aborted here with signed overflow.
    constexpr auto max = std::numeric_limits<std::int64_t>::max();
    constexpr auto min = std::numeric_limits<std::int64_t>::min();
    const std::vector<std::pair<std::string, std::int64_t>> cases{
        {std::to_string(min), 1700000000}, {std::to_string(max), -1700000000}, {std::to_string(min), max},
        {std::to_string(max), min},        {std::to_string(min + 1), 0},       {"-9223372036854775808", 300},
    };
    for (const auto& [timestamp, now] : cases) {
        INFO(timestamp << " at " << now);
        const HeaderList headers = {
            {"webhook-id", standard_id}, {"webhook-timestamp", timestamp}, {"webhook-signature", standard_expected}};
        const auto result = verify(SignatureMode::standard, standard_secret, lookup_in(headers), standard_body, now);
        CHECK_FALSE(result);
        CHECK_THAT(result.reason, Catch::Contains("tolerance"));
    }
    // At the edge of the range, a timestamp within tolerance of `now` still verifies its signature.
    const HeaderList at_max = signed_headers(SignatureMode::standard, standard_secret, standard_body, max);
    CHECK(verify(SignatureMode::standard, standard_secret, lookup_in(at_max), standard_body, max - 300));
    const HeaderList at_min = signed_headers(SignatureMode::standard, standard_secret, standard_body, min);
    CHECK(verify(SignatureMode::standard, standard_secret, lookup_in(at_min), standard_body, min + 300));
}
