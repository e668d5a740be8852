#pragma once

// A strict reader of the Prometheus text exposition format 0.0.4, for tests of /metrics.

#include <map>
#include <optional>
#include <vector>
#include <string>

namespace avr_webhookd::test {

struct MetricSample {
    std::string name;                           // for histograms: <family>_bucket, _sum or _count
    std::map<std::string, std::string> labels;  // unescaped values
    double value = 0;
};

struct MetricFamily {
    std::string type;
    std::string help;
    std::vector<MetricSample> samples;
};

// Parses and checks the text: every family has one HELP and one TYPE before its samples,
// samples belong to the family announced last (histograms: _bucket, _sum, _count), families are
// not interleaved, counters end in _total, and the output ends with a newline. Throws
// std::runtime_error("malformed exposition: ...") otherwise.
std::map<std::string, MetricFamily> parse_exposition(const std::string& text);

// A sample value: a number, +Inf, -Inf or NaN. Throws like parse_exposition.
double parse_value(const std::string& text);

// The value of the family's sample named `sample_name` (any of its samples when empty) with
// exactly these labels; nullopt when there is none.
std::optional<double> find_value(const MetricFamily& family, const std::map<std::string, std::string>& labels = {},
                                 const std::string& sample_name = {});

}  // namespace avr_webhookd::test
