#include <avr_webhookd/intake/answer_reply.hpp>

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

using namespace avr_webhookd;
using namespace std::chrono_literals;

namespace {

boost::json::object parsed(const std::string& line) {
    REQUIRE(line.ends_with('\n'));
    REQUIRE(line.find('\n') == line.size() - 1);  // one line, whatever the body held
    return boost::json::parse(line).as_object();
}

}  // namespace

TEST_CASE("answer_reply passes a JSON answer through, compact, on one line", "[answer]") {
    const auto reply =
        answer_reply(3, "ev-1", EventSink::Answer{200, "{\n  \"sts_url\": \"ws://sts:6030?uuid=a\"\n}", {}}, 2500ms);
    const auto object = parsed(reply);
    CHECK(object.at("ok").as_bool());
    CHECK(object.at("line").as_int64() == 3);
    CHECK(object.at("id").as_string() == "ev-1");
    CHECK(object.at("status").as_int64() == 200);
    CHECK(object.at("response").at("sts_url").as_string() == "ws://sts:6030?uuid=a");
}

TEST_CASE("answer_reply: a body that is not JSON comes back as a string", "[answer]") {
    const auto object = parsed(answer_reply(1, "x", EventSink::Answer{503, "busy\nnow", {}}, 2500ms));
    CHECK(object.at("ok").as_bool());  // the receiver answered, with its own status
    CHECK(object.at("status").as_int64() == 503);
    CHECK(object.at("response").as_string() == "busy\nnow");
    CHECK(parsed(answer_reply(1, "x", EventSink::Answer{204, "", {}}, 1s)).at("response").as_string() == "");
}

TEST_CASE("answer_reply: no answer within respond_timeout says the event goes on", "[answer]") {
    const auto object = parsed(answer_reply(9, "e\"9", std::nullopt, 2500ms));
    CHECK_FALSE(object.at("ok").as_bool());
    CHECK(object.at("id").as_string() == "e\"9");
    CHECK_THAT(std::string(object.at("error").as_string()), Catch::Contains("respond_timeout=2500ms"));
    CHECK(object.at("queued").as_bool());
    CHECK_FALSE(object.contains("status"));
}

TEST_CASE("answer_reply: an event ended without a response says why", "[answer]") {
    const auto object = parsed(answer_reply(2, "y", EventSink::Answer{0, {}, "ECONNREFUSED, given up"}, 2500ms));
    CHECK_FALSE(object.at("ok").as_bool());
    CHECK_THAT(std::string(object.at("error").as_string()), Catch::Contains("ECONNREFUSED"));
    CHECK_FALSE(object.at("queued").as_bool());
}
