// HTTP intake requests as a connection delivers them: raw bytes through Beast's request parser
// with the server's limits, each complete request handed to HttpIntakeHandler, keep-alive
// requests one after another on the same bytes. Never a crash; every answer is one of the
// intake's statuses with a JSON body; an event reaches the sink only with a 200, and only from a
// POST that carried the secret.
//
// Input: byte 0 picks the fake sink's state (room or not, queued or not stored, queue_full
// policy); the rest is the connection's bytes.
#include <avr_webhookd/intake/http_intake_handler.hpp>
#include <avr_webhookd/intake/http_intake_request.hpp>
#include <avr_webhookd/intake/http_intake_server.hpp>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>

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
    while (!bytes.empty()) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
        parser.body_limit(options.max_body);
        parser.eager(true);
        beast::error_code error;
        const auto used = parser.put(boost::asio::buffer(bytes.data(), bytes.size()), error);
        check(used <= bytes.size());
        if (error == http::error::body_limit) {
            check(handler.too_large().status == 413);
            return 0;
        }
        if (error || !parser.is_done()) return 0;  // the server answers 400/431 or waits for more
        bytes.remove_prefix(used);
        handle(handler, sink, parser.get());
        if (!parser.get().keep_alive()) return 0;
    }
    return 0;
}
