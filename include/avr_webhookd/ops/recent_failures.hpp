#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <string>

namespace avr_webhookd {

// One failed delivery attempt, or one event given up, as /status and the status page show it.
// The texts are already made safe where they are recorded (delivery/failure_report.hpp:
// failure_record): single-line, valid UTF-8, cut short.
struct FailureRecord {
    std::chrono::system_clock::time_point time{};
    std::string event_type;
    std::string event_id;
    std::string call;  // the call's uuid
    int attempt = 0;   // the attempt that failed; 0 when the event was given up without one
    std::string code;  // ECONNREFUSED, HTTP 503, QUEUE_FULL ...
    int status = 0;    // the HTTP status when a response was read, else 0
    std::string message;
    std::string given_up;  // the dead-letter reason when the event was given up; "" = it will be retried
    std::string block;     // the specification's failure block, the URL shown as its origin only
};

// The last few failures of one destination, oldest first. Bounded: `capacity` records, each of
// a few hundred bytes at most.
class RecentFailures {
public:
    static constexpr std::size_t capacity = 5;

    void add(FailureRecord record) {
        if (records_.size() == capacity) records_.pop_front();
        records_.push_back(std::move(record));
    }
    const std::deque<FailureRecord>& records() const { return records_; }

private:
    std::deque<FailureRecord> records_;
};

}  // namespace avr_webhookd
