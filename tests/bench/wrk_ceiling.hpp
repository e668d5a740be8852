#pragma once

// The ceiling: wrk, the field's standard HTTP load generator, posting an event body to the same
// receiver the relay posts to.

#include <string>

namespace avr_webhookd::bench {

struct WrkSpec {
    std::string url;
    unsigned connections = 64;
    unsigned seconds = 3;
    std::string body;  // the JSON posted with every request
};

// Requests per second wrk reached (`wrk -t1 -c<connections> -d<seconds>s`); throws when wrk
// fails or saw an answer other than 2xx.
double wrk_rate(const WrkSpec& spec);

}  // namespace avr_webhookd::bench
