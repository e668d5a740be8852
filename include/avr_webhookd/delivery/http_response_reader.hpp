#pragma once

#include <avr_webhookd/common/read_buffer.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace avr_webhookd {

struct HttpResponseLimits {
    std::size_t head = 16 * 1024;  // status line and header fields of one response (each 1xx too)
    std::size_t body = 64 * 1024;  // body kept; a larger one still counts by its status
};

// The final response, once HttpResponseReader::state() is complete.
struct HttpResponse {
    int status = 0;
    std::string reason;
    std::string location;         // Location header, if any
    std::string retry_after;      // Retry-After header, if any
    std::string body;             // at most HttpResponseLimits::body bytes
    bool body_truncated = false;  // the body was larger than the limit (or its framing on the wire too long)
};

// Reads one HTTP/1.1 response to a POST from bytes, without sockets: the client reads into
// prepare(), reports the count with commit() and the peer's close with finish(), until state()
// is no longer `reading`. Interim 1xx responses (100 Continue, 102, 103 Early Hints ...) are
// skipped until the final one; 101 is a protocol error (we never ask to switch protocols).
//
// Memory is bounded: at most max_buffered() unparsed bytes (a head in progress, a chunk-size line
// or trailer) plus the body limit. A head over the limit, or a chunk line that does not end
// within the buffer, fails as a protocol error; a body over the limit ends the read early with
// the status still valid and the connection not reusable.
//
// reusable() is true only for a complete keep-alive response with no byte left over: a byte that
// came after the final response belongs to no request of ours, so that connection must not carry
// another one (it would be answered with a stale response).
//
// One reader serves a connection's responses one after the other: restart() begins the next one
// and keeps the buffer and the parser's room, so that a response costs no allocation of its own.
class HttpResponseReader {
public:
    enum class State { reading, complete, failed };
    enum class Failure { none, protocol, reset };  // reset: the peer closed before a full response
    static constexpr std::size_t read_size = ReadBuffer::read_size;

    explicit HttpResponseReader(HttpResponseLimits limits = {});
    ~HttpResponseReader();
    HttpResponseReader(const HttpResponseReader&) = delete;
    HttpResponseReader& operator=(const HttpResponseReader&) = delete;

    // Forgets the last response (which must have been complete or failed, or none read yet) and
    // reads the next one; the buffer is kept.
    void restart();

    // Where the next read goes: at most read_size bytes, never empty while state() is reading.
    std::span<char> prepare();
    // `count` bytes were written into the span of the last prepare(); parses what it can.
    void commit(std::size_t count);
    // Convenience for tests and fuzzing: prepare/copy/commit until `bytes` are used up. Bytes
    // beyond the end of the final response make it not reusable.
    void feed(std::string_view bytes);
    // The peer closed its side (EOF): completes a body that runs to EOF, else fails as reset.
    void finish();

    State state() const { return state_; }
    Failure failure() const { return failure_; }
    const std::string& failure_message() const { return failure_message_; }
    const HttpResponse& response() const { return response_; }
    HttpResponse& response() { return response_; }
    bool reusable() const { return state_ == State::complete && reusable_ && buffer_.size() == 0; }

    std::size_t bytes_received() const { return bytes_received_; }
    std::size_t interim_responses() const { return interim_responses_; }
    std::size_t buffered() const { return buffer_.size(); }
    std::size_t max_buffered() const { return limits_.head + read_size; }
    // Wire bytes a final response may take (framing included) before its body counts as too large;
    // the interim (1xx) responses before it, all together, fail past it.
    std::size_t max_wire_bytes() const { return 4 * (limits_.head + limits_.body); }

private:
    struct Parser;
    void parse();
    bool step();  // one parser call; false when more input is needed or reading ended
    void complete(bool body_truncated);
    void fail(Failure failure, std::string message);

    HttpResponseLimits limits_;
    std::unique_ptr<Parser> parser_;  // made once; holds the response being parsed, anew after each 1xx
    ReadBuffer buffer_;               // unparsed bytes
    std::size_t bytes_received_ = 0;
    std::size_t response_wire_bytes_ = 0;  // consumed by the parser for the current response
    std::size_t interim_wire_bytes_ = 0;   // taken by the 1xx responses before it
    std::size_t interim_responses_ = 0;
    State state_ = State::reading;
    Failure failure_ = Failure::none;
    std::string failure_message_;
    HttpResponse response_;
    bool reusable_ = false;
};

}  // namespace avr_webhookd
