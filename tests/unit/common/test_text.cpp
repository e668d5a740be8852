#include <avr_webhookd/common/text.hpp>

#include <catch2/catch.hpp>

using namespace avr_webhookd;

TEST_CASE("text: ASCII case changes touch letters only, never other bytes", "[text]") {
    CHECK(ascii_lower("Content-Type: ABC xyz 123") == "content-type: abc xyz 123");
    CHECK(ascii_upper("call_started-7") == "CALL_STARTED-7");
    CHECK(ascii_lower("\xC3\x89T\xC3\x89") == "\xC3\x89t\xC3\x89");  // UTF-8 bytes unchanged
    CHECK(ascii_upper("caf\xc3\xa9") == "CAF\xc3\xa9");
    CHECK(ascii_lower("") == "");
    CHECK(ascii_lower('Q') == 'q');
    CHECK(ascii_lower('[') == '[');
}

TEST_CASE("text: starts_with_ignoring_case", "[text]") {
    CHECK(starts_with_ignoring_case("HTTPS://h", "https://"));
    CHECK(starts_with_ignoring_case("https://h", "HTTPS://"));
    CHECK_FALSE(starts_with_ignoring_case("http://h", "https://"));
    CHECK_FALSE(starts_with_ignoring_case("http", "http://"));
    CHECK(starts_with_ignoring_case("anything", ""));
}

TEST_CASE("text: trim removes spaces and tabs at the ends only", "[text]") {
    CHECK(trim("  a b\t") == "a b");
    CHECK(trim("\t \t") == "");
    CHECK(trim("") == "");
    CHECK(trim("x") == "x");
    CHECK(trim("\nx\n") == "\nx\n");
}

TEST_CASE("text: single_line collapses runs of spaces and control characters", "[text]") {
    CHECK(single_line("") == "");
    CHECK(single_line("plain") == "plain");
    CHECK(single_line("\r\n a \t\t b \n") == "a b");
    CHECK(single_line("x\x1by") == "x y");
    CHECK(single_line("x\x7fy") == "x y");
    CHECK(single_line("caf\xc3\xa9") == "caf\xc3\xa9");
    // systemd's STATUS=: a newline inside would start a bogus assignment.
    CHECK(single_line("line one\nREADY=1\rthree") == "line one READY=1 three");
}

TEST_CASE("text: printable ASCII and join", "[text]") {
    CHECK(is_printable_ascii(' '));
    CHECK(is_printable_ascii('~'));
    CHECK_FALSE(is_printable_ascii('\x7f'));
    CHECK_FALSE(is_printable_ascii('\n'));
    CHECK_FALSE(is_printable_ascii('\xc3'));
    CHECK(join({}, ",") == "");
    CHECK(join({"a"}, ",") == "a");
    CHECK(join({"a", "b", "c"}, ", ") == "a, b, c");
}

TEST_CASE("without_trailing_newlines removes only the line endings at the end", "[text]") {
    CHECK(without_trailing_newlines("busy\n") == "busy");
    CHECK(without_trailing_newlines("busy\r\n\n") == "busy");
    CHECK(without_trailing_newlines("a\nb\n") == "a\nb");
    CHECK(without_trailing_newlines(" x ") == " x ");
    CHECK(without_trailing_newlines("\n") == "");
}
