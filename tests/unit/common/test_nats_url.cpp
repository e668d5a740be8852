// NATS server lists as the `url` of a JetStream destination, and their redaction.
#include <avr_webhookd/common/url.hpp>

#include <catch2/catch.hpp>

using namespace avr_webhookd;

namespace {

NatsUrl must_parse(std::string_view text) {
    std::string error;
    auto url = parse_nats_url(text, &error);
    INFO("URL: " << text << " error: " << error);
    REQUIRE(url.has_value());
    return *url;
}

std::string rejection(std::string_view text) {
    std::string error;
    INFO("URL: " << text);
    REQUIRE_FALSE(parse_nats_url(text, &error).has_value());
    CHECK_FALSE(error.empty());
    return error;
}

}  // namespace

TEST_CASE("nats url: one server, default port, case-insensitive scheme and host", "[url][nats]") {
    CHECK(is_nats_url("nats://a"));
    CHECK(is_nats_url("TLS://a"));
    CHECK_FALSE(is_nats_url("https://a"));
    const auto url = must_parse("NATS://Nats.Example");
    CHECK_FALSE(url.tls);
    CHECK(url.servers == std::vector<std::string>{"nats://nats.example:4222"});
    CHECK(url.user.empty());
    CHECK(url.token.empty());
}

TEST_CASE("nats url: a cluster's servers, IPv6 literals and tls://", "[url][nats]") {
    const auto url = must_parse("tls://10.0.0.1:4223,tls://[::1]:5222,tls://n3.example");
    CHECK(url.tls);
    CHECK(url.servers ==
          std::vector<std::string>{"nats://10.0.0.1:4223", "nats://[::1]:5222", "nats://n3.example:4222"});
}

TEST_CASE("nats url: credentials are percent-decoded and kept out of the server list", "[url][nats]") {
    const auto url = must_parse("nats://avr%40fleet:p%3Ass%2Fw@n1:4222,nats://n2:4222");
    CHECK(url.user == "avr@fleet");
    CHECK(url.password == "p:ss/w");
    CHECK(url.servers == std::vector<std::string>{"nats://n1:4222", "nats://n2:4222"});
    const auto token = must_parse("nats://s3cr3t-token@n1");
    CHECK(token.token == "s3cr3t-token");
    CHECK(token.user.empty());
    // The same credentials on every server are one set.
    CHECK(must_parse("nats://u:p@n1,nats://u:p@n2").user == "u");
}

TEST_CASE("nats url: what is refused, without quoting credentials", "[url][nats]") {
    CHECK_THAT(rejection("nats://n1,tls://n2"), Catch::Contains("same scheme"));
    CHECK_THAT(rejection("nats://n1,https://n2"), Catch::Contains("nats:// or tls://"));
    CHECK_THAT(rejection("nats://n1/path"), Catch::Contains("without a path"));
    CHECK_THAT(rejection("nats://n1?x=1"), Catch::Contains("without a path"));
    CHECK_THAT(rejection("nats://n1:99999"), Catch::Contains("65535"));
    CHECK_THAT(rejection("nats://n1,"), Catch::Contains("empty server"));
    CHECK_THAT(rejection("nats://"), Catch::Contains("no host"));
    CHECK_THAT(rejection("nats://n1, nats://n2"), Catch::Contains("space"));
    CHECK_THAT(rejection("nats://u:a@n1,nats://u:b@n2"), Catch::Contains("different credentials"));
    const auto bad_escape = rejection("nats://u:pa%zzword@n1");
    CHECK_THAT(bad_escape, Catch::Contains("'%'"));
    CHECK_THAT(bad_escape, !Catch::Contains("pa%zzword"));
    CHECK_THAT(rejection("nats://:p@n1"), Catch::Contains("empty"));
    std::string many;
    for (int i = 0; i < 65; ++i) many += (i ? ",nats://n" : "nats://n") + std::to_string(i);
    CHECK_THAT(rejection(many), Catch::Contains("at most 64"));
}

TEST_CASE("nats url: redaction hides the credentials of every server", "[url][nats][redact]") {
    // Everything before the last '@' is hidden (a password may hold ',' and '@'): the first servers too.
    CHECK(redact_url("nats://u:p@n1:4222,nats://u:p@n2:4222") == "nats://<redacted>@n2:4222");
    CHECK(redact_url("nats://u:p@n1:4222,nats://n2:4222") == "nats://<redacted>@n1:4222,nats://n2:4222");
    CHECK(redact_url("tls://token@n1") == "tls://<redacted>@n1");
    CHECK(redact_url("nats://n1:4222,nats://n2:4222") == "nats://n1:4222,nats://n2:4222");
    // An http URL with a comma in its path stays one URL.
    CHECK(redact_url("https://h.example/a,b?x") == "https://h.example/<redacted>?<redacted>");
}
