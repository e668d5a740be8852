// The extra request headers of an attempt: kept as wire lines, read back as name and value.
#include <avr_webhookd/delivery/header_list.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

using namespace avr_webhookd;

TEST_CASE("header list: lines on the wire, in order, and the same names and values back", "[unit][header_list]") {
    HeaderList headers;
    CHECK(headers.empty());
    CHECK(headers.wire().empty());
    headers.add("X-AVR-WEBHOOK-ID", "evt-1");
    headers.add("X-AVR-WEBHOOK-SEQUENCE", std::uint64_t{42});
    headers.add("X-Empty", "");
    headers.add("X-Max", std::numeric_limits<std::uint64_t>::max());
    CHECK(headers.size() == 4);
    CHECK(headers.wire() ==
          "X-AVR-WEBHOOK-ID: evt-1\r\nX-AVR-WEBHOOK-SEQUENCE: 42\r\nX-Empty: \r\nX-Max: 18446744073709551615\r\n");
    std::vector<std::pair<std::string, std::string>> seen;
    for (const auto& [name, value] : headers) seen.emplace_back(name, value);
    CHECK(seen == std::vector<std::pair<std::string, std::string>>{{"X-AVR-WEBHOOK-ID", "evt-1"},
                                                                   {"X-AVR-WEBHOOK-SEQUENCE", "42"},
                                                                   {"X-Empty", ""},
                                                                   {"X-Max", "18446744073709551615"}});
    CHECK(headers.at(1).second == "42");
    CHECK_THROWS_AS(headers.at(4), std::out_of_range);
}

TEST_CASE("header list: values are copied, and a long list leaves its inline room", "[unit][header_list]") {
    HeaderList headers;
    {
        std::string value = "temporary";
        headers.add("X-Copied", value);
        value.assign(100, 'x');
    }
    const std::string long_value(1000, 'v');  // past the room inside the object
    for (int i = 0; i < 20; ++i) headers.add("X-Header-" + std::to_string(i), long_value);
    REQUIRE(headers.size() == 21);
    CHECK(headers[0].second == "temporary");
    CHECK(headers[20].first == "X-Header-19");
    CHECK(headers[20].second == long_value);
    CHECK(headers.wire().size() == 21 * 4 + 8 + 9 + 10 * 10 + 10 * 11 + 20 * 1000);

    const HeaderList copy = headers;
    CHECK(copy.wire() == headers.wire());
    CHECK(copy[0].second == "temporary");
}

TEST_CASE("header list: built from a list of pairs", "[unit][header_list]") {
    const std::string id = "msg_1";
    const HeaderList headers = {{"webhook-id", id}, {"webhook-timestamp", "1614265330"}};
    CHECK(headers.wire() == "webhook-id: msg_1\r\nwebhook-timestamp: 1614265330\r\n");
}
