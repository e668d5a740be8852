// Destinations in the configuration: [destination NAME] sections, WEBHOOK_DESTINATION_NAME_KEY,
// --destination-NAME-KEY, their rules (the default destination's, applied to each) and
// check-config's view of them.
#include <avr_webhookd/config/command_line.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/config/config_file.hpp>
#include <avr_webhookd/config/describe.hpp>

#include "config_errors.hpp"

#include <catch2/catch.hpp>

#include <sstream>

using namespace avr_webhookd;
using namespace std::chrono_literals;

namespace {

ConfigSources sources_with(std::map<std::string, std::string> command_line, Environment environment = {}) {
    ConfigSources sources;
    sources.default_file = "/nonexistent/avr-webhookd-test/avr-webhookd.conf";
    sources.command_line = std::move(command_line);
    sources.command_line.try_emplace("url", "https://main.example/hook");
    sources.environment = std::move(environment);
    return sources;
}

std::string error_of(const ConfigSources& sources) { return test::config_error_of(sources); }

std::string file_error(std::string_view text) {
    try {
        parse_config_file(text, "x.conf");
    } catch (const ConfigError& error) {
        return error.what();
    }
    return "accepted";
}

}  // namespace

TEST_CASE("destination keys: destination_NAME_KEY reads one way only", "[config][destinations]") {
    const auto key = split_destination_key("destination_crm_retry_max_delay");
    REQUIRE(key);
    CHECK(key->name == "crm");
    CHECK(key->setting == "retry_max_delay");
    CHECK_FALSE(split_destination_key("destination_crm_socket"));   // not a per-receiver setting
    CHECK_FALSE(split_destination_key("destination_default_url"));  // the top-level settings
    CHECK_FALSE(split_destination_key("destination_Crm_url"));      // names are lower case
    CHECK_FALSE(split_destination_key("destination_1crm_url"));     // and start with a letter
    CHECK_FALSE(split_destination_key("destination_url"));          // no name
    CHECK_FALSE(split_destination_key("url"));
    CHECK(valid_destination_name(std::string(32, 'a')));
    CHECK_FALSE(valid_destination_name(std::string(33, 'a')));
}

TEST_CASE("destinations from the command line and the environment, from built-in defaults", "[config][destinations]") {
    const auto loaded = load_config(sources_with(
        {{"secret", "main-secret"},
         {"timeout", "9s"},
         {"destination_crm_url", "https://crm.example/avr"},
         {"destination_crm_types", "call_started,call_ended"}},
        {{"WEBHOOK_DESTINATION_BI_URL", "http://127.0.0.1:9/bi"}, {"WEBHOOK_DESTINATION_BI_RETRY", "-1"}}));
    const auto& config = loaded.config;
    REQUIRE(config.destinations.size() == 2);
    const auto& bi = config.destinations[0];  // in name order
    const auto& crm = config.destinations[1];
    CHECK(bi.name == "bi");
    CHECK(bi.retry == -1);
    CHECK(crm.name == "crm");
    CHECK(crm.url == "https://crm.example/avr");
    CHECK(crm.types == std::vector<std::string>{"call_started", "call_ended"});
    // Nothing is inherited from the default destination: not its secret, not its timeout.
    CHECK(crm.secret.empty());
    CHECK(crm.timeout == 3000ms);
    CHECK(loaded.origins.at("destination_bi_url") == Origin::environment);
    CHECK(loaded.origins.at("destination_crm_url") == Origin::command_line);

    const auto all = all_destinations(config);
    REQUIRE(all.size() == 3);
    CHECK(all[0].name == "default");
    CHECK(all[0].secret == "main-secret");
    const auto for_crm = config_for(config, crm);
    CHECK(for_crm.url == crm.url);
    CHECK(for_crm.secret.empty());
    CHECK(for_crm.socket == config.socket);  // the global settings stay
    CHECK(for_crm.destinations.empty());
}

TEST_CASE("destinations: each is checked by the default destination's rules, errors name its key",
          "[config][destinations]") {
    CHECK_THAT(error_of(sources_with({{"destination_crm_timeout", "5s"}})),
               Catch::StartsWith("destination_crm_url: missing setting destination_crm_url"));
    CHECK_THAT(error_of(sources_with({{"destination_crm_url", "ftp://x"}})),
               Catch::StartsWith("destination_crm_url: invalid setting destination_crm_url"));
    CHECK_THAT(error_of(sources_with(
                   {{"destination_crm_url", "https://c.example/"}, {"destination_crm_signature", "hmac-sha256"}})),
               Catch::StartsWith("destination_crm_signature: "));
    CHECK_THAT(error_of(sources_with(
                   {{"destination_crm_url", "https://c.example/"}, {"destination_crm_types", "not_a_type"}})),
               Catch::StartsWith("destination_crm_types: "));
    const auto secret = error_of(sources_with({{"destination_crm_url", "https://c.example/"},
                                               {"destination_crm_secret", "s3cret-value"},
                                               {"destination_crm_secret_file", "/etc/hostname"}}));
    CHECK_THAT(secret, Catch::StartsWith("destination_crm_secret_file: "));
    CHECK_THAT(secret, !Catch::Contains("s3cret-value"));
    CHECK_THAT(error_of(sources_with({{"respond_destination", "crm"}})), Catch::StartsWith("respond_destination: "));
    CHECK(load_config(sources_with({{"respond_destination", "crm"}, {"destination_crm_url", "https://c.example/"}}))
              .config.respond_destination == "crm");
    const auto filtered = load_config(sources_with({{"respond_destination", "crm"},
                                                    {"destination_crm_url", "https://c.example/"},
                                                    {"destination_crm_types", "call_ended"}}));
    REQUIRE(filtered.warnings.size() == 1);  // 2 x 256 MiB fit in the 1 GiB spool
    CHECK_THAT(filtered.warnings[0], Catch::Contains("respond_destination crm does not take call_initiated"));
    const auto crowded = load_config(sources_with(
        {{"destination_crm_url", "https://c.example/"}, {"spool_dir", "/tmp/x"}, {"spool_max_bytes", "268435456"}}));
    REQUIRE(crowded.warnings.size() == 1);
    CHECK_THAT(crowded.warnings[0], Catch::StartsWith("2 destinations x max_queue_bytes (268435456) exceed"));
}

TEST_CASE("destinations: [destination NAME] sections of the config file", "[config][destinations]") {
    const auto entries = parse_config_file(
        "url = https://main.example/\n[destination crm]\nurl = https://crm.example/\n"
        "types = call_ended  # only the end\n[ destination bi ]\nretry = 3\n",
        "x.conf");
    REQUIRE(entries.size() == 4);
    CHECK(entries[1].key == "destination_crm_url");
    CHECK(entries[2].key == "destination_crm_types");
    CHECK(entries[2].value == "call_ended");
    CHECK(entries[3].key == "destination_bi_retry");

    CHECK_THAT(file_error("[destination crm]\nsocket = /tmp/x.sock\n"),
               Catch::Contains("not a per-destination setting (global settings go before"));
    CHECK_THAT(file_error("[destination crm]\nurll = x\n"), Catch::Contains("did you mean url?"));
    CHECK_THAT(file_error("[destination default]\n"), Catch::Contains("before the first section"));
    CHECK_THAT(file_error("[destination CRM]\n"), Catch::Contains("lower-case letters and digits"));
    CHECK_THAT(file_error("[receiver crm]\n"), Catch::Contains("the only section is [destination NAME]"));
    CHECK_THAT(file_error("[destination crm]\nurl = a\n[destination crm]\nurl = b\n"),
               Catch::Contains("already set on line 2"));
    CHECK_THAT(file_error("url = a\n[destination crm]\n# url = b\n[destination bi]\nurl = c\n"),
               Catch::Contains("line 2: this [destination] section sets nothing"));
    CHECK_THAT(file_error("url = a\n[destination crm]\n"), Catch::Contains("line 2: this [destination] section"));
}

TEST_CASE("destinations: --destination-NAME-KEY flags, both spellings", "[config][destinations]") {
    std::ostringstream out, err;
    const std::vector<std::string> args{"--url", "https://main.example/", "--destination-crm-url",
                                        "https://crm.example/", "--destination-crm-retry=2"};
    const auto parsed = parse_settings_command_line(args, {}, out, err);
    REQUIRE(std::holds_alternative<ConfigSources>(parsed));
    const auto& sources = std::get<ConfigSources>(parsed);
    CHECK(sources.command_line.at("destination_crm_url") == "https://crm.example/");
    CHECK(sources.command_line.at("destination_crm_retry") == "2");
    const std::vector<std::string> unknown{"--url", "https://main.example/", "--destination-crm-socket", "x"};
    CHECK(std::holds_alternative<int>(parse_settings_command_line(unknown, {}, out, err)));
    // A flag never takes the next option as its value, and is given once.
    const std::vector<std::string> no_value{"--destination-crm-url", "--url=https://main.example/"};
    CHECK(std::holds_alternative<int>(parse_settings_command_line(no_value, {}, out, err)));
    CHECK_THAT(err.str(), Catch::Contains("--destination-crm-url needs a value"));
    const std::vector<std::string> twice{"--destination-crm-url=https://a/", "--destination-crm-url=https://b/"};
    CHECK(std::holds_alternative<int>(parse_settings_command_line(twice, {}, out, err)));
    CHECK_THAT(err.str(), Catch::Contains("is given more than once"));
}

TEST_CASE("destinations: check-config shows each as a section with the origin of each value",
          "[config][destinations]") {
    const auto loaded = load_config(sources_with(
        {{"destination_crm_url", "https://crm.example/x?token=abc"}, {"destination_crm_secret", "crm-secret-value"}},
        {{"WEBHOOK_DESTINATION_CRM_RETRY", "5"}}));
    const auto text = describe(loaded);
    CHECK_THAT(text, Catch::Contains("\n[destination crm]\nurl = "));
    CHECK_THAT(text, Catch::Contains("retry = 5  (environment WEBHOOK_DESTINATION_CRM_RETRY)"));
    CHECK_THAT(text, Catch::Contains("secret = <redacted>  (command line --destination-crm-secret)"));
    CHECK_THAT(text, Catch::Contains("timeout = 3s  (built-in)"));
    CHECK_THAT(text, !Catch::Contains("crm-secret-value"));
    CHECK_THAT(text, !Catch::Contains("token=abc"));
}
