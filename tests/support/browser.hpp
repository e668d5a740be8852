#pragma once

// Headless Chromium (Debian's `chromium`) for tests of the status page: the DOM as a person's
// browser has it after the page's scripts ran, and a screenshot. Chromium is kept off every
// network but loopback: its host resolver maps every name but 127.0.0.1 to nothing, and its
// background services (updates, sync, metrics) are off.

#include "process.hpp"

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace avr_webhookd::test {

inline constexpr std::string_view browser_program = "chromium";

// The command line: the common flags, then `extra`, then the URL.
std::vector<std::string> browser_command(const std::filesystem::path& profile, const std::vector<std::string>& extra,
                                         const std::string& url);

// The serialized DOM of `url` once the page ran for `budget` of virtual time (timers run fast,
// fetches are real). Throws std::runtime_error with Chromium's output when it fails.
std::string browser_dom(const std::string& url, const std::filesystem::path& work,
                        std::chrono::milliseconds budget = std::chrono::seconds(8));

// A PNG of the page at that size, written to `png`. Throws like browser_dom.
void browser_screenshot(const std::string& url, const std::filesystem::path& png, const std::filesystem::path& work,
                        int width, int height, std::chrono::milliseconds budget = std::chrono::seconds(8));

// Text as the DOM serializer escaped it, unescaped (&amp; &lt; &gt; &quot; &nbsp;).
std::string html_unescape(std::string_view text);

}  // namespace avr_webhookd::test
