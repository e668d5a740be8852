// How a JetStream publish's reply becomes an AttemptOutcome, and what the retry policy makes of it.
// The replies are as nats-server 2.9 sends them.
#include <avr_webhookd/delivery/nats_outcome.hpp>
#include <avr_webhookd/delivery/retry_policy.hpp>
#include <avr_webhookd/delivery/failure_report.hpp>

#include <catch2/catch.hpp>

using namespace avr_webhookd;
using namespace std::chrono_literals;

namespace {

const NatsAttempt attempt{"avr.events.call_started", "nats://n1:4222,nats://n2:4222", 3000ms};

AttemptOutcome of(NatsReply::Kind kind, std::string text = {}) { return nats_outcome(NatsReply{kind, text}, attempt); }
AttemptOutcome of_message(std::string text) { return of(NatsReply::Kind::message, std::move(text)); }

Verdict verdict_of(const AttemptOutcome& outcome) {
    const RetryPolicy policy(RetrySettings{5, 100ms, 1s, 1h});
    return policy.decide(1, outcome, 0ms, 0.5).verdict;
}

}  // namespace

TEST_CASE("nats outcome: a PubAck is delivered, a duplicate too", "[nats][outcome]") {
    const auto stored = of_message(R"({"stream":"AVR","seq":42})");
    CHECK(stored.kind == FailureKind::none);
    CHECK(stored.status == 200);
    CHECK(stored.body == R"({"stream":"AVR","seq":42})");
    CHECK(stored.message == "stored in stream AVR as sequence 42");
    CHECK(verdict_of(stored) == Verdict::delivered);

    const auto duplicate = of_message(R"({"stream":"AVR","seq":42,"duplicate": true})");
    CHECK(duplicate.status == 200);
    CHECK_THAT(duplicate.message, Catch::Contains("duplicate"));
    CHECK(verdict_of(duplicate) == Verdict::delivered);
}

TEST_CASE("nats outcome: JetStream API errors keep their codes, 5xx are retried, 4xx given up", "[nats][outcome]") {
    const auto full = of_message(
        R"({"stream":"AVR","seq":0,"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}})");
    CHECK(full.kind == FailureKind::jetstream);
    CHECK(full.status == 503);
    CHECK(full.code == "NATS_JS_10077");
    CHECK(full.message ==
          "JetStream error 10077 (503) publishing to subject avr.events.call_started on nats://n1:4222,nats://n2:4222: "
          "maximum messages exceeded");
    CHECK(verdict_of(full) == Verdict::retry);

    const auto unavailable = of_message(
        R"({"error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}})");
    CHECK(verdict_of(unavailable) == Verdict::retry);
    const auto storage = of_message(
        R"({"error":{"code":500,"err_code":10047,"description":"insufficient storage resources available"}})");
    CHECK(verdict_of(storage) == Verdict::retry);

    const auto too_big =
        of_message(R"({"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}})");
    CHECK(too_big.code == "NATS_JS_10054");
    const RetryPolicy policy(RetrySettings{5, 100ms, 1s, 1h});
    const auto decision = policy.decide(1, too_big, 0ms, 0.5);
    CHECK(decision.verdict == Verdict::give_up);
    CHECK(decision.reason == "permanent NATS_JS_10054");

    // A code that is no error status is none: a routing answer must not pass a 100 on as final.
    for (const std::string code : {"100", "200", "-1", "99999999999"}) {
        INFO(code);
        const auto odd = of_message(R"({"error":{"code":)" + code + R"(,"err_code":1,"description":"odd"}})");
        CHECK(odd.kind == FailureKind::jetstream);
        CHECK(odd.status == 0);
    }
}

TEST_CASE("nats outcome: no responders, timeouts and a lost connection are retried", "[nats][outcome]") {
    const auto nobody = of(NatsReply::Kind::no_responders);
    CHECK(nobody.kind == FailureKind::no_responders);
    CHECK(nobody.code == "NATS_NO_RESPONDERS");
    CHECK(nobody.status == 0);
    CHECK_THAT(nobody.message,
               Catch::Contains("subject avr.events.call_started") && Catch::Contains("no JetStream stream"));
    CHECK(verdict_of(nobody) == Verdict::retry);

    const auto late = of(NatsReply::Kind::timeout);
    CHECK(late.kind == FailureKind::timeout);
    CHECK(late.code == "NATS_TIMEOUT");
    CHECK_THAT(late.message, Catch::StartsWith("no PubAck within 3000ms"));
    CHECK(verdict_of(late) == Verdict::retry);

    const auto down = of(NatsReply::Kind::not_connected, "Connection refused");
    CHECK(down.kind == FailureKind::connect_failed);
    CHECK(down.code == "NATS_NOT_CONNECTED");
    CHECK(down.message ==
          "not connected to any server of nats://n1:4222,nats://n2:4222 within 3000ms: Connection refused");
    CHECK(verdict_of(down) == Verdict::retry);

    CHECK(verdict_of(of(NatsReply::Kind::refused, "Insufficient buffer")) == Verdict::retry);
    const auto garbage = of_message("not json\nat all");
    CHECK(garbage.kind == FailureKind::protocol);
    CHECK(garbage.code == "NATS_INVALID_PUBACK");
    CHECK_THAT(garbage.message, !Catch::Contains("\n"));
    CHECK(verdict_of(garbage) == Verdict::retry);
    CHECK(of_message(R"({"stream":"AVR"})").code == "NATS_INVALID_PUBACK");
}

TEST_CASE("nats outcome: only a PubAck or a JetStream error settles an attempt", "[nats][outcome]") {
    const auto message = [](std::string text) { return NatsReply{NatsReply::Kind::message, std::move(text)}; };
    CHECK(nats_reply_settles(message(R"({"stream":"AVR","seq":7})")));
    CHECK(nats_reply_settles(message(R"({"stream":"AVR","seq":7,"duplicate":true})")));
    CHECK(nats_reply_settles(message(R"({"error":{"code":503,"err_code":10077,"description":"full"}})")));
    CHECK(nats_reply_settles(NatsReply{NatsReply::Kind::no_responders, {}}));
    CHECK(nats_reply_settles(NatsReply{NatsReply::Kind::permissions, "Permissions Violation"}));
    // What a core-NATS responder on the subject, or a forger, might send: the attempt keeps waiting.
    CHECK_FALSE(nats_reply_settles(message("")));
    CHECK_FALSE(nats_reply_settles(message("ok")));
    CHECK_FALSE(nats_reply_settles(message("{}")));
    CHECK_FALSE(nats_reply_settles(message(R"({"ok":true})")));
    CHECK_FALSE(nats_reply_settles(message(R"({"stream":"AVR"})")));
    CHECK_FALSE(nats_reply_settles(message(R"({"stream":"","seq":1})")));
    CHECK_FALSE(nats_reply_settles(message(R"({"stream":"AVR","seq":"1"})")));
    CHECK_FALSE(nats_reply_settles(message(R"({"error":"nope"})")));
    CHECK_FALSE(nats_reply_settles(message(R"([{"stream":"AVR","seq":1}])")));
}

TEST_CASE("nats outcome: refused credentials and subjects are permanent", "[nats][outcome]") {
    const auto credentials = of(NatsReply::Kind::auth_failed, "Authorization Violation");
    CHECK(credentials.kind == FailureKind::auth);
    CHECK(credentials.code == "NATS_AUTHORIZATION_VIOLATION");
    CHECK(verdict_of(credentials) == Verdict::give_up);
    const auto subject =
        of(NatsReply::Kind::permissions, "Permissions Violation for Publish to \"avr.events.call_started\"");
    CHECK(subject.code == "NATS_PERMISSIONS_VIOLATION");
    CHECK(verdict_of(subject) == Verdict::give_up);
    const auto inbox = of(NatsReply::Kind::inbox_refused, "Permissions Violation for Subscription to \"_INBOX.abc.*\"");
    CHECK(inbox.kind == FailureKind::auth);
    CHECK(inbox.code == "NATS_PERMISSIONS_VIOLATION");
    CHECK(verdict_of(inbox) == Verdict::give_up);
    CHECK_THAT(inbox.message, Catch::Contains("reply inbox") && Catch::Contains("Subscription to \"_INBOX.abc.*\""));
}

TEST_CASE("nats outcome: the failure block names the servers, the NATS error and PUBLISH", "[nats][outcome]") {
    const auto block = failure_block("call_started", of(NatsReply::Kind::no_responders), "nats://n1:4222", "PUBLISH");
    CHECK_THAT(block, Catch::Contains("Code: NATS_NO_RESPONDERS\nURL: nats://n1:4222\nMethod: PUBLISH\nStatus: "));
    CHECK_THAT(block,
               Catch::StartsWith("[WEBHOOK][CALL_STARTED] Retry failed\nWebhook Error:\nMessage: no responders"));
}
