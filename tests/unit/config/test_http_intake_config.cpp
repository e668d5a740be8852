// The HTTP intake's settings: http_listen, intake_secret, intake_secret_file and their rules,
// checked by load_config (the one validation of check-config, start and reload).
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/config/describe.hpp>
#include <avr_webhookd/config/settings.hpp>
#include <avr_webhookd/intake/http_intake_server.hpp>

#include "config_errors.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace avr_webhookd;

namespace {

ConfigSources sources_with(std::map<std::string, std::string> command_line) {
    ConfigSources sources;
    sources.default_file = "/nonexistent/avr-webhookd-test/avr-webhookd.conf";
    sources.command_line = std::move(command_line);
    sources.command_line["url"] = "http://127.0.0.1:8080/hook";
    return sources;
}

std::string error_of(const ConfigSources& sources) { return test::config_error_of(sources); }

}  // namespace

TEST_CASE("config: http_listen is off by default and takes HOST:PORT", "[config][http_intake]") {
    CHECK(load_config(sources_with({})).config.http_listen.empty());
    CHECK(load_config(sources_with({{"http_listen", "127.0.0.1:9000"}})).config.http_listen == "127.0.0.1:9000");
    CHECK(load_config(sources_with({{"http_listen", "[::1]:0"}})).config.http_listen == "[::1]:0");
    CHECK(load_config(sources_with({{"http_listen", "localhost:9000"}})).config.http_listen == "localhost:9000");
    CHECK_THAT(error_of(sources_with({{"http_listen", "127.0.0.1"}})), Catch::StartsWith("http_listen: "));
    CHECK_THAT(error_of(sources_with({{"http_listen", "127.0.0.1:99999"}})), Catch::Contains("HOST:PORT"));
}

TEST_CASE("config: http_listen beyond loopback needs an intake secret", "[config][http_intake]") {
    const auto message = error_of(sources_with({{"http_listen", "0.0.0.0:9000"}}));
    CHECK_THAT(message, Catch::StartsWith("http_listen: "));
    CHECK_THAT(message, Catch::Contains("needs intake_secret or intake_secret_file"));
    CHECK_THAT(error_of(sources_with({{"http_listen", "[::]:9000"}})), Catch::StartsWith("http_listen: "));
    const auto loaded = load_config(sources_with({{"http_listen", "0.0.0.0:9000"}, {"intake_secret", "S3cret"}}));
    CHECK(loaded.config.intake_secret == "S3cret");
    CHECK(describe(loaded).find("S3cret") == std::string::npos);
}

TEST_CASE("config: intake_secret_file is read at load and conflicts with intake_secret", "[config][http_intake]") {
    char pattern[] = "/tmp/avr-webhookd-intake-secret-XXXXXX";
    const int fd = ::mkstemp(pattern);
    REQUIRE(fd >= 0);
    ::close(fd);
    std::ofstream(pattern) << "from-file\n";
    const auto loaded = load_config(sources_with({{"http_listen", "0.0.0.0:9000"}, {"intake_secret_file", pattern}}));
    CHECK(loaded.config.intake_secret == "from-file");
    const auto both = error_of(sources_with({{"intake_secret_file", pattern}, {"intake_secret", "x"}}));
    CHECK_THAT(both, Catch::StartsWith("intake_secret_file: "));
    CHECK_THAT(both, Catch::Contains("only one of intake_secret and intake_secret_file"));
    std::filesystem::remove(pattern);
}

TEST_CASE("config: which HTTP intake settings a reload applies", "[config][http_intake]") {
    const auto reloadable = [](std::string_view key) {
        for (const auto& info : all_settings())
            if (info.key == key) return info.reloadable;
        FAIL("no setting " << key);
        return false;
    };
    CHECK_FALSE(reloadable("http_listen"));
    CHECK(reloadable("intake_secret"));
    CHECK(reloadable("intake_secret_file"));
    CHECK(reloadable("http_max_connections"));
    CHECK(reloadable("http_request_timeout"));
    CHECK(environment_name("intake_secret") == "WEBHOOK_INTAKE_SECRET");
}

TEST_CASE("config: the HTTP intake's request bounds, their ranges and what 0 means", "[config][http_intake]") {
    const auto defaults = load_config(sources_with({})).config;
    CHECK(defaults.http_max_request_bytes == 0);
    CHECK(defaults.http_max_header_fields == 100);
    auto options = http_intake_server_options(defaults);
    CHECK(options.limits.max_request_bytes == defaults.max_line + 32768);  // 0 follows max_line
    CHECK(options.limits.max_header_fields == 100);
    CHECK(options.limits.max_header_bytes == 16384);
    CHECK(options.handling.max_body == defaults.max_line);
    options = http_intake_server_options(load_config(sources_with({{"max_line", "1048576"}})).config);
    CHECK(options.limits.max_request_bytes == 1048576 + 32768);
    const auto set = load_config(sources_with({{"http_max_request_bytes", "200000"}, {"http_max_header_fields", "8"}}));
    CHECK(set.config.http_max_request_bytes == 200000);
    CHECK(http_intake_server_options(set.config).limits.max_request_bytes == 200000);
    CHECK(http_intake_server_options(set.config).limits.max_header_fields == 8);

    CHECK_THAT(error_of(sources_with({{"http_max_request_bytes", "4095"}})),
               Catch::StartsWith("http_max_request_bytes: ") && Catch::Contains("0 (= max_line + 32768) or"));
    CHECK_THAT(error_of(sources_with({{"http_max_request_bytes", "67108865"}})),
               Catch::StartsWith("http_max_request_bytes: "));
    CHECK_THAT(error_of(sources_with({{"http_max_header_fields", "7"}})),
               Catch::StartsWith("http_max_header_fields: "));
    CHECK_THAT(error_of(sources_with({{"http_max_header_fields", "10001"}})),
               Catch::StartsWith("http_max_header_fields: "));
    for (const auto key : {"http_max_request_bytes", "http_max_header_fields"}) {
        const auto found = std::find_if(all_settings().begin(), all_settings().end(),
                                        [&](const auto& info) { return info.key == key; });
        REQUIRE(found != all_settings().end());
        CHECK(found->reloadable);
    }
}
