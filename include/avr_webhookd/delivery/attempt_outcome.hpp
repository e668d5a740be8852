#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

enum class FailureKind {
    none,             // a response was read; see `status`
    connect_refused,  // ECONNREFUSED
    connect_failed,   // other connect errors (unreachable, ...)
    dns,              // name resolution failed
    timeout,          // the attempt's `timeout` elapsed
    reset,            // connection reset or closed before a full response
    tls,              // handshake or certificate verification failed
    protocol,         // the response was not valid HTTP
    http_status,      // a response with a non-2xx status
    // NATS JetStream destinations (delivery/nats_outcome.hpp has the whole classification):
    no_responders,  // nothing took the publish: no stream covers the subject, or none has a leader now
    jetstream,      // the JetStream API answered with an error; `status` holds its code (503, 400 ...)
    auth,           // the server refused the credentials or the subject (authorization, permissions)
};

// Stable lower-case name, for logs and metric labels: "connect_refused", "http_status", ...
std::string_view to_string(FailureKind kind);

// What one delivery attempt came to: the transport's result, the retry policy's input.
struct AttemptOutcome {
    FailureKind kind = FailureKind::none;                  // none + status 2xx = success
    int status = 0;                                        // HTTP status when a response was read; for NATS
                                                           // the JetStream API's code (200 for a PubAck)
    std::optional<std::chrono::milliseconds> retry_after;  // parsed Retry-After, if any
    std::string code;                                      // ECONNREFUSED, ETIMEDOUT, ECONNRESET, ENOTFOUND, EPROTO,
                                                           // CERT_VERIFY_FAILED ... or "HTTP 503"
    std::string message;                                   // human-readable reason
    std::string location;                                  // Location header of a 3xx
    std::string body;  // the response's body (at most 64 KiB), for respond_types answers; NATS: the PubAck
};

}  // namespace avr_webhookd
