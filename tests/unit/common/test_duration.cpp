#include <avr_webhookd/common/duration.hpp>

#include <catch2/catch.hpp>

using avr_webhookd::format_duration;
using avr_webhookd::parse_duration;
using std::chrono::milliseconds;

TEST_CASE("duration: plain integers are milliseconds", "[duration]") {
    CHECK(parse_duration("3000") == milliseconds{3000});
    CHECK(parse_duration("0") == milliseconds{0});
    CHECK(parse_duration("007") == milliseconds{7});
}

TEST_CASE("duration: unit suffixes", "[duration]") {
    CHECK(parse_duration("500ms") == milliseconds{500});
    CHECK(parse_duration("3s") == milliseconds{3000});
    CHECK(parse_duration("2m") == milliseconds{120000});
    CHECK(parse_duration("1h") == milliseconds{3600000});
    CHECK(parse_duration("0s") == milliseconds{0});
}

TEST_CASE("duration: garbage, signs, fractions and spaces are rejected", "[duration]") {
    for (const char* text : {"",    "ms", "s",    "-1", "-5s", "+5", "1.5s", " 5",   "5 ",   "5 s",
                             "abc", "5x", "5sec", "5S", "5MS", "3d", "1e3",  "0x10", "5ms5", "5s5ms"}) {
        INFO("text: \"" << text << "\"");
        CHECK_FALSE(parse_duration(text));
    }
}

TEST_CASE("duration: overflow is rejected, the largest value is not", "[duration]") {
    CHECK(parse_duration("9223372036854775807") == milliseconds{9223372036854775807LL});
    CHECK_FALSE(parse_duration("9223372036854775808"));
    CHECK_FALSE(parse_duration("99999999999999999999999999"));
    CHECK(parse_duration("9223372036854775s") == milliseconds{9223372036854775000LL});
    CHECK_FALSE(parse_duration("9223372036854776s"));
    CHECK_FALSE(parse_duration("2562047788015216h"));
}

TEST_CASE("duration: formatting picks the largest exact unit", "[duration]") {
    CHECK(format_duration(milliseconds{0}) == "0ms");
    CHECK(format_duration(milliseconds{1500}) == "1500ms");
    CHECK(format_duration(milliseconds{3000}) == "3s");
    CHECK(format_duration(milliseconds{90000}) == "90s");
    CHECK(format_duration(milliseconds{120000}) == "2m");
    CHECK(format_duration(milliseconds{3600000}) == "1h");
}

TEST_CASE("duration: formatted text parses back to the same duration", "[duration]") {
    for (const long long count : {0LL, 1LL, 999LL, 1000LL, 61000LL, 3600000LL, 86400000LL, 1234567LL}) {
        CHECK(parse_duration(format_duration(milliseconds{count})) == milliseconds{count});
    }
}
