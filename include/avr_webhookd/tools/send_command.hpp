#pragma once

#include <avr_webhookd/common/command.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd {

// The bookkeeping of `send` (sans-io): counts the event lines it sends, numbers them as the
// daemon does (physical lines of the whole stream, from 1) and turns the daemon's NDJSON replies
// into readable lines naming the input file and its own line number.
class SendReport {
public:
    // A new input starts. Inputs are sent one after the other; the caller ends each one that does
    // not end in a newline with one (see needs_newline()), so lines never join across inputs.
    void begin_input(std::string name);
    // Bytes of the current input, in the order they are sent.
    void add(std::string_view bytes);
    bool needs_newline() const { return line_bytes_ > 0; }
    // End of all input: an unterminated last line counts.
    void finish();

    // One reply line (without its newline). Returns the text to print, e.g.
    // "events.ndjson line 3: rejected: invalid JSON: ..." or "line 4: accepted (id ...)".
    std::string reply(std::string_view line);

    std::uint64_t event_lines() const { return event_lines_; }  // lines the daemon sees: not empty
    std::uint64_t rejected() const { return rejected_; }        // replies "ok":false with a line
    std::uint64_t accepted() const { return accepted_; }        // replies "ok":true (ack = all)
    // A reply "ok":false without a line number: the daemon refused the connection as a whole.
    const std::optional<std::string>& refusal() const { return refusal_; }

private:
    struct Input {
        std::string name;
        std::uint64_t first_line;  // stream line number of its first line
    };
    std::string where(std::uint64_t stream_line) const;
    void end_line();

    std::vector<Input> inputs_;
    std::uint64_t newlines_ = 0;    // newline bytes so far: the current line is newlines_ + 1
    std::uint64_t line_bytes_ = 0;  // bytes of the current line so far
    bool line_ends_with_cr_ = false;
    std::uint64_t event_lines_ = 0;
    std::uint64_t rejected_ = 0;
    std::uint64_t accepted_ = 0;
    std::optional<std::string> refusal_;
};

// `avr-webhookd send [--socket PATH] [--config FILE] [FILE...]`; `args` are the arguments after
// "send". Writes the files (or stdin for none or "-") to the daemon's Unix socket, half-closes it
// and prints every reply, readably, to `out` while still writing (so a long input with many
// rejections cannot deadlock). The socket: --socket, else the `socket` setting (WEBHOOK_SOCKET or
// the config file), else the built-in default. Returns exit_code::ok when no line was rejected,
// failure when some were ("N of M lines rejected" on `err`), trouble for bad options and when the
// socket cannot be reached, an input cannot be read, the daemon refused the connection or closed
// it before taking all input.
int run_send_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err);

}  // namespace avr_webhookd
