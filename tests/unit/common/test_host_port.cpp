#include <avr_webhookd/common/host_port.hpp>

#include <catch2/catch.hpp>

using namespace avr_webhookd;
using Kind = HostPortError::Kind;

namespace {

HostPort must_parse(std::string_view text, PortRule rule = PortRule::required) {
    HostPortError error;
    auto parsed = parse_host_port(text, rule, &error);
    INFO(text << ": " << error.message);
    REQUIRE(parsed);
    return *parsed;
}

HostPortError rejection(std::string_view text, PortRule rule = PortRule::required) {
    HostPortError error;
    INFO(text);
    REQUIRE_FALSE(parse_host_port(text, rule, &error));
    CHECK_FALSE(error.message.empty());
    CHECK(error.message.find('\n') == std::string::npos);
    return error;
}

}  // namespace

TEST_CASE("host_port: names, IPv4 and bracketed IPv6 with a port", "[host_port]") {
    auto parsed = must_parse("127.0.0.1:9464");
    CHECK(parsed.host == "127.0.0.1");
    CHECK(parsed.port == 9464);
    CHECK_FALSE(parsed.ipv6);

    parsed = must_parse("[::1]:80");
    CHECK(parsed.host == "::1");
    CHECK(parsed.port == 80);
    CHECK(parsed.ipv6);

    parsed = must_parse("Avr_Core.example:65535");
    CHECK(parsed.host == "Avr_Core.example");  // as written; callers lower-case if they need to
    CHECK(parsed.port == 65535);

    CHECK(must_parse("h:08080").port == 8080);
    CHECK(must_parse("[2001:db8::1]:1").host == "2001:db8::1");
}

TEST_CASE("host_port: the port rules", "[host_port]") {
    CHECK(rejection("localhost").kind == Kind::missing_port);
    CHECK(rejection("[::1]").kind == Kind::missing_port);
    CHECK(rejection("localhost", PortRule::required_or_zero).kind == Kind::missing_port);
    const auto without = must_parse("localhost", PortRule::optional);
    CHECK_FALSE(without.port);
    CHECK_FALSE(must_parse("[::1]", PortRule::optional).port);

    CHECK(rejection("h:").kind == Kind::empty_port);
    CHECK(rejection("[::1]:", PortRule::optional).kind == Kind::empty_port);
    CHECK(rejection("h:0").kind == Kind::port_out_of_range);
    CHECK(rejection("h:0", PortRule::optional).kind == Kind::port_out_of_range);
    CHECK(must_parse("h:0", PortRule::required_or_zero).port == 0);
    CHECK(rejection("h:00", PortRule::required_or_zero).kind == Kind::port_out_of_range);  // zero only as "0"
    CHECK(rejection("h:65536").kind == Kind::port_out_of_range);
    CHECK(rejection("h:65536", PortRule::required_or_zero).kind == Kind::port_out_of_range);
    CHECK(rejection("h:99999999999999999999").kind == Kind::port_out_of_range);
    CHECK_THAT(rejection("h:65536").message, Catch::Contains("1..65535"));
    CHECK_THAT(rejection("h:65536", PortRule::required_or_zero).message, Catch::Contains("0..65535"));
}

TEST_CASE("host_port: garbage is refused with the reason", "[host_port]") {
    CHECK(rejection("").kind == Kind::no_host);
    CHECK(rejection(":80").kind == Kind::no_host);
    CHECK(rejection("[]:80").kind == Kind::no_host);
    CHECK(rejection("::1:80").kind == Kind::no_host);  // IPv6 needs its brackets
    CHECK(rejection("[::1:80").kind == Kind::unclosed_bracket);
    CHECK(rejection("[::1]x80").kind == Kind::text_after_bracket);
    CHECK(rejection("h:http").kind == Kind::port_not_number);
    CHECK(rejection("h:+80").kind == Kind::port_not_number);
    CHECK(rejection("h:-1").kind == Kind::port_not_number);
    CHECK(rejection("h:80x").kind == Kind::port_not_number);
    CHECK(rejection("h:80:81").kind == Kind::port_not_number);
    CHECK(rejection("host name:80").kind == Kind::invalid_host);
    CHECK(rejection("a..b:80").kind == Kind::invalid_host);
    CHECK(rejection("example.com.:80").kind == Kind::invalid_host);
    CHECK(rejection("256.1.1.1:80").kind == Kind::invalid_host);
    CHECK(rejection("1.2.3:80").kind == Kind::invalid_host);
    CHECK(rejection("[::g]:80").kind == Kind::invalid_host);
    CHECK_THAT(rejection("[fe80::1%eth0]:80").message, Catch::Contains("zone"));
    CHECK_THAT(rejection(std::string(64, 'a') + ".com:80").message, Catch::Contains("63"));
    CHECK_THAT(rejection(std::string(254, 'a') + ":80").message, Catch::Contains("253"));
    CHECK(rejection("relative/path.sock").kind == Kind::invalid_host);
    // A port that is not all digits may be part of a URL's password: never repeated.
    CHECK(rejection("h:pa/ss").message.find("pa/ss") == std::string::npos);
}

TEST_CASE("host_port: the error pointer is optional", "[host_port]") {
    CHECK_FALSE(parse_host_port("nope", PortRule::required));
    CHECK(parse_host_port("h:1", PortRule::required));
}

TEST_CASE("host_port: formatting brackets IPv6 literals", "[host_port]") {
    CHECK(format_host_port("127.0.0.1", 9464) == "127.0.0.1:9464");
    CHECK(format_host_port("::1", 0) == "[::1]:0");
    CHECK(format_host_port("localhost", 80) == "localhost:80");
}
