// HttpRequestReader without sockets: requests as bytes in, a request or a refusal out, with the
// bounds and framing rules Beast 1.81 leaves to us (issue 18: chunk extensions and trailers that
// never end, header fields by the thousand, Transfer-Encoding smuggling).
#include <avr_webhookd/common/http_request_reader.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <string>
#include <string_view>

using namespace avr_webhookd;
using State = HttpRequestReader::State;
using Refusal = HttpRequestRefusal;

namespace {

const std::string body = R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"call_started"})";

std::string post(std::string_view fields, std::string_view payload, std::string_view version = "1.1") {
    return "POST /events HTTP/" + std::string(version) + "\r\n" + std::string(fields) + "\r\n" + std::string(payload);
}

std::string good_request() {
    return post("Host: avr-webhookd:9000\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n",
                body);
}

std::string chunk(std::string_view data, std::string_view extension = {}) {
    std::string text;
    char size[20];
    std::snprintf(size, sizeof size, "%zx", data.size());
    return text.append(size).append(extension).append("\r\n").append(data).append("\r\n");
}

HttpRequestLimits small_limits() {
    HttpRequestLimits limits;
    limits.request = 8192;
    limits.head = 2048;
    limits.body = 1024;
    limits.fields = 20;
    return limits;
}

// Feeds `bytes`; the state it ends in.
State read_all(HttpRequestReader& reader, std::string_view bytes) {
    reader.feed(bytes);
    return reader.state();
}

Refusal refusal_of(std::string_view bytes, HttpRequestLimits limits = small_limits()) {
    HttpRequestReader reader(limits);
    const auto taken = reader.feed(bytes);
    INFO(std::string(bytes.substr(0, 200)));
    CHECK(reader.buffered() <= reader.max_buffered());
    CHECK(taken <= bytes.size());
    return reader.state() == State::refused ? reader.refusal() : Refusal::none;
}

}  // namespace

TEST_CASE("http request reader: AVR Core's request, whole or a byte at a time, then the next one",
          "[http_request_reader]") {
    HttpRequestReader reader;
    const std::string two = good_request() + good_request();
    std::size_t used = 0;
    SECTION("whole") { used = reader.feed(two); }
    SECTION("a byte at a time") {
        while (reader.state() == State::reading && used < two.size()) used += reader.feed(two.substr(used, 1));
    }
    REQUIRE(reader.state() == State::complete);
    CHECK(reader.request().method_string() == "POST");
    CHECK(reader.request().target() == "/events");
    CHECK(reader.request().body() == body);
    CHECK(reader.request()["Content-Type"] == "application/json");
    CHECK(reader.request().keep_alive());
    const auto first = reader.release();
    CHECK(first.body() == body);
    reader.next();  // with what was read past the first request, if anything
    if (reader.state() == State::reading) used += reader.feed(two.substr(used));
    REQUIRE(reader.state() == State::complete);
    CHECK(used == two.size());
    CHECK(reader.request().body() == body);
    CHECK(reader.buffered() == 0);
}

TEST_CASE("http request reader: chunks with extensions and trailers, whose fields are counted and not kept",
          "[http_request_reader]") {
    HttpRequestReader reader(small_limits());
    const auto request =
        post("Host: x\r\nTransfer-Encoding: chunked\r\n",
             chunk(body.substr(0, 10), ";name=\"v\";x") + chunk(body.substr(10)) + "0;last\r\nX-Trailer: 1\r\n\r\n");
    REQUIRE(read_all(reader, request) == State::complete);
    CHECK(reader.request().body() == body);
    CHECK(reader.request().find("X-Trailer") == reader.request().end());
    CHECK(reader.request_bytes() == request.size());
}

TEST_CASE("http request reader: a chunk extension or trailer that never ends is refused at the bound",
          "[http_request_reader][limits]") {
    const auto limits = small_limits();
    const auto endless = [&](const std::string& start) {
        HttpRequestReader reader(limits);
        reader.feed(start);
        std::size_t sent = start.size();
        const std::string filler(4096, 'a');
        for (int i = 0; i < 1000 && reader.state() == State::reading; ++i) sent += reader.feed(filler);
        CHECK(reader.state() == State::refused);
        CHECK(reader.refusal() == Refusal::request_too_large);
        CHECK(reader.refusal_status() == 413);
        CHECK(reader.buffered() <= reader.max_buffered());
        CHECK(sent <= limits.request + HttpRequestReader::read_size);  // not one byte more is taken
        return reader.refusal_message();
    };
    const auto head = post("Host: x\r\nTransfer-Encoding: chunked\r\n", "");
    CHECK_THAT(endless(head + "5;ext="), Catch::Contains("chunk size line or the trailers longer than"));
    CHECK_THAT(endless(head + chunk("hello") + "0\r\nX-Trailer: "), Catch::Contains("longer than"));
    // With a bound above the buffer, the buffer's own limit answers first.
    auto wide = limits;
    wide.request = 1 << 20;
    HttpRequestReader reader(wide);
    reader.feed(head + "1;e=");
    for (int i = 0; i < 100 && reader.state() == State::reading; ++i) reader.feed(std::string(4096, 'b'));
    CHECK(reader.refusal() == Refusal::request_too_large);
    CHECK(reader.buffered() <= reader.max_buffered());
}

TEST_CASE("http request reader: chunk framing counts against the whole request's bound",
          "[http_request_reader][limits]") {
    auto limits = small_limits();
    std::string chunks;
    for (int i = 0; i < 600; ++i) chunks += chunk("x", ";e=1234567890");  // 600 body bytes, 13 KB on the wire
    CHECK(refusal_of(post("Host: x\r\nTransfer-Encoding: chunked\r\n", chunks + "0\r\n\r\n"), limits) ==
          Refusal::request_too_large);
    limits.request = 64 * 1024;
    HttpRequestReader reader(limits);
    CHECK(read_all(reader, post("Host: x\r\nTransfer-Encoding: chunked\r\n", chunks + "0\r\n\r\n")) == State::complete);
    CHECK(reader.request().body() == std::string(600, 'x'));
}

TEST_CASE("http request reader: header fields by number and the head by size", "[http_request_reader][limits]") {
    const auto limits = small_limits();
    std::string fields = "Host: x\r\n";
    for (std::size_t i = 1; i < limits.fields; ++i) fields += "a:\r\n";
    HttpRequestReader at_limit(limits);
    CHECK(read_all(at_limit, post(fields, "")) == State::complete);
    CHECK(refusal_of(post(fields + "a:\r\n", "")) == Refusal::too_many_fields);
    CHECK(http_refusal_status(Refusal::too_many_fields) == 431);

    // 3,900 tiny fields, the attack of the issue, within the default head limit.
    std::string many = "Host: x\r\n";
    for (int i = 0; i < 3900; ++i) many += "a:\r\n";
    CHECK(refusal_of(post(many, ""), HttpRequestLimits{}) == Refusal::too_many_fields);

    CHECK(refusal_of(post("Host: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n", "")) == Refusal::head_too_large);
    // Fields arriving one read at a time: Beast takes a head in parts, the head still counts whole.
    auto wide_fields = limits;
    wide_fields.fields = 1000;
    HttpRequestReader reader(wide_fields);
    reader.feed("POST / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 200 && reader.state() == State::reading; ++i)
        reader.feed("X-Field: " + std::string(20, 'v') + "\r\n");
    CHECK(reader.refusal() == Refusal::head_too_large);
    CHECK(reader.refusal_status() == 431);

    // A head past its limit is refused for its size even when a field breaks a framing rule too,
    // where the head and the request share one bound (the admin endpoint's); found by fuzzing.
    auto shared = limits;
    shared.request = shared.head;
    HttpRequestReader both(shared);
    std::string fields_then_t = "GET /readyz HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 3; ++i) fields_then_t += "X-Field: " + std::string(600, 'v') + "\r\n";
    both.feed(fields_then_t + "T");  // Beast takes the fields it sees whole, before the head's end
    CHECK(both.state() == State::reading);
    CHECK(both.request_bytes() == fields_then_t.size());
    both.feed("ransfer-Encoding: " + std::string(400, 'a') + "\r\n\r\n");
    CHECK(both.refusal() == Refusal::head_too_large);
    CHECK(both.request_bytes() <= shared.head);  // Beast never parsed past the limit

    // A request bound below the head's (http_max_request_bytes may be 4096): a head past it is
    // refused alike, 431 naming the bound it passed, whether it comes in one read or field by field.
    auto low_request = limits;
    low_request.request = 1024;
    std::string big_head = "POST / HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 15; ++i) big_head += "X-Field: " + std::string(80, 'v') + "\r\n";
    big_head += "Content-Length: 0\r\n\r\n";
    for (const std::size_t piece : {big_head.size(), std::size_t{60}}) {
        INFO("pieces of " << piece);
        HttpRequestReader reader(low_request);
        for (std::size_t at = 0; at < big_head.size() && reader.state() == State::reading; at += piece)
            reader.feed(std::string_view(big_head).substr(at, piece));
        CHECK(reader.refusal() == Refusal::head_too_large);
        CHECK(reader.refusal_message() == "request head larger than 1024 bytes");
    }
}

TEST_CASE("http request reader: a Transfer-Encoding other than a lone final chunked is refused, nothing smuggled",
          "[http_request_reader][framing]") {
    const auto smuggled = good_request();
    for (const std::string encoding : {"xchunked", "gzip", "chunked, identity", "identity", "chunked;q=1", ""}) {
        INFO(encoding);
        HttpRequestReader reader(small_limits());
        reader.feed(post("Host: x\r\nTransfer-Encoding: " + encoding + "\r\n", smuggled));
        CHECK(reader.state() == State::refused);
        CHECK(reader.refusal() == Refusal::transfer_encoding);
        CHECK(reader.refusal_status() == 400);
    }
    CHECK(refusal_of(post("Host: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                          chunk("a") + "0\r\n\r\n")) == Refusal::transfer_encoding);
    CHECK(refusal_of(post("Host: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n")) ==
          Refusal::transfer_encoding);
    CHECK(refusal_of(post("Transfer-Encoding: chunked\r\n", chunk("a") + "0\r\n\r\n", "1.0")) ==
          Refusal::transfer_encoding);  // RFC 9112 6.1: faulty framing in HTTP/1.0
    HttpRequestReader upper(small_limits());
    CHECK(read_all(upper, post("Host: x\r\nTransfer-Encoding: Chunked\r\n", chunk(body) + "0\r\n\r\n")) ==
          State::complete);
}

TEST_CASE("http request reader: Content-Length with Transfer-Encoding, two Content-Lengths, Host",
          "[http_request_reader][framing]") {
    const auto both = chunk(body) + "0\r\n\r\n";
    CHECK(refusal_of(post("Host: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n", both)) ==
          Refusal::content_length_and_transfer_encoding);
    CHECK(refusal_of(post("Host: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n", both)) ==
          Refusal::content_length_and_transfer_encoding);
    CHECK(refusal_of(post("Host: x\r\nTransfer-Encoding: gzip\r\nContent-Length: 4\r\n", "abcd")) ==
          Refusal::content_length_and_transfer_encoding);
    CHECK(refusal_of(post("Host: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n", "abcde")) ==
          Refusal::content_length);
    CHECK(refusal_of(post("Host: x\r\nContent-Length: 4, 5\r\n", "abcde")) == Refusal::content_length);
    CHECK(refusal_of(post("Host: x\r\nContent-Length: -1\r\n", "")) == Refusal::content_length);
    HttpRequestReader same(small_limits());
    CHECK(read_all(same, post("Host: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n", "abcd")) == State::complete);

    CHECK(refusal_of(post("Content-Length: 4\r\n", "abcd")) == Refusal::host);
    CHECK(refusal_of(post("Host: a\r\nHost: b\r\nContent-Length: 4\r\n", "abcd")) == Refusal::host);
    CHECK(refusal_of(post("Host: a\r\nHost: b\r\n", "", "1.0")) == Refusal::host);
    HttpRequestReader http10(small_limits());
    CHECK(read_all(http10, post("Content-Length: 4\r\n", "abcd", "1.0")) == State::complete);
    CHECK(refusal_of("HELLO\r\n\r\n") == Refusal::malformed);
    CHECK(refusal_of("GET / HTTP/2.0\r\nHost: x\r\n\r\n") == Refusal::malformed);
}

TEST_CASE("http request reader: a body past its limit is refused by Content-Length or as chunks arrive",
          "[http_request_reader][limits]") {
    const auto limits = small_limits();
    HttpRequestReader declared(limits);
    declared.feed(post("Host: x\r\nContent-Length: 1025\r\n", ""));  // refused before the body is sent
    CHECK(declared.refusal() == Refusal::body_too_large);
    CHECK(declared.refusal_status() == 413);
    CHECK(refusal_of(post("Host: x\r\nTransfer-Encoding: chunked\r\n",
                          chunk(std::string(600, 'a')) + chunk(std::string(600, 'a')))) == Refusal::body_too_large);
    HttpRequestReader at_limit(limits);
    CHECK(read_all(at_limit, post("Host: x\r\nContent-Length: 1024\r\n", std::string(1024, 'a'))) == State::complete);
}

TEST_CASE("http request reader: 100-continue, the peer's close and new limits", "[http_request_reader]") {
    HttpRequestReader reader(small_limits());
    reader.feed(post("Host: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n", ""));
    CHECK(reader.state() == State::reading);
    CHECK(reader.head_done());
    CHECK(reader.expects_continue());
    reader.feed("abcd");
    CHECK(reader.state() == State::complete);
    CHECK_FALSE(reader.expects_continue());

    auto fewer = small_limits();
    fewer.fields = 8;
    reader.set_limits(fewer);
    CHECK(reader.limits().fields == small_limits().fields);  // the next request's, not this one's
    reader.next();
    CHECK(reader.limits().fields == 8);
    CHECK_FALSE(reader.got_some());
    reader.feed("GET / HT");
    CHECK(reader.got_some());
    reader.finish();
    CHECK(reader.state() == State::closed);

    HttpRequestReader http10(small_limits());
    http10.feed(post("Expect: 100-continue\r\nContent-Length: 4\r\n", "", "1.0"));
    CHECK_FALSE(http10.expects_continue());  // RFC 9110 10.1.1: ignored for HTTP/1.0
}
