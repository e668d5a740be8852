// The settings of NATS JetStream destinations: the url as a server list, subject, the ways to
// authenticate (one at most), the settings of the other kind refused, and check-config's view.
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/config/describe.hpp>

#include "config_errors.hpp"
#include "support/process.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

using namespace avr_webhookd;

namespace {

ConfigSources nats_sources(std::map<std::string, std::string> command_line) {
    ConfigSources sources;
    sources.default_file = "/nonexistent/avr-webhookd-test/avr-webhookd.conf";
    sources.command_line = std::move(command_line);
    sources.command_line.try_emplace("url", "nats://n1:4222,nats://n2:4222");
    return sources;
}

std::string error_of(std::map<std::string, std::string> command_line) {
    return test::config_error_of(nats_sources(std::move(command_line)));
}

std::string write(const test::TempDirectory& dir, const std::string& name, const std::string& text) {
    const auto path = dir / name;
    std::ofstream(path) << text;
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    return path.string();
}

std::string line_of(const std::string& described, const std::string& key) {
    const auto text = "\n" + described;
    const auto at = text.find("\n" + key + " = ");
    if (at == std::string::npos) return {};
    return text.substr(at + 1, text.find('\n', at + 1) - at - 1);
}

}  // namespace

TEST_CASE("nats config: a server list is a url, with the default subject", "[config][nats]") {
    const auto loaded = load_config(nats_sources({}));
    CHECK(loaded.config.url == "nats://n1:4222,nats://n2:4222");
    CHECK(loaded.config.nats.subject == "avr.events.{type}");
    CHECK(loaded.warnings.size() == 1);  // respond_types get the PubAck: said once at start
    CHECK_THAT(loaded.warnings.at(0), Catch::Contains("publishes to NATS JetStream, where no receiver answers"));
    CHECK(load_config(nats_sources({{"respond_types", ""}})).warnings.empty());
}

TEST_CASE("nats config: credentials in the url are redacted by check-config", "[config][nats]") {
    const auto loaded = load_config(nats_sources(
        {{"url", "nats://u:s3cr3t@n1:4222,nats://u:s3cr3t@n2:4222"}, {"subject", "fleet.{destination}.{type}"}}));
    const auto text = describe(loaded);
    CHECK(line_of(text, "url") == "url = nats://<redacted>@n2:4222  (command line --url)");  // up to the last @
    CHECK(line_of(text, "subject") == "subject = fleet.{destination}.{type}  (command line --subject)");
    CHECK(text.find("s3cr3t") == std::string::npos);
}

TEST_CASE("nats config: one way to authenticate, each complete", "[config][nats]") {
    test::TempDirectory dir;
    const auto password = write(dir, "password", "pa55\n");
    const auto loaded = load_config(nats_sources({{"user", "avr"}, {"password_file", password}}));
    CHECK(loaded.config.nats.user == "avr");
    CHECK(loaded.config.nats.password == "pa55");
    CHECK(describe(loaded).find("pa55") == std::string::npos);

    CHECK_THAT(error_of({{"user", "avr"}}), Catch::Contains("user and password_file go together"));
    CHECK_THAT(error_of({{"password_file", password}}), Catch::Contains("user and password_file go together"));
    CHECK_THAT(error_of({{"url", "nats://t0k@n1"}, {"token_file", write(dir, "token", "t")}}),
               Catch::Contains("more than one way to authenticate to NATS for url (user:password@ or token@ in url, "
                               "token_file): keep one"));
    CHECK_THAT(error_of({{"creds_file", password}, {"nkey_seed_file", password}}),
               Catch::Contains("more than one way"));
    CHECK_THAT(
        error_of({{"nkey_seed_file", password}}),
        Catch::StartsWith("nkey_seed_file: invalid setting nkey_seed_file") && Catch::Contains("no NKey user seed"));
    const auto seed = write(dir, "seed", "SUAPM67TC4RHQLKBX55NIQXSMATZDOZK6FNEOSS36CAYA7F7TY66LP4BOM\n");
    CHECK(load_config(nats_sources({{"nkey_seed_file", seed}})).config.nats.nkey_seed_file == seed);
    CHECK_THAT(error_of({{"cert_file", password}}), Catch::Contains("cert_file and key_file go together"));
    CHECK_THAT(error_of({{"creds_file", "/nonexistent/x.creds"}}), Catch::Contains("existing file"));
}

TEST_CASE("nats config: the settings of the other kind are errors naming why", "[config][nats]") {
    CHECK_THAT(error_of({{"secret", "s"}}),
               Catch::StartsWith("secret: ") && Catch::Contains("a NATS destination takes no secret"));
    CHECK_THAT(error_of({{"url", "https://h.example/x"}, {"subject", "a.b"}}),
               Catch::StartsWith("subject: ") && Catch::Contains("this setting is for NATS destinations"));
    CHECK_THAT(error_of({{"url", "https://h.example/x"}, {"user", "avr"}}), Catch::StartsWith("user: "));
    // The default subject given explicitly (an uncommented example file) is no error.
    CHECK(error_of({{"url", "https://h.example/x"}, {"subject", "avr.events.{type}"}}) == "accepted");
    CHECK_THAT(error_of({{"subject", "avr.{call}"}}), Catch::Contains("unknown placeholder {call}"));
    CHECK_THAT(error_of({{"url", "nats://n1/path"}}), Catch::Contains("without a path"));
}

TEST_CASE("nats config: a named destination publishes while the default posts", "[config][nats]") {
    ConfigSources sources = nats_sources({{"url", "https://h.example/x"},
                                          {"destination_fleet_url", "tls://n1:4222"},
                                          {"destination_fleet_subject", "avr.{uuid}.{type}"}});
    const auto loaded = load_config(sources);
    REQUIRE(loaded.config.destinations.size() == 1);
    const auto& fleet = loaded.config.destinations[0];
    CHECK(fleet.nats.subject == "avr.{uuid}.{type}");
    CHECK(config_for(loaded.config, fleet).nats.subject == "avr.{uuid}.{type}");
    CHECK(loaded.config.nats.subject == "avr.events.{type}");
    CHECK_THAT(describe(loaded), Catch::Contains("[destination fleet]\nurl = tls://n1:4222") &&
                                     Catch::Contains("subject = avr.{uuid}.{type}  (command line "
                                                     "--destination-fleet-subject)"));
    CHECK_THAT(test::config_error_of(nats_sources({{"url", "https://h.example/x"},
                                                   {"destination_fleet_url", "https://f.example/x"},
                                                   {"destination_fleet_token_file", "/etc/hosts"}})),
               Catch::StartsWith("destination_fleet_token_file: "));
}
