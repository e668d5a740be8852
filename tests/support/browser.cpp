#include "browser.hpp"

#include <stdexcept>

namespace avr_webhookd::test {

namespace {

// Chromium starts slowly on a loaded 2-core machine; these bound a hung one.
constexpr std::chrono::seconds browser_timeout{120};

CommandResult run_browser(const std::filesystem::path& work, const std::vector<std::string>& extra,
                          const std::string& url, std::chrono::milliseconds budget) {
    std::vector<std::string> flags = extra;
    flags.push_back("--virtual-time-budget=" + std::to_string(budget.count()));
    const auto profile =
        work / ("chromium-profile-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    auto result = run_command(browser_command(profile, flags, url), work, browser_timeout);
    std::error_code ignored;
    std::filesystem::remove_all(profile, ignored);
    return result;
}

}  // namespace

std::vector<std::string> browser_command(const std::filesystem::path& profile, const std::vector<std::string>& extra,
                                         const std::string& url) {
    std::vector<std::string> command{std::string(browser_program),
                                     "--headless",
                                     "--no-sandbox",  // as root (CI), Chromium refuses to start with its sandbox
                                     "--disable-gpu",
                                     "--disable-quic",
                                     "--no-first-run",
                                     "--no-default-browser-check",
                                     "--disable-background-networking",
                                     "--disable-component-update",
                                     "--disable-sync",
                                     "--disable-domain-reliability",
                                     "--disable-client-side-phishing-detection",
                                     "--disable-dev-shm-usage",
                                     "--metrics-recording-only",
                                     "--no-proxy-server",
                                     "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                                     "--user-data-dir=" + profile.string()};
    command.insert(command.end(), extra.begin(), extra.end());
    command.push_back(url);
    return command;
}

std::string browser_dom(const std::string& url, const std::filesystem::path& work, std::chrono::milliseconds budget) {
    const auto result = run_browser(work, {"--dump-dom"}, url, budget);
    if (!result.status.success() || result.out.find("</html>") == std::string::npos)
        throw std::runtime_error("chromium --dump-dom failed (" + result.status.describe() + "):\n" + result.err);
    return result.out;
}

void browser_screenshot(const std::string& url, const std::filesystem::path& png, const std::filesystem::path& work,
                        int width, int height, std::chrono::milliseconds budget) {
    std::error_code ignored;
    std::filesystem::remove(png, ignored);
    const auto result =
        run_browser(work,
                    {"--screenshot=" + png.string(),
                     "--window-size=" + std::to_string(width) + "," + std::to_string(height), "--hide-scrollbars"},
                    url, budget);
    if (!result.status.success() || !std::filesystem::exists(png))
        throw std::runtime_error("chromium --screenshot failed (" + result.status.describe() + "):\n" + result.err);
}

std::string html_unescape(std::string_view text) {
    static constexpr std::pair<std::string_view, std::string_view> entities[] = {
        {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&nbsp;", "\xc2\xa0"}, {"&amp;", "&"}};
    std::string out;
    out.reserve(text.size());
    while (!text.empty()) {
        bool replaced = false;
        if (text.front() == '&')
            for (const auto& [entity, character] : entities)
                if (text.starts_with(entity)) {
                    out.append(character);
                    text.remove_prefix(entity.size());
                    replaced = true;
                    break;
                }
        if (replaced) continue;
        out.push_back(text.front());
        text.remove_prefix(1);
    }
    return out;
}

}  // namespace avr_webhookd::test
