// The Unix-socket intake's routing answers: an event of a respond type (respond_types, by default
// call_initiated) gets one reply line carrying the receiver's answer, or saying that none came
// within respond_timeout, whatever `ack` is. AVR Core routes the call by that answer (sts_url).
#include "intake_connection.hpp"

#include <avr_webhookd/common/rethrow.hpp>
#include <avr_webhookd/intake/answer_reply.hpp>
#include <avr_webhookd/intake/refusal.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace avr_webhookd {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;

namespace {

// Shared by the sink's answer handler and the coroutine that waits for it: whichever comes
// second finds the other's part done. The handler may run before the coroutine starts (an event
// not forwarded is answered inside submit).
struct AnswerWait {
    explicit AnswerWait(const asio::any_io_executor& executor) : timer(executor) {}
    std::optional<EventSink::Answer> answer;
    asio::steady_timer timer;
};

}  // namespace

EventSink::Receipt IntakeServer::submit_for_answer(Connection& c, std::uint64_t number, Event&& event) {
    auto wait = std::make_shared<AnswerWait>(c.socket.get_executor());
    std::string id = event.id;
    auto receipt = sink_.submit_for_answer(std::move(event), [wait](EventSink::Answer answer) {
        if (wait->answer) return;
        wait->answer = std::move(answer);
        wait->timer.cancel();
    });
    if (refusal_of(receipt)) return receipt;  // answered as a rejected line, as any other
    c.replies.expect_answer();
    auto connection = c.shared_from_this();
    const auto timeout = options_.respond_timeout;
    const auto ticket = receipt.ticket;
    asio::co_spawn(
        io_,
        [this, connection, wait, number, id = std::move(id), timeout, ticket]() -> awaitable<void> {
            if (!wait->answer) {
                wait->timer.expires_after(timeout);
                co_await wait->timer.async_wait(as_tuple(use_awaitable));
            }
            if (wait->answer && wait->answer->status != 0) ++metrics_.respond_answered;
            else ++metrics_.respond_unanswered;
            if (!wait->answer)
                logger_.warn("intake: " + connection->name() + " line " + std::to_string(number) +
                             ": no answer from the receiver within respond_timeout for event " + id +
                             "; the producer was told, the event stays queued");
            queue_answer(*connection, answer_reply(number, id, wait->answer, timeout), ticket);
            wait->answer.emplace();            // a late answer is dropped
            connection->wake_writer.cancel();  // a closing connection's writer waits for its answers
        },
        connection_guard(connection, "intake answers"));
    return receipt;
}

}  // namespace avr_webhookd
