#include "prometheus_text.hpp"

#include <limits>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace avr_webhookd::test {

namespace {

void expect(bool condition, const std::string& what) {
    if (!condition) throw std::runtime_error("malformed exposition: " + what);
}

// Reads `name="value",...` with the format's escapes.
std::map<std::string, std::string> parse_labels(const std::string& text) {
    static const std::regex label_name("[a-zA-Z_][a-zA-Z0-9_]*");
    std::map<std::string, std::string> labels;
    std::size_t i = 0;
    while (i < text.size()) {
        const auto equals = text.find('=', i);
        expect(equals != std::string::npos, "label without '='");
        const auto name = text.substr(i, equals - i);
        expect(std::regex_match(name, label_name), "label name '" + name + "'");
        expect(equals + 1 < text.size() && text[equals + 1] == '"', "unquoted label value");
        std::string value;
        std::size_t k = equals + 2;
        for (; k < text.size() && text[k] != '"'; ++k) {
            if (text[k] == '\\') {
                expect(k + 1 < text.size(), "dangling backslash");
                const char escaped = text[++k];
                expect(escaped == '\\' || escaped == '"' || escaped == 'n', "unknown escape");
                value.push_back(escaped == 'n' ? '\n' : escaped);
            } else {
                value.push_back(text[k]);
            }
        }
        expect(k < text.size(), "unterminated label value");
        expect(labels.emplace(name, value).second, "repeated label " + name);
        i = k + 1;
        if (i < text.size()) {
            expect(text[i] == ',', "labels not separated by ','");
            ++i;
        }
    }
    return labels;
}

}  // namespace

double parse_value(const std::string& text) {
    if (text == "+Inf") return std::numeric_limits<double>::infinity();
    if (text == "-Inf") return -std::numeric_limits<double>::infinity();
    if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
    std::size_t used = 0;
    double value = 0;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        expect(false, "value '" + text + "'");
    }
    expect(used == text.size(), "value '" + text + "'");
    return value;
}

std::map<std::string, MetricFamily> parse_exposition(const std::string& text) {
    static const std::regex help_line(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*))");
    static const std::regex type_line(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
    static const std::regex sample_line(R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+))");

    expect(!text.empty() && text.back() == '\n', "output does not end with a newline");
    std::map<std::string, MetricFamily> families;
    std::string current;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        std::smatch match;
        if (std::regex_match(line, match, help_line)) {
            current = match[1];
            expect(families.count(current) == 0, "family repeated or interleaved: " + line);
            families[current].help = match[2];
        } else if (std::regex_match(line, match, type_line)) {
            expect(match[1] == current, "TYPE without HELP: " + line);
            expect(families[current].type.empty(), "second TYPE: " + line);
            families[current].type = match[2];
        } else if (std::regex_match(line, match, sample_line)) {
            expect(!current.empty() && !families[current].type.empty(), "sample before TYPE: " + line);
            auto& family = families[current];
            const std::string name = match[1];
            const bool belongs = family.type == "histogram" ? name == current + "_bucket" || name == current + "_sum" ||
                                                                  name == current + "_count"
                                                            : name == current;
            expect(belongs, "sample outside its family: " + line);
            family.samples.push_back({name, parse_labels(match[2]), parse_value(match[3])});
        } else {
            expect(false, "not an exposition line: " + line);
        }
    }
    for (const auto& [name, family] : families) {
        expect(!family.help.empty() && !family.type.empty(), "family " + name + " lacks HELP or TYPE");
        expect(family.type != "counter" || name.ends_with("_total"), "counter " + name + " lacks _total");
    }
    return families;
}

std::optional<double> find_value(const MetricFamily& family, const std::map<std::string, std::string>& labels,
                                 const std::string& sample_name) {
    for (const auto& sample : family.samples)
        if ((sample_name.empty() || sample.name == sample_name) && sample.labels == labels) return sample.value;
    return std::nullopt;
}

}  // namespace avr_webhookd::test
