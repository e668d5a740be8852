#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/config/config_file.hpp>
#include <avr_webhookd/config/settings.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

using namespace avr_webhookd;
using namespace std::chrono_literals;

TEST_CASE("settings: the restart-only settings are the table's non-reloadable ones", "[config][reload]") {
    std::set<std::string_view> restart_only;
    for (const auto& setting : all_settings())
        if (!setting.reloadable) restart_only.insert(setting.key);
    // The list daemon.cpp kept by hand before it was derived from the table.
    for (const char* key : {"socket", "socket_mode", "call_idle_timeout", "dead_letter", "admin", "spool_dir",
                            "spool_sync", "spool_sync_interval", "spool_max_bytes"})
        CHECK(restart_only.contains(key));
    for (const char* key : {"url", "secret", "timeout", "retry", "concurrency", "types", "log_level", "max_queue"})
        CHECK_FALSE(restart_only.contains(key));
}

TEST_CASE("settings: a reload keeps the running value of every restart-only setting", "[config][reload]") {
    Config running;
    running.url = "https://a.example/";
    running.socket = "/run/a/events.sock";
    running.dead_letter = "/run/a/dead-letter.ndjson";
    running.admin = "127.0.0.1:9100";

    Config fresh = running;
    fresh.url = "https://b.example/";  // reloadable: applied
    fresh.timeout = 9s;                // reloadable: applied
    CHECK(keep_restart_only_settings(fresh, running).empty());
    CHECK(fresh.url == "https://b.example/");
    CHECK(fresh.timeout == 9s);

    fresh.socket = "/run/b/events.sock";
    fresh.socket_mode = 0600;
    fresh.call_idle_timeout = 1min;
    fresh.dead_letter = "";
    fresh.admin = "/run/b/admin.sock";
    fresh.spool_sync = SpoolSync::interval;
    const auto changed = keep_restart_only_settings(fresh, running);
    CHECK(
        std::set<std::string_view>(changed.begin(), changed.end()) ==
        std::set<std::string_view>{"socket", "socket_mode", "call_idle_timeout", "dead_letter", "admin", "spool_sync"});
    CHECK(fresh.spool_sync == running.spool_sync);
    CHECK(fresh.socket == running.socket);
    CHECK(fresh.socket_mode == running.socket_mode);
    CHECK(fresh.call_idle_timeout == running.call_idle_timeout);
    CHECK(fresh.dead_letter == running.dead_letter);
    CHECK(fresh.admin == running.admin);
    CHECK(fresh.url == "https://b.example/");                   // still the new value
    CHECK(keep_restart_only_settings(fresh, running).empty());  // the next reload compares against what runs
}

TEST_CASE("config file grammar: entries, comments, quotes, BOM and CRLF without touching a disk", "[config]") {
    const auto entries = parse_config_file(
        "\xEF\xBB\xBFurl = https://h.example/x  # where to\r\n"
        "\n"
        "# a comment\n"
        "  timeout=5s\n"
        "agent_id = \"a # b \"\n"
        "types = 'call_started'  # quoted\n"
        "secret = pass#word\n"
        "ca_file = # empty",
        "test.conf");
    REQUIRE(entries.size() == 6);
    CHECK(entries[0].key == "url");
    CHECK(entries[0].value == "https://h.example/x");
    CHECK(entries[0].line == 1);
    CHECK(entries[1].key == "timeout");
    CHECK(entries[1].value == "5s");
    CHECK(entries[1].line == 4);
    CHECK(entries[2].value == "a # b ");
    CHECK(entries[3].value == "call_started");
    CHECK(entries[4].value == "pass#word");
    CHECK(entries[5].value == "");
    CHECK(entries[5].line == 8);
    CHECK(parse_config_file("", "empty.conf").empty());
    CHECK(parse_config_file("\n\n", "blank.conf").empty());
}

TEST_CASE("config file grammar: errors name the file and line, never the value", "[config]") {
    const auto error_of = [](std::string_view contents) {
        try {
            parse_config_file(contents, "x.conf");
        } catch (const ConfigError& error) {
            return std::string{error.what()};
        }
        FAIL("parsed: " << contents);
        return std::string{};
    };
    CHECK(error_of("url\n") == "config file x.conf line 1: expected key = value");
    CHECK_THAT(error_of("\ntimeuot = 3s\n"),
               Catch::StartsWith("config file x.conf line 2: unknown setting \"timeuot\"") &&
                   Catch::Contains("did you mean timeout?"));
    CHECK_THAT(error_of("secret = \"hunter2\n"), Catch::Contains("no closing quote") && !Catch::Contains("hunter2"));
    CHECK_THAT(error_of("secret = 'hunter2' x\n"), Catch::Contains("unexpected text") && !Catch::Contains("hunter2"));
    CHECK(error_of("retry = 1\nretry = 2\n") == "config file x.conf line 2: retry is already set on line 1");
}
