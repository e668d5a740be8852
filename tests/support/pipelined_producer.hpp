#pragma once

// A producer that pipelines many lines on one Unix-socket connection as fast as the socket takes
// them, as a bulk loader does, and reads its replies while it writes, or stops reading on purpose.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace avr_webhookd::test {

class PipelinedProducer {
public:
    // Appends line `number` (from 1) with its newline to `out`.
    using LineSource = std::function<void(std::uint64_t number, std::string& out)>;
    // True when reply `index` (from 1) is the expected one.
    using ReplyCheck = std::function<bool(std::uint64_t index, std::string_view reply)>;

    PipelinedProducer(const std::filesystem::path& socket, std::uint64_t lines, LineSource source, ReplyCheck check);
    ~PipelinedProducer();
    PipelinedProducer(const PipelinedProducer&) = delete;
    PipelinedProducer& operator=(const PipelinedProducer&) = delete;

    // Writes without reading until the socket takes no more bytes for `stall` (the daemon stopped
    // reading) or every line is written. True when it stalled.
    bool write_until_stalled(std::chrono::milliseconds stall, std::chrono::milliseconds timeout);
    // Writes the rest and reads every reply, until the daemon closes the connection (after the last
    // line it half-closes) or `timeout` passes. True when the daemon closed it.
    bool run(std::chrono::milliseconds timeout);

    std::uint64_t lines_written() const { return lines_written_; }  // whole lines in the socket
    std::uint64_t replies() const { return replies_; }
    // The first reply that failed the check (with its index), empty when none did.
    const std::string& first_wrong() const { return first_wrong_; }
    // Bytes this side sent that the daemon has not read yet (SIOCOUTQ).
    std::size_t unread_by_daemon() const;

private:
    bool write_some();  // false when the socket takes nothing now
    void read_some(std::string_view data);

    int fd_;
    std::uint64_t lines_, next_line_ = 1, lines_written_ = 0, replies_ = 0;
    LineSource source_;
    ReplyCheck check_;
    std::string out_;  // generated lines not yet sent, from out_begin_
    std::size_t out_begin_ = 0;
    std::uint64_t lines_in_out_ = 0;
    std::string partial_reply_;
    std::string first_wrong_;
    bool write_open_ = true;
};

}  // namespace avr_webhookd::test
