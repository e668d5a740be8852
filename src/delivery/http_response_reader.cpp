#include <avr_webhookd/delivery/http_response_reader.hpp>

#include <boost/beast/http.hpp>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

namespace avr_webhookd {

namespace http = boost::beast::http;

namespace {

// Beast's parser keeping only what HttpResponse needs: the status line, the first Location and
// Retry-After, and the body (at most the body limit: Beast's body_limit stops it). A
// response_parser would store every header field in a basic_fields, an allocation each (five for
// nginx's plain 200), which the profile of the relay showed among its largest costs.
class ResponseParser : public http::basic_parser<false> {
public:
    explicit ResponseParser(const HttpResponseLimits& limits) {
        header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(limits.head, UINT32_MAX)));
        body_limit(limits.body);
        eager(false);  // stop after the head, so that its exact size is known; eager for the body
    }

    int status = 0;
    std::string reason;
    std::optional<std::string> location, retry_after;
    std::string body;

private:
    using error_code = boost::system::error_code;
    using string_view = boost::beast::string_view;

    void on_request_impl(http::verb, string_view, string_view, int, error_code&) override {}  // responses only
    void on_response_impl(int code, string_view text, int, error_code&) override {
        status = code;
        reason.assign(text.data(), text.size());
    }
    void on_field_impl(http::field name, string_view, string_view value, error_code&) override {
        if (name == http::field::location && !location) location.emplace(value.data(), value.size());
        if (name == http::field::retry_after && !retry_after) retry_after.emplace(value.data(), value.size());
    }
    void on_header_impl(error_code&) override {}
    void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
    std::size_t on_body_impl(string_view data, error_code&) override {
        body.append(data.data(), data.size());
        return data.size();
    }
    void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, string_view data, error_code&) override {
        body.append(data.data(), data.size());
        return data.size();
    }
    void on_finish_impl(error_code&) override {}
};

std::string head_too_large(const HttpResponseLimits& limits) {
    return "response head larger than " + std::to_string(limits.head) + " bytes";
}

}  // namespace

// Made once per reader; each response (each 1xx too) gets a new ResponseParser in place.
struct HttpResponseReader::Parser {
    std::optional<ResponseParser> current;
};

HttpResponseReader::HttpResponseReader(HttpResponseLimits limits) : limits_(limits) {}

HttpResponseReader::~HttpResponseReader() = default;

void HttpResponseReader::restart() {
    if (parser_) parser_->current.reset();
    buffer_.clear();
    bytes_received_ = 0;
    response_wire_bytes_ = 0;
    interim_wire_bytes_ = 0;
    interim_responses_ = 0;
    state_ = State::reading;
    failure_ = Failure::none;
    failure_message_.clear();
    response_ = HttpResponse{};
    reusable_ = false;
}

std::span<char> HttpResponseReader::prepare() {
    // parse() fails the read before the buffer is full, so there is always room here.
    return state_ == State::reading ? buffer_.prepare(max_buffered()) : std::span<char>{};
}

void HttpResponseReader::commit(std::size_t count) {
    if (state_ != State::reading) return;
    count = buffer_.commit(count);
    if (count == 0) return;
    bytes_received_ += count;
    parse();
}

void HttpResponseReader::feed(std::string_view bytes) {
    while (!bytes.empty() && state_ == State::reading) {
        const auto space = prepare();
        const auto count = std::min(space.size(), bytes.size());
        std::memcpy(space.data(), bytes.data(), count);
        bytes.remove_prefix(count);
        commit(count);
    }
    if (!bytes.empty() && state_ == State::complete) reusable_ = false;  // bytes nobody asked for
}

void HttpResponseReader::finish() {
    if (state_ != State::reading) return;
    if (bytes_received_ == 0) {
        fail(Failure::reset, "the server closed the connection without a response");
        return;
    }
    if (parser_ && parser_->current && parser_->current->is_header_done() && parser_->current->need_eof() &&
        buffer_.size() == 0) {
        boost::system::error_code ec;
        parser_->current->put_eof(ec);
        if (!ec) {
            complete(false);
            reusable_ = false;  // the close was the end of the body
            return;
        }
    }
    fail(Failure::reset, "the server closed the connection in the middle of the response");
}

void HttpResponseReader::parse() {
    while (state_ == State::reading && step()) {}
    if (state_ == State::reading && buffer_.size() >= max_buffered()) {
        const bool in_head = !parser_ || !parser_->current || !parser_->current->is_header_done();
        fail(Failure::protocol,
             in_head ? head_too_large(limits_)
                     : "response chunk header or trailer larger than " + std::to_string(max_buffered()) + " bytes");
    }
}

bool HttpResponseReader::step() {
    if (buffer_.size() == 0) return false;
    if (!parser_) parser_ = std::make_unique<Parser>();
    if (!parser_->current) {
        parser_->current.emplace(limits_);
        response_wire_bytes_ = 0;
    }
    auto& parser = *parser_->current;
    // Beast asserts that a chunked body's unparsed rest, once it has seen the last chunk's "0\r\n",
    // is at least 5 bytes. Waiting for 5 never stalls: the last chunk and its CRLF (5 bytes) are
    // only consumed together, when the message completes. (Found by fuzzing, a Debug build abort.)
    if (parser.is_header_done() && parser.chunked() && buffer_.size() < 5) return false;
    const bool in_head = !parser.is_header_done();
    // Beast takes the fields of a head as they come (a trickled head field by field), bounding
    // each put() alone: it is shown no more of a head than what is left of limits.head.
    const auto size = in_head ? std::min(buffer_.size(), limits_.head - std::min(response_wire_bytes_, limits_.head))
                              : buffer_.size();
    boost::system::error_code ec;
    const auto consumed = size == 0 ? 0 : parser.put(boost::asio::buffer(buffer_.data().data(), size), ec);
    buffer_.consume(consumed);
    response_wire_bytes_ += consumed;
    if (in_head && !parser.is_header_done() && response_wire_bytes_ + buffer_.size() > limits_.head) {
        fail(Failure::protocol, head_too_large(limits_));
        return false;
    }
    if (in_head && parser.is_header_done()) {
        const auto status = parser.status;
        if (status < 100) {
            fail(Failure::protocol, "invalid HTTP response: status " + std::to_string(status));
            return false;
        }
        if (status == 101) {
            fail(Failure::protocol, "unexpected 101 Switching Protocols in answer to a POST");
            return false;
        }
        parser.eager(true);
    }

    if (ec == http::error::body_limit && parser.is_header_done()) {
        complete(true);
        return false;
    }
    if (ec == http::error::header_limit) {
        fail(Failure::protocol, head_too_large(limits_));
        return false;
    }
    if (ec && ec != http::error::need_more) {
        fail(Failure::protocol, "invalid HTTP response: " + ec.message());
        return false;
    }
    if (!parser.is_done()) {
        // A body in progress: its framing (chunk sizes, extensions) may not take the wire forever.
        if (parser.is_header_done() && response_wire_bytes_ > max_wire_bytes()) {
            complete(true);
            return false;
        }
        return !ec && consumed > 0;
    }
    if (parser.status >= 200) {
        complete(false);
        return false;
    }
    ++interim_responses_;  // 100 Continue, 102 Processing, 103 Early Hints ...: the final one follows
    // Interim responses share one bound: a receiver that answers with 1xx after 1xx is cut off
    // like one that never ends a body.
    interim_wire_bytes_ += response_wire_bytes_;
    if (interim_wire_bytes_ > max_wire_bytes()) {
        fail(Failure::protocol,
             "interim (1xx) responses longer than " + std::to_string(max_wire_bytes()) + " bytes in all");
        return false;
    }
    parser_->current.reset();
    return true;
}

void HttpResponseReader::complete(bool body_truncated) {
    auto& parser = *parser_->current;
    response_.status = parser.status;
    response_.reason = std::move(parser.reason);
    response_.location = std::move(parser.location).value_or(std::string{});
    response_.retry_after = std::move(parser.retry_after).value_or(std::string{});
    if (parser.body.size() > limits_.body) parser.body.resize(limits_.body);
    response_.body = std::move(parser.body);
    response_.body_truncated = body_truncated;
    reusable_ = !body_truncated && parser.is_done() && parser.keep_alive() && !parser.need_eof();
    state_ = State::complete;
}

void HttpResponseReader::fail(Failure failure, std::string message) {
    state_ = State::failed;
    failure_ = failure;
    failure_message_ = std::move(message);
}

}  // namespace avr_webhookd
