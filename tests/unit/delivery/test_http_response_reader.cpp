// The client's sans-io HTTP response reader: bytes in, outcome out.
#include <avr_webhookd/delivery/http_response_reader.hpp>

#include <catch2/catch.hpp>

#include <string>

using namespace avr_webhookd;
using State = HttpResponseReader::State;
using Failure = HttpResponseReader::Failure;

namespace {

// Feeds `bytes` in pieces of `piece` bytes, as reads from a socket would deliver them.
void feed_in_pieces(HttpResponseReader& reader, std::string_view bytes, std::size_t piece) {
    while (!bytes.empty() && reader.state() == State::reading) {
        const auto take = std::min(piece, bytes.size());
        reader.feed(bytes.substr(0, take));
        bytes.remove_prefix(take);
    }
}

const std::string ok_200 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

}  // namespace

TEST_CASE("response reader: a plain 200 is complete and reusable", "[unit][http_response]") {
    for (const std::size_t piece : {std::size_t{1}, std::size_t{3}, std::size_t{4096}}) {
        HttpResponseReader reader;
        feed_in_pieces(reader, ok_200, piece);
        REQUIRE(reader.state() == State::complete);
        CHECK(reader.response().status == 200);
        CHECK(reader.response().body == "ok");
        CHECK(reader.reusable());
        CHECK(reader.buffered() == 0);
    }
}

TEST_CASE("response reader: 103 Early Hints then 400 is a 400", "[unit][http_response]") {
    HttpResponseReader reader;
    reader.feed(
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad");
    REQUIRE(reader.state() == State::complete);
    CHECK(reader.response().status == 400);
    CHECK(reader.response().reason == "Bad Request");
    CHECK(reader.response().body == "bad");
    CHECK(reader.interim_responses() == 1);
    CHECK(reader.reusable());
}

TEST_CASE("response reader: interim responses arriving apart are all skipped", "[unit][http_response]") {
    HttpResponseReader reader;
    reader.feed("HTTP/1.1 100 Continue\r\n\r\n");
    CHECK(reader.state() == State::reading);
    reader.feed("HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n");
    CHECK(reader.state() == State::reading);
    feed_in_pieces(reader, ok_200, 1);
    REQUIRE(reader.state() == State::complete);
    CHECK(reader.response().status == 200);
    CHECK(reader.interim_responses() == 3);
}

TEST_CASE("response reader: interim responses share the wire bound, a final one after them is read",
          "[unit][http_response]") {
    const HttpResponseLimits limits{1024, 1024};
    const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
    SECTION("up to the bound, then the final response") {
        HttpResponseReader reader(limits);
        std::string bytes;
        while (bytes.size() + interim.size() <= reader.max_wire_bytes()) bytes += interim;
        feed_in_pieces(reader, bytes + ok_200, 4096);
        REQUIRE(reader.state() == State::complete);
        CHECK(reader.response().status == 200);
    }
    SECTION("past it, a protocol failure however they are split") {
        for (const std::size_t piece : {std::size_t{7}, std::size_t{4096}}) {
            HttpResponseReader reader(limits);
            std::string flood;
            while (flood.size() <= reader.max_wire_bytes()) flood += interim;
            feed_in_pieces(reader, flood + ok_200, piece);
            REQUIRE(reader.state() == State::failed);
            CHECK(reader.failure() == Failure::protocol);
            CHECK(reader.failure_message() == "interim (1xx) responses longer than 8192 bytes in all");
        }
    }
}

TEST_CASE("response reader: 101 Switching Protocols is a protocol error", "[unit][http_response]") {
    HttpResponseReader reader;
    reader.feed("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    REQUIRE(reader.state() == State::failed);
    CHECK(reader.failure() == Failure::protocol);
    CHECK_THAT(reader.failure_message(), Catch::Contains("101"));
}

TEST_CASE("response reader: bytes after the final response make it not reusable", "[unit][http_response]") {
    SECTION("in the same read") {
        HttpResponseReader reader;
        reader.feed(ok_200 + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        REQUIRE(reader.state() == State::complete);
        CHECK(reader.response().status == 200);
        CHECK_FALSE(reader.reusable());
    }
    SECTION("in a later feed") {
        HttpResponseReader reader;
        reader.feed(ok_200);
        REQUIRE(reader.reusable());
        reader.feed("garbage");
        CHECK_FALSE(reader.reusable());
    }
}

TEST_CASE("response reader: Connection close and HTTP/1.0 are not reusable", "[unit][http_response]") {
    HttpResponseReader close;
    close.feed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    REQUIRE(close.state() == State::complete);
    CHECK_FALSE(close.reusable());
    HttpResponseReader old;
    old.feed("HTTP/1.0 204 No Content\r\n\r\n");
    REQUIRE(old.state() == State::complete);
    CHECK(old.response().status == 204);
    CHECK_FALSE(old.reusable());
}

TEST_CASE("response reader: chunked body", "[unit][http_response]") {
    // Piece sizes 1..7 move every boundary across the last chunk (fuzzing found a Beast assertion
    // there, for a rest of 4 bytes after "0\r\n").
    for (std::size_t piece = 1; piece <= 7; ++piece) {
        HttpResponseReader reader;
        feed_in_pieces(reader,
                       "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nRetry-After: 7\r\n\r\n"
                       "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
                       piece);
        INFO(piece);
        REQUIRE(reader.state() == State::complete);
        CHECK(reader.response().status == 503);
        CHECK(reader.response().body == "hello world");
        CHECK(reader.response().retry_after == "7");
        CHECK(reader.reusable());
    }
    HttpResponseReader minimal;
    feed_in_pieces(minimal, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1);
    REQUIRE(minimal.state() == State::complete);
    CHECK(minimal.reusable());
}

TEST_CASE("response reader: head at and over the limit", "[unit][http_response]") {
    const HttpResponseLimits limits{1024, 1024};
    const std::string start = "HTTP/1.1 200 OK\r\nX-Pad: ";
    const std::string end = "\r\nContent-Length: 0\r\n\r\n";
    SECTION("a head of exactly the limit is read") {
        HttpResponseReader reader(limits);
        reader.feed(start + std::string(limits.head - start.size() - end.size(), 'a') + end);
        REQUIRE(reader.state() == State::complete);
        CHECK(reader.response().status == 200);
    }
    SECTION("one byte more is a protocol failure, whatever the pieces") {
        for (const std::size_t piece : {std::size_t{1}, std::size_t{100}, std::size_t{5000}}) {
            HttpResponseReader reader(limits);
            feed_in_pieces(reader, start + std::string(limits.head - start.size() - end.size() + 1, 'a') + end, piece);
            REQUIRE(reader.state() == State::failed);
            CHECK(reader.failure() == Failure::protocol);
            CHECK(reader.failure_message() == "response head larger than 1024 bytes");
        }
    }
    SECTION("an endless head stops at the buffer bound") {
        HttpResponseReader reader(limits);
        reader.feed(start);
        while (reader.state() == State::reading) {
            reader.feed(std::string(100, 'a'));
            REQUIRE(reader.buffered() <= reader.max_buffered());
        }
        CHECK(reader.failure() == Failure::protocol);
        CHECK(reader.bytes_received() <= reader.max_buffered() + 100);
    }
    SECTION("endless fields trickled one by one, each taken whole by Beast, stop at the limit") {
        // Each piece ends one byte into the next field: Beast parses the whole fields before it at
        // once, so the buffer stays small and only the head's own count can end it.
        HttpResponseReader reader(limits);
        reader.feed("HTTP/1.1 200 OK\r\nX");
        for (int i = 0; i < 1000 && reader.state() == State::reading; ++i) {
            reader.feed("-Pad: aaaaaaaa\r\nX");
            REQUIRE(reader.buffered() < 64);
        }
        REQUIRE(reader.state() == State::failed);
        CHECK(reader.failure_message() == "response head larger than 1024 bytes");
        CHECK(reader.bytes_received() <= limits.head + 64);
    }
}

TEST_CASE("response reader: an endless chunk-size line is a bounded protocol failure", "[unit][http_response]") {
    HttpResponseReader reader;
    reader.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;");
    std::size_t fed = 0;
    while (reader.state() == State::reading && fed < 10'000'000) {
        reader.feed("a=b;");
        fed += 4;
        REQUIRE(reader.buffered() <= reader.max_buffered());
    }
    REQUIRE(reader.state() == State::failed);
    CHECK(reader.failure() == Failure::protocol);
    CHECK_THAT(reader.failure_message(), Catch::Contains("chunk header"));
    CHECK(fed <= reader.max_buffered());
}

// Issue 18: the same growth as the HTTP intake's, through the last chunk's trailers.
TEST_CASE("response reader: an endless trailer, or trailer fields by the thousand, are bounded",
          "[unit][http_response]") {
    const std::string start = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n";
    const auto endless = [&](const std::string& first, const std::string& repeated) {
        HttpResponseReader reader;
        reader.feed(start + first);
        std::size_t fed = 0;
        while (reader.state() == State::reading && fed < 10'000'000) {
            reader.feed(repeated);
            fed += repeated.size();
            REQUIRE(reader.buffered() <= reader.max_buffered());
        }
        REQUIRE(reader.state() == State::failed);
        CHECK(reader.failure() == Failure::protocol);
        CHECK_THAT(reader.failure_message(), Catch::Contains("chunk header or trailer"));
        CHECK(fed <= reader.max_buffered());
    };
    endless("X-Trailer: ", "aaaa");
    endless("", "T: 1\r\n");
    // A few trailer fields are read and the response kept.
    HttpResponseReader reader;
    reader.feed(start + "X-A: 1\r\nX-B: 2\r\n\r\n");
    REQUIRE(reader.state() == State::complete);
    CHECK(reader.response().body == "ok");
    CHECK(reader.reusable());
}

TEST_CASE("response reader: endless small chunks with extensions end at the wire bound", "[unit][http_response]") {
    HttpResponseReader reader;
    reader.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string chunk = "1;" + std::string(200, 'x') + "\r\nz\r\n";
    std::size_t fed = 0;
    while (reader.state() == State::reading && fed < 10'000'000) {
        reader.feed(chunk);
        fed += chunk.size();
    }
    REQUIRE(reader.state() == State::complete);
    CHECK(reader.response().status == 200);
    CHECK(reader.response().body_truncated);
    CHECK_FALSE(reader.reusable());
    CHECK(fed <= reader.max_wire_bytes() + chunk.size());
}

TEST_CASE("response reader: a body over the limit keeps its status, not the connection", "[unit][http_response]") {
    const HttpResponseLimits limits{1024, 100};
    SECTION("declared by Content-Length") {
        HttpResponseReader reader(limits);
        reader.feed("HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n");
        REQUIRE(reader.state() == State::complete);
        CHECK(reader.response().status == 200);
        CHECK(reader.response().body_truncated);
        CHECK_FALSE(reader.reusable());
    }
    SECTION("a body of exactly the limit is read whole") {
        HttpResponseReader reader(limits);
        reader.feed("HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'e'));
        REQUIRE(reader.state() == State::complete);
        CHECK(reader.response().body.size() == 100);
        CHECK_FALSE(reader.response().body_truncated);
        CHECK(reader.reusable());
    }
    SECTION("chunked") {
        HttpResponseReader reader(limits);
        reader.feed("HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + std::string(100, 'e') +
                    "\r\n1\r\n");
        REQUIRE(reader.state() == State::complete);
        CHECK(reader.response().status == 502);
        CHECK(reader.response().body_truncated);
        CHECK(reader.response().body.size() <= 100);
        CHECK_FALSE(reader.reusable());
    }
    SECTION("until EOF") {
        HttpResponseReader reader(limits);
        reader.feed("HTTP/1.1 200 OK\r\n\r\n" + std::string(200, 'e'));
        REQUIRE(reader.state() == State::complete);
        CHECK(reader.response().body_truncated);
        CHECK_FALSE(reader.reusable());
    }
}

TEST_CASE("response reader: garbage status line is a protocol failure", "[unit][http_response]") {
    for (const std::string garbage : {"HTTP/1.1 2000 OK\r\n\r\n", "SSH-2.0-OpenSSH_9.2\r\n\r\n", "hello world\r\n\r\n",
                                      "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                                      // found by fuzzing: a status below 100 with a body running to EOF
                                      "HTTP/1.1 051 Early Hints\r\nLink: preload\r\n\r\nbody"}) {
        HttpResponseReader reader;
        reader.feed(garbage);
        INFO(garbage);
        REQUIRE(reader.state() == State::failed);
        CHECK(reader.failure() == Failure::protocol);
        CHECK_THAT(reader.failure_message(), Catch::StartsWith("invalid HTTP response"));
    }
}

TEST_CASE("response reader: the peer closing early", "[unit][http_response]") {
    SECTION("before any byte: reset, nothing received") {
        HttpResponseReader reader;
        reader.finish();
        REQUIRE(reader.state() == State::failed);
        CHECK(reader.failure() == Failure::reset);
        CHECK(reader.bytes_received() == 0);
    }
    SECTION("in the middle of the body: reset") {
        HttpResponseReader reader;
        reader.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345");
        reader.finish();
        REQUIRE(reader.state() == State::failed);
        CHECK(reader.failure() == Failure::reset);
        CHECK_THAT(reader.failure_message(), Catch::Contains("middle of the response"));
    }
    SECTION("in the middle of the head: reset") {
        HttpResponseReader reader;
        reader.feed("HTTP/1.1 200 OK\r\nContent-Le");
        reader.finish();
        CHECK(reader.failure() == Failure::reset);
    }
    SECTION("a body that runs to EOF is complete, not reusable") {
        HttpResponseReader reader;
        reader.feed("HTTP/1.1 200 OK\r\n\r\nall of it");
        CHECK(reader.state() == State::reading);
        reader.finish();
        REQUIRE(reader.state() == State::complete);
        CHECK(reader.response().body == "all of it");
        CHECK_FALSE(reader.reusable());
    }
}

TEST_CASE("response reader: Location and Retry-After are kept", "[unit][http_response]") {
    HttpResponseReader reader;
    reader.feed(
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n");
    REQUIRE(reader.state() == State::complete);
    CHECK(reader.response().status == 429);
    CHECK(reader.response().retry_after == "120");
    CHECK(reader.response().location == "/elsewhere");
}

TEST_CASE("response reader: restarted for the next response of a connection", "[unit][http_response]") {
    HttpResponseReader reader;
    reader.feed(
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\nLocation: /elsewhere\r\nContent-Length: 4\r\n\r\nslow");
    REQUIRE(reader.state() == State::complete);
    const auto buffer_room = reader.prepare().size();  // nothing to prepare once complete
    CHECK(buffer_room == 0);

    SECTION("after a complete one, nothing of it is left") {
        reader.restart();
        CHECK(reader.state() == State::reading);
        CHECK(reader.bytes_received() == 0);
        feed_in_pieces(reader, "HTTP/1.1 103 Early Hints\r\n\r\n" + ok_200, 5);
        REQUIRE(reader.state() == State::complete);
        CHECK(reader.response().status == 200);
        CHECK(reader.response().body == "ok");
        CHECK(reader.response().retry_after.empty());
        CHECK(reader.response().location.empty());
        CHECK(reader.interim_responses() == 1);
        CHECK(reader.reusable());
    }
    SECTION("after a failed one, the failure is forgotten") {
        reader.restart();
        reader.feed("HTTP/1.1 101 Switching Protocols\r\n\r\n");
        REQUIRE(reader.state() == State::failed);
        reader.restart();
        CHECK(reader.failure() == Failure::none);
        CHECK(reader.failure_message().empty());
        reader.feed(ok_200);
        REQUIRE(reader.state() == State::complete);
        CHECK(reader.reusable());
    }
    SECTION("a response read in the middle of its head when restarted is dropped whole") {
        reader.restart();
        reader.feed("HTTP/1.1 200 OK\r\nContent-Le");
        REQUIRE(reader.state() == State::reading);
        reader.restart();
        reader.feed(ok_200);
        REQUIRE(reader.state() == State::complete);
        CHECK(reader.response().body == "ok");
        CHECK(reader.reusable());
    }
}
