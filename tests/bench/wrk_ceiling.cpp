#include "wrk_ceiling.hpp"

#include "support/process.hpp"

#include <chrono>
#include <fstream>
#include <stdexcept>

namespace avr_webhookd::bench {

namespace {

// A Lua string literal: the body has quotes and no newlines.
std::string lua_quoted(const std::string& text) {
    std::string quoted = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') quoted += '\\';
        quoted += c;
    }
    return quoted + "\"";
}

}  // namespace

double wrk_rate(const WrkSpec& spec) {
    test::TempDirectory dir("relay-bench-wrk");
    {
        std::ofstream script(dir / "post.lua");
        script << "wrk.method = \"POST\"\n"
               << "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
               << "wrk.body = " << lua_quoted(spec.body) << "\n";
    }
    const auto result =
        test::run_command({"wrk", "-t1", "-c" + std::to_string(spec.connections),
                           "-d" + std::to_string(spec.seconds) + "s", "-s", (dir / "post.lua").string(), spec.url},
                          dir.path(), std::chrono::seconds(spec.seconds + 30));
    if (!result.status.success()) throw std::runtime_error("wrk failed: " + result.out + result.err);
    if (result.out.find("Non-2xx") != std::string::npos || result.out.find("Socket errors") != std::string::npos)
        throw std::runtime_error("wrk saw errors:\n" + result.out);
    const auto at = result.out.find("Requests/sec:");
    if (at == std::string::npos) throw std::runtime_error("no Requests/sec in wrk's output:\n" + result.out);
    return std::stod(result.out.substr(at + 13));
}

}  // namespace avr_webhookd::bench
