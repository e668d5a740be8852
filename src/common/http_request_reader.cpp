#include <avr_webhookd/common/http_request_reader.hpp>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace avr_webhookd {

namespace http = boost::beast::http;
using boost::system::error_code;

unsigned http_refusal_status(HttpRequestRefusal refusal) {
    switch (refusal) {
    case HttpRequestRefusal::none:
        return 0;
    case HttpRequestRefusal::head_too_large:
    case HttpRequestRefusal::too_many_fields:
        return 431;
    case HttpRequestRefusal::body_too_large:
    case HttpRequestRefusal::request_too_large:
        return 413;
    default:
        return 400;
    }
}

std::string_view http_refusal_reason(HttpRequestRefusal refusal) {
    switch (refusal) {
    case HttpRequestRefusal::none:
        return "";
    case HttpRequestRefusal::head_too_large:
        return "head_too_large";
    case HttpRequestRefusal::too_many_fields:
        return "too_many_fields";
    case HttpRequestRefusal::body_too_large:
        return "body_too_large";
    case HttpRequestRefusal::request_too_large:
        return "request_too_large";
    case HttpRequestRefusal::transfer_encoding:
        return "transfer_encoding";
    case HttpRequestRefusal::content_length_and_transfer_encoding:
        return "content_length_and_transfer_encoding";
    case HttpRequestRefusal::content_length:
        return "content_length";
    case HttpRequestRefusal::host:
        return "host";
    case HttpRequestRefusal::malformed:
        return "malformed";
    }
    return "malformed";
}

// Beast's parser building the request, with the checks Beast leaves out made in its callbacks:
// a callback that refuses records why and stops the parser with an error.
class HttpRequestReader::Parser : public http::basic_parser<true> {
public:
    explicit Parser(const HttpRequestLimits& limits) : limits_(limits) {
        header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(limits.head, UINT32_MAX)));
        body_limit(limits.body);
        eager(false);  // stop after the head, so that its size is known; eager for the body
    }

    Request message;
    HttpRequestRefusal refusal = HttpRequestRefusal::none;
    std::string refusal_message;
    unsigned version = 11;
    bool expect_continue = false;
    bool content_length_seen = false;
    unsigned transfer_encodings = 0;

private:
    using string_view = boost::beast::string_view;

    void stop(error_code& ec, HttpRequestRefusal why, std::string message) {
        refusal = why;
        refusal_message = std::move(message);
        ec = http::error::bad_value;
    }

    void on_request_impl(http::verb method, string_view method_text, string_view target, int http_version,
                         error_code&) override {
        if (method == http::verb::unknown) message.method_string(method_text);
        else message.method(method);
        message.target(target);
        message.version(static_cast<unsigned>(http_version));
        version = static_cast<unsigned>(http_version);
    }
    void on_response_impl(int, string_view, int, error_code&) override {}  // requests only
    void on_field_impl(http::field name, string_view name_text, string_view value, error_code& ec) override {
        if (++fields_ > limits_.fields) {
            stop(ec, HttpRequestRefusal::too_many_fields,
                 "more than " + std::to_string(limits_.fields) + " header fields");
            return;
        }
        if (is_header_done()) return;  // a trailer field: counted, not kept (RFC 9110 6.5)
        if (name == http::field::host) ++hosts_;
        if (name == http::field::content_length) content_length_seen = true;
        if (name == http::field::transfer_encoding) {
            ++transfer_encodings;
            chunked_only_ = boost::beast::iequals(value, "chunked");
        }
        if (name == http::field::expect) expect_continue = boost::beast::iequals(value, "100-continue");
        message.insert(name, name_text, value);
    }
    // RFC 9112: 6.1 (Transfer-Encoding), 6.3 (message body length), 3.2 (Host).
    void on_header_impl(error_code& ec) override {
        if (transfer_encodings > 0 && content_length_seen)
            stop(ec, HttpRequestRefusal::content_length_and_transfer_encoding,
                 "both Content-Length and Transfer-Encoding");
        else if (transfer_encodings > 1 || (transfer_encodings == 1 && !chunked_only_))
            stop(ec, HttpRequestRefusal::transfer_encoding,
                 "Transfer-Encoding other than \"chunked\" (the only transfer coding accepted, alone)");
        else if (transfer_encodings > 0 && version < 11)  // its framing is faulty (RFC 9112 6.1)
            stop(ec, HttpRequestRefusal::transfer_encoding, "Transfer-Encoding in an HTTP/1.0 request");
        else if (hosts_ > 1 || (hosts_ == 0 && version >= 11))
            stop(ec, HttpRequestRefusal::host, "an HTTP/1.1 request needs exactly one Host header");
    }
    void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
        if (length) message.body().reserve(static_cast<std::size_t>(*length));  // within limits.body (Beast checked)
    }
    std::size_t on_body_impl(string_view data, error_code&) override {
        message.body().append(data.data(), data.size());
        return data.size();
    }
    void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}  // extensions are ignored
    std::size_t on_chunk_body_impl(std::uint64_t, string_view data, error_code&) override {
        message.body().append(data.data(), data.size());
        return data.size();
    }
    void on_finish_impl(error_code&) override {}

    HttpRequestLimits limits_;
    std::size_t fields_ = 0;
    unsigned hosts_ = 0;
    bool chunked_only_ = false;
};

HttpRequestReader::HttpRequestReader(HttpRequestLimits limits)
    : limits_(limits), next_limits_(limits), parser_(std::make_unique<Parser>(limits_)) {}

HttpRequestReader::~HttpRequestReader() = default;

bool HttpRequestReader::head_done() const { return parser_->is_header_done(); }

bool HttpRequestReader::expects_continue() const {
    return state_ == State::reading && parser_->is_header_done() && parser_->expect_continue && parser_->version >= 11;
}

unsigned HttpRequestReader::version() const { return parser_->version; }

HttpRequestReader::Request& HttpRequestReader::request() { return parser_->message; }

HttpRequestReader::Request HttpRequestReader::release() { return std::move(parser_->message); }

void HttpRequestReader::next() {
    if (state_ != State::complete) return;
    limits_ = next_limits_;
    parser_ = std::make_unique<Parser>(limits_);
    request_bytes_ = 0;
    head_bytes_ = 0;
    state_ = State::reading;
    parse();
}

std::span<char> HttpRequestReader::prepare() {
    // parse() refuses a request before the buffer is full, so there is always room here.
    return state_ == State::reading ? buffer_.prepare(max_buffered()) : std::span<char>{};
}

void HttpRequestReader::commit(std::size_t count) {
    if (state_ != State::reading || buffer_.commit(count) == 0) return;
    parse();
}

std::size_t HttpRequestReader::feed(std::string_view bytes) {
    std::size_t taken = 0;
    while (taken < bytes.size() && state_ == State::reading) {
        const auto space = prepare();
        const auto count = std::min(space.size(), bytes.size() - taken);
        std::memcpy(space.data(), bytes.data() + taken, count);
        taken += count;
        commit(count);
    }
    return taken;
}

void HttpRequestReader::finish() {
    if (state_ == State::reading) state_ = State::closed;
}

void HttpRequestReader::parse() {
    while (state_ == State::reading && step()) {}
    if (state_ != State::reading) return;
    // What is still unparsed belongs to this request (the parser takes all it can of it).
    if (!parser_->is_header_done() && head_bytes_ + buffer_.size() > limits_.head) {
        refuse_head_too_large(limits_.head);
    } else if (request_bytes_ + buffer_.size() > limits_.request) {
        refuse_too_large();
    } else if (buffer_.size() >= max_buffered()) {
        refuse(HttpRequestRefusal::request_too_large,
               "a chunk size line or the trailers longer than " + std::to_string(max_buffered()) + " bytes");
    }
}

bool HttpRequestReader::step() {
    if (buffer_.size() == 0) return false;
    auto& parser = *parser_;
    // Beast asserts that a chunked body's unparsed rest, once it has seen the last chunk's "0\r\n",
    // is at least 5 bytes. Waiting for 5 never stalls: the last chunk and its CRLF (5 bytes) are
    // only consumed together, when the request completes (as HttpResponseReader does).
    if (parser.is_header_done() && parser.chunked() && buffer_.size() < 5) return false;
    const bool in_head = !parser.is_header_done();
    // Beast takes the fields of a head as they come, each put() bounded alone: it sees no more of
    // a head than what is left of limits.head, so a head never gets past it to be parsed.
    const auto size =
        in_head ? std::min(buffer_.size(), limits_.head - std::min(head_bytes_, limits_.head)) : buffer_.size();
    if (size == 0) return false;  // parse() refuses the head
    error_code ec;
    const auto consumed = parser.put(boost::asio::buffer(buffer_.data().data(), size), ec);
    buffer_.consume(consumed);
    request_bytes_ += consumed;
    if (in_head) head_bytes_ += consumed;
    // A request past its limit is refused for its size, whatever else a callback found wrong with
    // it (the head cannot pass limits.head: Beast never saw more of it).
    if (request_bytes_ > limits_.request) {
        refuse_too_large();
        return false;
    }
    if (ec && ec != http::error::need_more) {
        refuse_for(ec);
        return false;
    }
    if (in_head && parser.is_header_done()) parser.eager(true);
    if (parser.is_done()) {
        state_ = State::complete;
        return false;
    }
    return !ec && consumed > 0;
}

void HttpRequestReader::refuse(HttpRequestRefusal refusal, std::string message) {
    state_ = State::refused;
    refusal_ = refusal;
    refusal_message_ = std::move(message);
}

void HttpRequestReader::refuse_head_too_large(std::size_t bound) {
    refuse(HttpRequestRefusal::head_too_large, "request head larger than " + std::to_string(bound) + " bytes");
}

// Past limits.request: 431 when the head alone is (a request bound below the head's, however the
// head's bytes were split into reads), else 413.
void HttpRequestReader::refuse_too_large() {
    if (!parser_->is_header_done() || head_bytes_ > limits_.request)
        refuse_head_too_large(std::min(limits_.head, limits_.request));
    else
        refuse(HttpRequestRefusal::request_too_large, "request larger than " + std::to_string(limits_.request) +
                                                          " bytes (head, chunk framing, trailers and body together)");
}

// Beast's own errors, and those our callbacks stopped it with, as refusals.
void HttpRequestReader::refuse_for(const error_code& ec) {
    auto& parser = *parser_;
    if (parser.refusal != HttpRequestRefusal::none) {
        refuse(parser.refusal, std::move(parser.refusal_message));
    } else if (ec == http::error::header_limit) {
        refuse_head_too_large(limits_.head);
    } else if (ec == http::error::body_limit) {
        refuse(HttpRequestRefusal::body_too_large,
               "request body larger than " + std::to_string(limits_.body) + " bytes");
    } else if ((ec == http::error::bad_transfer_encoding && parser.content_length_seen) ||
               (ec == http::error::bad_content_length && parser.transfer_encodings > 0)) {
        refuse(HttpRequestRefusal::content_length_and_transfer_encoding, "both Content-Length and Transfer-Encoding");
    } else if (ec == http::error::bad_transfer_encoding) {
        refuse(HttpRequestRefusal::transfer_encoding,
               "Transfer-Encoding other than \"chunked\" (the only transfer coding accepted, alone)");
    } else if (ec == http::error::bad_content_length || ec == http::error::multiple_content_length) {
        refuse(HttpRequestRefusal::content_length, "an invalid Content-Length, or two different ones");
    } else {
        refuse(HttpRequestRefusal::malformed, "malformed HTTP request: " + ec.message());
    }
}

}  // namespace avr_webhookd
