#pragma once

#include <avr_webhookd/delivery/attempt_outcome.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace avr_webhookd {

// What came back for one JetStream publish, as the NATS link reports it: no libnats types, so the
// classification below is sans-io and unit-tested with the server's real replies.
struct NatsReply {
    enum class Kind {
        message,        // a reply on the attempt's inbox: a PubAck or a JetStream API error (JSON in `text`)
        no_responders,  // the server's 503 status reply: nothing subscribes to the subject
        not_connected,  // no connection to any server within the attempt's timeout; `text`: the last error
        refused,        // the client library refused the publish; `text`: its error
        permissions,    // the server refused this subject to our credentials; `text`: its error
        auth_failed,    // the server refused the credentials (the connection is closed); `text`: its error
        inbox_refused,  // the server refused the subscription to the reply inbox: no PubAck can come; `text`: its error
        timeout,        // published, no reply within the attempt's timeout
    };
    Kind kind = Kind::timeout;
    std::string text;
};

// Whether a reply ends its attempt. A message on the reply inbox counts only when it is a JetStream
// PubAck ({"stream":S,"seq":N}) or a JetStream API error ({"error":{...}}): anything else (a
// core-NATS responder on the subject, a forger) is ignored and the attempt keeps waiting for its
// PubAck until its timeout, so no such reply can make an event count as delivered.
bool nats_reply_settles(const NatsReply& reply);

// The publish the reply is about, for the failure's message.
struct NatsAttempt {
    std::string_view subject;
    std::string_view servers;  // the destination's url, redacted
    std::chrono::milliseconds timeout{0};
};

// The classification (README "Delivery semantics" shows it as a table):
//   reply                                  kind           code                          status  retried
//   PubAck {"stream":S,"seq":N[,duplicate]} none           -                             200     delivered
//   JetStream error, code 5xx (10077 stream jetstream      NATS_JS_<err_code>            <code>  yes
//     full, 10008 cluster unavailable ...)
//   JetStream error, other code (10054     jetstream      NATS_JS_<err_code>            <code>  no
//     message too large, 10060 ...)
//   no responders (no stream, no leader)   no_responders  NATS_NO_RESPONDERS            -       yes
//   no PubAck within `timeout`             timeout        NATS_TIMEOUT                  -       yes
//   not connected within `timeout`         connect_failed NATS_NOT_CONNECTED            -       yes
//   publish refused by the library         connect_failed NATS_PUBLISH_FAILED           -       yes
//   a reply that is no PubAck              (ignored by the transport: nats_reply_settles)
//     when classified anyway               protocol       NATS_INVALID_PUBACK           -       yes
//   credentials refused                    auth           NATS_AUTHORIZATION_VIOLATION  -       no
//   subject not permitted                  auth           NATS_PERMISSIONS_VIOLATION    -       no
//   reply inbox (_INBOX.>) not permitted   auth           NATS_PERMISSIONS_VIOLATION    -       no
// The message names the subject, the servers and the server's own words.
AttemptOutcome nats_outcome(const NatsReply& reply, const NatsAttempt& attempt);

}  // namespace avr_webhookd
