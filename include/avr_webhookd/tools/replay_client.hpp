#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace avr_webhookd {

// What became of one line sent by replay_lines().
struct ReplayReply {
    enum class Result { unanswered, accepted, rejected };
    Result result = Result::unanswered;
    std::string error;  // rejected: the daemon's reason
};

struct ReplayExchange {
    std::vector<ReplayReply> replies;  // one per line sent, in order
    std::string failure;               // why the exchange ended early ("" when the daemon closed normally)
};

// Sends `lines` (dead-letter lines, each without its newline) over one connection to the
// daemon's Unix socket, half-closes it, and reads the replies until the daemon closes it. A
// dead-letter line is answered {"ok":true,...} once its event is stored, whatever `ack` is, or
// {"ok":false,...} with the reason. Gives up when neither direction moves for `idle_timeout`;
// lines without a reply then stay unanswered.
ReplayExchange replay_lines(const std::string& socket, const std::vector<std::string>& lines,
                            std::chrono::milliseconds idle_timeout);

}  // namespace avr_webhookd
