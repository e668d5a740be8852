// HTTP intake requests as a connection delivers them: raw bytes through HttpRequestReader with
// the server's limits, each complete request handed to HttpIntakeHandler, keep-alive requests one
// after another on the same bytes. Never a crash; memory stays within the reader's bounds; a
// refused request gets 400, 413 or 431; a request taken never carries a Transfer-Encoding other
// than a lone "chunked", nor one with Content-Length, nor (HTTP/1.1) anything but one Host; every
// answer is one of the intake's statuses with a JSON body; an event reaches the sink only with a
// 200, and only from a POST that carried the secret.
//
// Input: byte 0 picks the fake sink's state (room or not, queued or not stored, queue_full
// policy) and the field limit (bit 16: 8 fields); the rest is the connection's bytes.
#include "request_stream.hpp"

#include <avr_webhookd/common/http_request_reader.hpp>
#include <avr_webhookd/intake/http_intake_handler.hpp>
#include <avr_webhookd/intake/http_intake_request.hpp>
#include <avr_webhookd/intake/http_intake_server.hpp>

#include <boost/beast/core/string.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace avr_webhookd;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

class FakeSink : public EventSink {
public:
    explicit FakeSink(std::uint8_t scenario) : scenario_(scenario) {}
    Receipt submit(Event&& event) override {
        check(!event.body.empty() && !event.id.empty());
        ++submitted;
        return (scenario_ & 2) ? Receipt(Admission::not_stored, 0, "disk full") : Receipt(Admission::queued, 3);
    }
    bool has_room() const override { return (scenario_ & 1) == 0; }
    boost::asio::awaitable<void> wait_for_room() override { co_return; }
    int submitted = 0;

private:
    std::uint8_t scenario_;
};


void handle(HttpIntakeHandler& handler, FakeSink& sink, const http::request<http::string_body>& request) {
    const int before = sink.submitted;
    const HttpIntakeRequest view = http_intake_request(request);
    auto decision = handler.handle(view, std::chrono::system_clock::now());
    if (decision.kind == HttpIntakeDecision::Kind::wait_for_room)
        decision = handler.handle(view, std::chrono::system_clock::now(), RoomWait::expired);
    check(decision.kind != HttpIntakeDecision::Kind::wait_for_room);
    // A respond-type event (call_initiated) waits for the receiver; this sink never answers, so its
    // response is the 504 after respond_timeout.
    if (decision.kind == HttpIntakeDecision::Kind::respond_with_answer) {
        check(decision.answer != nullptr);
        decision.response = handler.answer_response(std::nullopt, decision.event_id);
        check(decision.response.status == 504);
        check(boost::json::parse(decision.response.body).is_object());
        check(sink.submitted - before == 1);
        return;
    }
    const unsigned status = decision.response.status;
    check(status == 200 || status == 400 || status == 401 || status == 405 || status == 413 || status == 415 ||
          status == 503);
    check((status == 405) == !decision.response.allow.empty());
    check((status == 503) == decision.response.retry_after_seconds.has_value());
    // An object; a lone surrogate from the request is escaped as JSON.stringify does (\udXXX),
    // which Boost.JSON's strict parser refuses, so only the shape is checked here.
    check(decision.response.body.starts_with('{') && decision.response.body.ends_with('}'));
    const bool taken = decision.kind == HttpIntakeDecision::Kind::respond_when_durable;
    check(taken == (status == 200));
    check(sink.submitted - before <= 1);
    if (sink.submitted > before) check(view.method == "POST" && view.secret == std::optional<std::string_view>("k"));
}

// What the reader let through keeps to RFC 9112's framing: no smuggling past it.
void check_framing(const http::request<http::string_body>& request) {
    const auto count = [&](http::field name) {
        return std::count_if(request.begin(), request.end(), [&](const auto& field) { return field.name() == name; });
    };
    const auto encodings = count(http::field::transfer_encoding);
    check(encodings <= 1);
    if (encodings == 1) {
        check(beast::iequals(request[http::field::transfer_encoding], "chunked"));
        check(count(http::field::content_length) == 0);
    }
    if (request.version() == 11) check(count(http::field::host) == 1);
    else check(count(http::field::host) <= 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t scenario = data[0];
    std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
    FakeSink sink(scenario);
    Metrics metrics;
    HttpIntakeOptions options;
    options.secret = "k";
    options.max_body = 1024;
    options.allow_unknown_types = (scenario & 4) != 0;
    options.queue_full = (scenario & 8) ? QueueFullPolicy::reject : QueueFullPolicy::block;
    HttpIntakeHandler handler(options, sink, metrics);
    const HttpIntakeLimits limits;
    HttpRequestLimits bounds;
    bounds.request = limits.max_header_bytes + options.max_body + 4096;  // small, so that inputs reach it
    bounds.head = limits.max_header_bytes;
    bounds.body = options.max_body;
    bounds.fields = (scenario & 16) ? 8 : limits.max_header_fields;
    HttpRequestReader reader(bounds);
    fuzz::read_requests(
        bytes, reader,
        [&](const http::request<http::string_body>& request) {
            check(request.body().size() <= options.max_body);
            check_framing(request);
            handle(handler, sink, request);
        },
        [&](const HttpRequestReader& refused) {
            if (refused.refusal() == HttpRequestRefusal::body_too_large) check(handler.too_large().status == 413);
        });
    return 0;
}
