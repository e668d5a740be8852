#pragma once

#include <avr_webhookd/common/read_buffer.hpp>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace avr_webhookd {

// The bounds on one HTTP/1.1 request as it arrives, for the HTTP intake and the admin endpoint.
struct HttpRequestLimits {
    std::size_t request = 96 * 1024;  // every byte on the wire: head, chunk sizes and extensions, trailers, body
    std::size_t head = 16 * 1024;     // request line and header fields
    std::size_t body = 64 * 1024;     // the body, chunk framing removed
    std::size_t fields = 100;         // header fields, trailer fields included
};

// Why a request was refused. Each has its status (http_refusal_status) and its metric label
// (http_refusal_reason); the connection is closed after the answer.
enum class HttpRequestRefusal {
    none,
    head_too_large,     // 431: the request line and header fields take more than limits.head (or than
                        //      limits.request, where that is the lower)
    too_many_fields,    // 431: more than limits.fields header (or trailer) fields
    body_too_large,     // 413: a body (by Content-Length or as chunks arrive) longer than limits.body
    request_too_large,  // 413: chunk framing and trailers take the request past limits.request, or a chunk
                        //      line or the trailers do not end within max_buffered()
    transfer_encoding,  // 400: a Transfer-Encoding other than exactly one final "chunked", or any in
                        //      HTTP/1.0 (RFC 9112 6.1)
    content_length_and_transfer_encoding,  // 400: both (RFC 9112 6.1: request smuggling)
    content_length,                        // 400: an invalid Content-Length, or two different ones
    host,                                  // 400: an HTTP/1.1 request without Host, or more than one Host
    malformed,                             // 400: not HTTP/1.0 or 1.1
};

unsigned http_refusal_status(HttpRequestRefusal refusal);
std::string_view http_refusal_reason(HttpRequestRefusal refusal);  // "head_too_large", ... ("" for none)

// Reads HTTP/1.x requests from bytes, without sockets, one after another on a keep-alive
// connection: the server reads into prepare(), reports the count with commit() and the peer's
// close with finish(), until state() is no longer `reading`; after a complete request, release()
// takes it and next() starts on the next one with the bytes already read past it.
//
// Beast parses; the rules Beast 1.81 leaves out are enforced here: every byte of a request counts
// against limits.request, chunk extensions and trailers included (Beast bounds neither); the head
// as a whole against limits.head (Beast bounds the request line and the fields separately); the
// number of fields; and the framing rules of RFC 9112 that Beast reads leniently (a
// Transfer-Encoding that does not end in chunked would be read as an empty body, so a request
// hidden in the body would be taken as the next one). Trailer fields are counted, not kept.
// Memory: at most max_buffered() unparsed bytes, the header fields and the body.
class HttpRequestReader {
public:
    using Request = boost::beast::http::request<boost::beast::http::string_body>;
    enum class State {
        reading,   // more bytes are needed
        complete,  // request() is the next request
        refused,   // refusal() says why; answer it with its status and close the connection
        closed,    // the peer closed before a complete request (got_some() says whether it sent a part)
    };
    static constexpr std::size_t read_size = ReadBuffer::read_size;

    explicit HttpRequestReader(HttpRequestLimits limits = {});
    ~HttpRequestReader();
    HttpRequestReader(const HttpRequestReader&) = delete;
    HttpRequestReader& operator=(const HttpRequestReader&) = delete;

    // The limits for the requests next() starts (a reload); the one being read keeps its own.
    void set_limits(const HttpRequestLimits& limits) { next_limits_ = limits; }
    const HttpRequestLimits& limits() const { return limits_; }

    // Where the next read goes: at most read_size bytes, never empty while state() is reading.
    std::span<char> prepare();
    // `count` bytes were written into the span of the last prepare(); parses what it can.
    void commit(std::size_t count);
    // For tests and fuzzing: prepare/copy/commit until `bytes` are used up or reading ends;
    // returns how many were taken.
    std::size_t feed(std::string_view bytes);
    // The peer closed its side: a request not yet complete is `closed`.
    void finish();

    State state() const { return state_; }
    HttpRequestRefusal refusal() const { return refusal_; }
    unsigned refusal_status() const { return http_refusal_status(refusal_); }
    // Why, in words, without peer data (safe to log and to answer): "more than 100 header fields".
    const std::string& refusal_message() const { return refusal_message_; }

    bool got_some() const { return request_bytes_ + buffer_.size() > 0; }  // of the current request
    bool head_done() const;
    // The head asked for "Expect: 100-continue" (HTTP/1.1) and the body is still to come.
    bool expects_continue() const;
    // HTTP version of the current request once its request line was read (11 before that).
    unsigned version() const;

    // The complete request; release() moves it out.
    Request& request();
    Request release();
    // After a complete request: starts on the next one, parsing what was read past the last.
    void next();

    std::size_t buffered() const { return buffer_.size(); }
    std::size_t max_buffered() const { return limits_.head + read_size; }
    std::size_t request_bytes() const { return request_bytes_; }  // wire bytes of the current request parsed

private:
    class Parser;
    void parse();
    bool step();  // one parser call; false when more input is needed or reading ended
    void refuse(HttpRequestRefusal refusal, std::string message);
    void refuse_for(const boost::system::error_code& ec);
    void refuse_too_large();
    void refuse_head_too_large(std::size_t bound);

    HttpRequestLimits limits_;
    HttpRequestLimits next_limits_;
    std::unique_ptr<Parser> parser_;
    ReadBuffer buffer_;              // unparsed bytes
    std::size_t request_bytes_ = 0;  // consumed by the parser for the current request
    std::size_t head_bytes_ = 0;     // ... while reading its head
    State state_ = State::reading;
    HttpRequestRefusal refusal_ = HttpRequestRefusal::none;
    std::string refusal_message_;
};

}  // namespace avr_webhookd
