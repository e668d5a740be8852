#include <avr_webhookd/common/url.hpp>

#include <catch2/catch.hpp>

using avr_webhookd::parse_url;
using avr_webhookd::Url;

namespace {

Url must_parse(std::string_view text) {
    std::string error;
    auto url = parse_url(text, &error);
    INFO("URL: " << text << " error: " << error);
    REQUIRE(url.has_value());
    CHECK(error.empty());
    return *url;
}

std::string rejection(std::string_view text) {
    std::string error;
    auto url = parse_url(text, &error);
    INFO("URL: " << text);
    REQUIRE_FALSE(url.has_value());
    CHECK_FALSE(error.empty());
    return error;
}

}  // namespace

TEST_CASE("url: http with defaults", "[url]") {
    const auto url = must_parse("http://localhost:3000/webhooks/avr");
    CHECK_FALSE(url.tls);
    CHECK(url.host == "localhost");
    CHECK(url.port == "3000");
    CHECK(url.target == "/webhooks/avr");
    CHECK(url.host_header == "localhost:3000");
}

TEST_CASE("url: default ports are filled in and left out of Host", "[url]") {
    const auto plain = must_parse("http://example.com");
    CHECK(plain.port == "80");
    CHECK(plain.target == "/");
    CHECK(plain.host_header == "example.com");

    const auto secure = must_parse("https://example.com/x");
    CHECK(secure.tls);
    CHECK(secure.port == "443");
    CHECK(secure.host_header == "example.com");

    CHECK(must_parse("https://example.com:443/").host_header == "example.com");
    CHECK(must_parse("https://example.com:80/").host_header == "example.com:80");
    CHECK(must_parse("http://example.com:443/").host_header == "example.com:443");
}

TEST_CASE("url: scheme and host are case-insensitive, path is not", "[url]") {
    const auto url = must_parse("HTTPS://Example.COM/Hooks/AVR?Key=Value");
    CHECK(url.tls);
    CHECK(url.host == "example.com");
    CHECK(url.target == "/Hooks/AVR?Key=Value");
}

TEST_CASE("url: path and query are kept byte-exact, fragment dropped", "[url]") {
    CHECK(must_parse("http://h/a%2Fb//c/?x=1&y=%20z;w").target == "/a%2Fb//c/?x=1&y=%20z;w");
    CHECK(must_parse("http://h?a=b").target == "/?a=b");
    CHECK(must_parse("http://h/p?q#frag").target == "/p?q");
    CHECK(must_parse("http://h#frag").target == "/");
    CHECK(must_parse("http://h:8080#frag").port == "8080");
}

TEST_CASE("url: IP literals", "[url]") {
    const auto v4 = must_parse("http://127.0.0.1:8080/events");
    CHECK(v4.host == "127.0.0.1");
    CHECK(v4.host_header == "127.0.0.1:8080");

    const auto v6 = must_parse("https://[::1]:8443/events");
    CHECK(v6.host == "::1");
    CHECK(v6.port == "8443");
    CHECK(v6.host_header == "[::1]:8443");

    const auto v6_default = must_parse("http://[2001:DB8::1]/");
    CHECK(v6_default.host == "2001:db8::1");
    CHECK(v6_default.host_header == "[2001:db8::1]");
}

TEST_CASE("url: ports", "[url]") {
    CHECK(must_parse("http://h:1/").port == "1");
    CHECK(must_parse("http://h:65535/").port == "65535");
    CHECK(must_parse("http://h:08080/").port == "8080");
    CHECK(must_parse("http://h:08080/").host_header == "h:8080");
    CHECK_THAT(rejection("http://h:0/"), Catch::Contains("1..65535"));
    CHECK_THAT(rejection("http://h:65536/"), Catch::Contains("1..65535"));
    CHECK_THAT(rejection("http://h:99999999999999999999/"), Catch::Contains("1..65535"));
    CHECK_THAT(rejection("http://h:/"), Catch::Contains("empty"));
    CHECK_THAT(rejection("http://h:80a/"), Catch::Contains("not a number"));
    CHECK_THAT(rejection("http://h:-1/"), Catch::Contains("not a number"));
    CHECK_THAT(rejection("http://[::1]:/"), Catch::Contains("empty"));
}

TEST_CASE("url: host names", "[url]") {
    CHECK(must_parse("http://avr_core:3000/").host == "avr_core");
    CHECK(must_parse("http://a-b.c-d.example/").host == "a-b.c-d.example");
    CHECK_THAT(rejection("http:///path"), Catch::Contains("no host"));
    CHECK_THAT(rejection("http://:80/path"), Catch::Contains("no host"));
    CHECK_THAT(rejection("http://a..b/"), Catch::Contains("empty label"));
    CHECK_THAT(rejection("http://example.com./"), Catch::Contains("empty label"));
    CHECK_THAT(rejection("http://exa%6Dple.com/"), Catch::Contains("invalid character"));
    CHECK_THAT(rejection("http://" + std::string(64, 'a') + ".com/"), Catch::Contains("63"));
    CHECK_THAT(rejection("http://" + std::string(254, 'a') + "/"), Catch::Contains("253"));
}

TEST_CASE("url: invalid IP literals", "[url]") {
    CHECK_THAT(rejection("http://1.2.3/"), Catch::Contains("IPv4"));
    CHECK_THAT(rejection("http://256.1.1.1/"), Catch::Contains("IPv4"));
    CHECK_THAT(rejection("http://[::1/"), Catch::Contains("]"));
    CHECK_THAT(rejection("http://[::g]/"), Catch::Contains("IPv6"));
    CHECK_THAT(rejection("http://[]/"), Catch::Contains("no host"));
    CHECK_THAT(rejection("http://[fe80::1%25eth0]/"), Catch::Contains("zone"));
    CHECK_THAT(rejection("http://[::1]x/"), Catch::Contains("after the IPv6"));
    CHECK_THAT(rejection("http://::1/"), Catch::Contains("no host"));
}

TEST_CASE("url: only http and https", "[url]") {
    CHECK_THAT(rejection("ftp://example.com/"), Catch::Contains("http:// or https://"));
    CHECK_THAT(rejection("example.com/hook"), Catch::Contains("http:// or https://"));
    CHECK_THAT(rejection("http:/example.com/"), Catch::Contains("http:// or https://"));
    CHECK_THAT(rejection("httpx://example.com/"), Catch::Contains("http:// or https://"));
    CHECK_THAT(rejection(""), Catch::Contains("empty"));
}

TEST_CASE("url: user:password@ becomes Authorization: Basic, as axios sends it", "[url]") {
    const auto url = must_parse("https://user:pa55@example.com/x");
    CHECK(url.authorization == "Basic dXNlcjpwYTU1");  // base64("user:pa55")
    CHECK(url.host == "example.com");
    CHECK(url.host_header == "example.com");
    CHECK(url.target == "/x");
    CHECK(must_parse("https://user@example.com/").authorization == "Basic dXNlcjo=");  // "user:"
    CHECK(must_parse("http://a%40b:p%3Aw@h/").authorization == "Basic YUBiOnA6dw==");  // "a@b:p:w"
    CHECK(must_parse("http://u:p@ss@h:81/").authorization == "Basic dTpwQHNz");        // last '@' ends it
    CHECK(must_parse("http://u:p@ss@h:81/").host_header == "h:81");
    CHECK(must_parse("https://example.com/").authorization.empty());
    // An '@' after the authority is part of the path, not userinfo.
    const auto path_at = must_parse("https://example.com/a@b?c=@");
    CHECK(path_at.target == "/a@b?c=@");
    CHECK(path_at.authorization.empty());
    // Bad percent-encoding is refused without quoting the credentials.
    const auto error = rejection("https://user:s3cr%zz@example.com/");
    CHECK_THAT(error, Catch::Contains("user:password@"));
    CHECK(error.find("s3cr") == std::string::npos);
    CHECK_THAT(rejection("https://user:pw%4@example.com/"), Catch::Contains("'%'"));
    CHECK_THAT(rejection("https://user:pw@/x"), Catch::Contains("no host"));
}

TEST_CASE("url: redaction keeps scheme, host and port only", "[url][redact]") {
    using avr_webhookd::redact_url;
    CHECK(redact_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET") == "https://hooks.slack.com/<redacted>");
    CHECK(redact_url("https://webhook.site/0f0e8c44-1e1e-4c1e-9e1e-1e1e1e1e1e1e") == "https://webhook.site/<redacted>");
    CHECK(redact_url("https://u:pw@h.example:8443/a/b?token=x#frag") ==
          "https://<redacted>@h.example:8443/<redacted>?<redacted>");
    CHECK(redact_url("http://localhost:3000/webhooks") == "http://localhost:3000/<redacted>");
    CHECK(redact_url("http://localhost:3000/webhooks/") == "http://localhost:3000/<redacted>");
    CHECK(redact_url("http://localhost:3000/hook?key=abc") == "http://localhost:3000/<redacted>?<redacted>");
    CHECK(redact_url("http://h") == "http://h");
    CHECK(redact_url("http://h/") == "http://h/");
    CHECK(redact_url("http://h?q") == "http://h?<redacted>");
    CHECK(redact_url("http://h#f") == "http://h");
    CHECK(redact_url("http://[::1]:81/x/y") == "http://[::1]:81/<redacted>");
    CHECK(redact_url("https://user@h/") == "https://<redacted>@h/");
    // Any text, even one that is not a valid URL, is redacted the same way.
    CHECK(redact_url("h.example/a/secret?x") == "h.example/<redacted>?<redacted>");
    CHECK(redact_url("ftp://u:p@h/") == "ftp://<redacted>@h/");
    CHECK(redact_url("") == "");
    // A password holding an unencoded '/' ends the authority early: none of it may show.
    CHECK(redact_url("https://user:pa/ss@h.example/x") == "https://<redacted>/<redacted>");
    CHECK(redact_url("https://user:secret") == "https://<redacted>");
    CHECK(redact_url("http://[::1]:8080/a") == "http://[::1]:8080/<redacted>");
    std::string error;
    CHECK_FALSE(avr_webhookd::parse_url("https://user:pa/ss@h.example/x", &error));
    CHECK(error.find("'pa'") == std::string::npos);
    CHECK(error.find("ss@") == std::string::npos);
}

TEST_CASE("url: a NATS password with commas or '@' is never shown in part", "[url][redact][nats]") {
    using avr_webhookd::redact_url;
    CHECK(redact_url("nats://user:12,34@h") == "nats://<redacted>@h");
    CHECK(redact_url("nats://user:12,34@h:4222,nats://h2") == "nats://<redacted>@h:4222,nats://h2");
    CHECK(redact_url("tls://user:a@b,c@h") == "tls://<redacted>@h");
    CHECK(redact_url("nats://user:p,nats://x@h") == "nats://<redacted>@h");
    for (const auto* url : {"nats://user:12,34@h", "tls://user:a@b,c@h", "nats://s3cr,et@h,nats://h2"}) {
        const auto shown = redact_url(url);
        CHECK(shown.find("12") == std::string::npos);
        CHECK(shown.find("34") == std::string::npos);
        CHECK(shown.find("s3cr") == std::string::npos);
        CHECK(shown.find("et@") == std::string::npos);
        CHECK(shown.find("b,c") == std::string::npos);
    }
}

TEST_CASE("url: whitespace, control and non-ASCII bytes are rejected anywhere", "[url]") {
    CHECK_THAT(rejection(" http://h/"), Catch::Contains("space"));
    CHECK_THAT(rejection("http://h/a b"), Catch::Contains("space"));
    CHECK_THAT(rejection("http://h/\r\nX-Injected: 1"), Catch::Contains("control"));
    CHECK_THAT(rejection("http://h/\t"), Catch::Contains("control"));
    CHECK_THAT(rejection(std::string_view("http://h/\0", 10)), Catch::Contains("control"));
    CHECK_THAT(rejection("http://h/\x7f"), Catch::Contains("control"));
    CHECK_THAT(rejection("http://h\xc3\xa9.com/"), Catch::Contains("non-ASCII"));
    CHECK_THAT(rejection("http://h/#\n"), Catch::Contains("control"));
}

TEST_CASE("url: error pointer is optional", "[url]") {
    CHECK_FALSE(parse_url("nope").has_value());
    CHECK(parse_url("http://h/").has_value());
}

TEST_CASE("url: the origin keeps scheme, host and port, nothing else", "[url][redact]") {
    using avr_webhookd::url_origin;
    CHECK(url_origin("https://hooks.slack.com/services/T000/B000/XXXXSECRET") == "https://hooks.slack.com");
    CHECK(url_origin("https://u:pw@h.example:8443/a/b?token=x#frag") == "https://h.example:8443");
    CHECK(url_origin("http://[::1]:81/x/y") == "http://[::1]:81");
    CHECK(url_origin("http://h?q") == "http://h");
    CHECK(url_origin("http://h#f") == "http://h");
    CHECK(url_origin("https://user@h/") == "https://h");
    // A password holding an unencoded '/' ends the authority early: none of it may show.
    CHECK(url_origin("https://user:pa/ss@h.example/x") == "https://<redacted>");
    CHECK(url_origin("") == "");
    CHECK(url_origin("h.example/a/secret") == "h.example");
}
