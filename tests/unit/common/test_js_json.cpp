#include <avr_webhookd/common/js_json.hpp>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

using avr_webhookd::append_js_json;

namespace {
std::string js(std::string_view json) {
    std::string out;
    append_js_json(out, boost::json::parse(json));
    return out;
}
}  // namespace

// Expected strings are what node -e 'console.log(JSON.stringify(JSON.parse(process.argv[1])))' prints.
TEST_CASE("js json prints numbers as JavaScript does", "[js_json]") {
    CHECK(js("[1.0, 100, -0, -0.0, 0.1, 1e2, 1.5e300, 1e21, 1e20, 123e-9, 0.000001, 1e-7]") ==
          "[1,100,0,0,0.1,100,1.5e+300,1e+21,100000000000000000000,1.23e-7,0.000001,1e-7]");
    CHECK(js("[12345678901234567890, -9007199254740993, 9007199254740992, 3.14159, -2.5e-10]") ==
          "[12345678901234567000,-9007199254740992,9007199254740992,3.14159,-2.5e-10]");
    CHECK(js("[1.7976931348623157e308, 5e-324, 4.35, 0.3, 2.675]") ==
          "[1.7976931348623157e+308,5e-324,4.35,0.3,2.675]");
}

TEST_CASE("js json prints doubles in JavaScript's shortest form", "[js_json]") {
    std::string out;
    avr_webhookd::append_js_number(out, 123456789012345680000.0);
    CHECK(out == "123456789012345680000");
    out.clear();
    avr_webhookd::append_js_number(out, 1e-7);
    CHECK(out == "1e-7");
}

TEST_CASE("js json escapes strings as JSON.stringify does", "[js_json]") {
    CHECK(js(R"(["a\"b\\c\/d", "\b\f\n\r\t", "\u0001\u001f\u007f", "é€😀", "</script>"])") ==
          "[\"a\\\"b\\\\c/d\",\"\\b\\f\\n\\r\\t\",\"\\u0001\\u001f\x7f\",\"é€😀\",\"</script>\"]");
}

TEST_CASE("js json keeps key order and nesting compact", "[js_json]") {
    CHECK(js(R"( { "z" : 1 , "a" : [ true , false , null ] , "m" : { } } )") ==
          R"({"z":1,"a":[true,false,null],"m":{}})");
    CHECK(js(R"({"a":1,"b":2,"a":3})") == R"({"a":3,"b":2})");
}
