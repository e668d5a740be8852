#include <avr_webhookd/tools/send_command.hpp>

#include <catch2/catch.hpp>

using namespace avr_webhookd;

TEST_CASE("send: counts the lines the daemon sees as events", "[send]") {
    SendReport report;
    report.begin_input("a.ndjson");
    report.add("{\"a\":1}\n\n\r\n{\"b\"");
    report.add(":2}\r\n   \n\r\r\n");
    CHECK(report.event_lines() == 4);  // the blank and lone-CR lines are skipped, whitespace is not
    report.add("{\"c\":3}");
    CHECK(report.needs_newline());
    report.finish();
    CHECK(report.event_lines() == 5);
}

TEST_CASE("send: replies name the input file and its own line number", "[send]") {
    SendReport report;
    report.begin_input("first.ndjson");
    report.add("{}\n{}\n");
    report.begin_input("second.ndjson");
    report.add("{}\nbad\n");
    report.finish();

    CHECK(report.reply(R"({"ok":false,"line":2,"error":"invalid JSON"})") ==
          "first.ndjson line 2: rejected: invalid JSON");
    CHECK(report.reply(R"({"ok":false,"line":4,"error":"bad \"type\""})") ==
          "second.ndjson line 2: rejected: bad \"type\"");
    CHECK(report.reply(R"({"ok":true,"line":3,"id":"e-1"})") == "second.ndjson line 1: accepted (id e-1)");
    CHECK(report.rejected() == 2);
    CHECK(report.accepted() == 1);
    CHECK_FALSE(report.refusal());
}

TEST_CASE("send: stdin alone is just 'line N'", "[send]") {
    SendReport report;
    report.begin_input("stdin");
    report.add("x\n");
    CHECK(report.reply(R"({"ok":false,"line":1,"error":"invalid JSON"})") == "line 1: rejected: invalid JSON");
}

TEST_CASE("send: a connection-level refusal and odd replies", "[send]") {
    SendReport report;
    report.begin_input("stdin");
    CHECK(report.reply(R"({"ok":false,"error":"too many producer connections"})") ==
          "daemon refused the connection: too many producer connections");
    REQUIRE(report.refusal());
    CHECK(*report.refusal() == "too many producer connections");
    CHECK(report.rejected() == 0);

    CHECK(report.reply("not json\x01") == "daemon: not json?");
    CHECK(report.reply(R"({"ok":false,"line":1,"error":"a\nb"})") == "line 1: rejected: a?b");
    CHECK(report.reply(R"({"ok":false,"line":1})") == "line 1: rejected: no reason given");
}
