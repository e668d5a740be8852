// The Deliverer's side of routing answers (respond_types): the producer of such an event is told
// the receiver's final answer, and while it waits, failed attempts are retried sooner.
#include <avr_webhookd/delivery/deliverer.hpp>

#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/intake/refusal.hpp>

#include <algorithm>

namespace avr_webhookd {

namespace {

// While the producer waits, a retry comes at most this long after a failure: a tenth of its wait.
std::chrono::milliseconds quick_retry(std::chrono::milliseconds respond_timeout) {
    return std::max(std::chrono::milliseconds(10), respond_timeout / 10);
}

}  // namespace

EventSink::Receipt Deliverer::submit_for_answer(Event&& event, AnswerHandler on_answer) {
    if (core_.admit(event) == AdmissionVerdict::filtered) {
        on_answer(Answer{0, {}, "its type is not forwarded (setting types), so no receiver was asked"});
        return submit(std::move(event));
    }
    const auto key = next_answer_key_++;
    event.answer_key = key;
    answers_.emplace(key, std::move(on_answer));
    auto receipt = submit(std::move(event));
    if (refusal_of(receipt)) answers_.erase(key);  // the producer is told by its line's rejection
    return receipt;
}

// The final outcome: a response of any status is the receiver's answer; without one the producer
// learns why none will come. Called once per event: the handler is removed.
void Deliverer::answer(const Event& event, const AttemptOutcome& outcome) {
    if (event.answer_key == 0) return;
    const auto found = answers_.find(event.answer_key);
    if (found == answers_.end()) return;
    auto handler = std::move(found->second);
    answers_.erase(found);
    Answer answer;
    answer.status = outcome.status;
    if (outcome.status != 0) answer.body = outcome.body;
    else answer.error = single_line(outcome.message) + (outcome.code.empty() ? "" : " [" + outcome.code + "]");
    handler(std::move(answer));
}

std::chrono::milliseconds Deliverer::answer_retry_delay(const Event& event, const AttemptOutcome& outcome,
                                                        std::chrono::milliseconds delay,
                                                        std::chrono::steady_clock::time_point now) const {
    if (event.answer_key == 0 || !answers_.contains(event.answer_key) || outcome.retry_after) return delay;
    if (now >= event.accepted_at + config_.respond_timeout) return delay;  // the producer was told: usual backoff
    return std::min(delay, quick_retry(config_.respond_timeout));
}

}  // namespace avr_webhookd
