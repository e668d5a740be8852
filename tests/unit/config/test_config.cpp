#include "support/build_paths.hpp"
#include <avr_webhookd/config/command_line.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/config/describe.hpp>
#include <avr_webhookd/config/settings.hpp>
#include <avr_webhookd/common/url.hpp>

#include <boost/program_options.hpp>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

using namespace avr_webhookd;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr const char* test_url = "https://receiver.example/webhooks/avr";

// A fresh directory for one test's files, removed afterwards.
class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "avr-webhookd-config-XXXXXX").string();
        if (!mkdtemp(pattern.data())) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string write(const std::string& name, const std::string& content) const {
        const auto file = path_ / name;
        std::ofstream(file, std::ios::binary) << content;
        return file.string();
    }
    std::string path(const std::string& name) const { return (path_ / name).string(); }

private:
    fs::path path_;
};

// Sources that never look at /etc: the default file points into a directory that does not exist.
ConfigSources sources_with_url() {
    ConfigSources sources;
    sources.default_file = "/nonexistent/avr-webhookd-test/avr-webhookd.conf";
    sources.command_line["url"] = test_url;
    return sources;
}

LoadedConfig load_with(const std::string& key, const std::string& text) {
    auto sources = sources_with_url();
    sources.command_line[key] = text;
    return load_config(sources);
}

// The ConfigError a source set produces; fails the test when it loads.
ConfigError load_error(const ConfigSources& sources) {
    try {
        load_config(sources);
    } catch (const ConfigError& error) {
        return error;
    }
    FAIL("load_config accepted the configuration");
    throw std::logic_error("unreachable");
}

ConfigError load_error_with(const std::string& key, const std::string& text) {
    auto sources = sources_with_url();
    sources.command_line[key] = text;
    return load_error(sources);
}

std::string line_of(const std::string& described, const std::string& key) {
    std::istringstream lines(described);
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with(key + " = ")) {
            return line;
        }
    }
    return {};
}

}  // namespace

TEST_CASE("config: built-in defaults with only the url given", "[config]") {
    const auto loaded = load_config(sources_with_url());
    const auto& config = loaded.config;
    CHECK(config.url == test_url);
    CHECK(config.secret.empty());
    CHECK(config.signature == SignatureMode::plain);
    CHECK(config.timeout == 3000ms);
    CHECK(config.retry == 0);
    CHECK(config.socket == "/run/avr-webhookd/events.sock");
    CHECK(config.socket_mode == 0660);
    CHECK(config.max_line == 65536);
    CHECK(config.allow_unknown_types == false);
    CHECK(config.dead_letter == "/run/avr-webhookd/dead-letter.ndjson");
    CHECK(loaded.config_file_used.empty());
    CHECK(loaded.warnings.empty());
    for (const auto& setting : all_settings()) {
        const auto key = std::string{setting.key};
        REQUIRE(loaded.origins.contains(key));
        CHECK(loaded.origins.at(key) == (key == "url" ? Origin::command_line : Origin::built_in));
    }
}

TEST_CASE("config: the settings table is consistent", "[config]") {
    std::set<std::string_view> keys;
    for (const auto& setting : all_settings()) {
        INFO(setting.key);
        CHECK(keys.insert(setting.key).second);
        CHECK(setting.key.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string_view::npos);
        CHECK((!setting.key.starts_with('_') && !setting.key.ends_with('_')));
        CHECK_FALSE(setting.help.empty());
        CHECK(setting.help.find('\n') == std::string_view::npos);
    }
    for (const char* key : {"url", "secret", "timeout", "retry", "secret_file", "socket", "socket_mode", "max_line",
                            "max_connections", "log_level", "allow_unknown_types"}) {
        CHECK(keys.contains(key));
    }
    CHECK(flag_name("allow_unknown_types") == "allow-unknown-types");
    CHECK(environment_name("allow_unknown_types") == "WEBHOOK_ALLOW_UNKNOWN_TYPES");
}

TEST_CASE("config: precedence is command line > environment > config file > built-in", "[config]") {
    TempDir dir;
    const auto file = dir.write("a.conf", "timeout = 1000\n");
    for (int given = 0; given < 8; ++given) {
        const bool in_file = given & 1;
        const bool in_environment = given & 2;
        const bool on_command_line = given & 4;
        INFO("file " << in_file << ", environment " << in_environment << ", command line " << on_command_line);
        auto sources = sources_with_url();
        sources.config_file = in_file ? file : dir.write("empty.conf", "");
        if (in_environment) {
            sources.environment["WEBHOOK_TIMEOUT"] = "2000";
        }
        if (on_command_line) {
            sources.command_line["timeout"] = "4000";
        }
        const auto loaded = load_config(sources);
        const auto expected = on_command_line  ? std::pair{4000ms, Origin::command_line}
                              : in_environment ? std::pair{2000ms, Origin::environment}
                              : in_file        ? std::pair{1000ms, Origin::config_file}
                                               : std::pair{3000ms, Origin::built_in};
        CHECK(loaded.config.timeout == expected.first);
        CHECK(loaded.origins.at("timeout") == expected.second);
    }
}

TEST_CASE("config: describe reports every origin and one line per setting", "[config]") {
    TempDir dir;
    auto sources = sources_with_url();
    sources.config_file = dir.write("a.conf", "retry = 2\n");
    sources.environment["WEBHOOK_TIMEOUT"] = "5s";
    const auto loaded = load_config(sources);
    const auto described = describe(loaded);

    CHECK(static_cast<std::size_t>(std::count(described.begin(), described.end(), '\n')) == all_settings().size());
    CHECK(line_of(described, "url") == "url = https://receiver.example/<redacted>  (command line --url)");
    CHECK(line_of(described, "timeout") == "timeout = 5s  (environment WEBHOOK_TIMEOUT)");
    CHECK(line_of(described, "retry") == "retry = 2  (config file " + loaded.config_file_used + ")");
    CHECK(line_of(described, "socket_mode") == "socket_mode = 0660  (built-in)");
    CHECK(line_of(described, "secret") == "secret = \"\"  (built-in)");
    CHECK(line_of(described, "types") == "types = \"\"  (built-in)");
    CHECK(to_string(Origin::environment) == "environment");
}

TEST_CASE("config: the config file is chosen by --config, WEBHOOK_CONFIG or the default path", "[config]") {
    TempDir dir;
    const auto named = dir.write("named.conf", "retry = 1\n");
    const auto from_environment = dir.write("environment.conf", "retry = 2\n");
    const auto fallback = dir.write("default.conf", "retry = 3\n");
    auto sources = sources_with_url();
    sources.default_file = fallback;

    SECTION("--config wins over WEBHOOK_CONFIG") {
        sources.config_file = named;
        sources.environment["WEBHOOK_CONFIG"] = from_environment;
        const auto loaded = load_config(sources);
        CHECK(loaded.config.retry == 1);
        CHECK(loaded.config_file_used == named);
    }
    SECTION("WEBHOOK_CONFIG wins over the default path, and is not an unknown variable") {
        sources.environment["WEBHOOK_CONFIG"] = from_environment;
        const auto loaded = load_config(sources);
        CHECK(loaded.config.retry == 2);
        CHECK(loaded.warnings.empty());
    }
    SECTION("the default path is read when it exists") {
        const auto loaded = load_config(sources);
        CHECK(loaded.config.retry == 3);
        CHECK(loaded.config_file_used == fallback);
    }
    SECTION("a missing default path is no error") {
        sources.default_file = dir.path("missing.conf");
        const auto loaded = load_config(sources);
        CHECK(loaded.config_file_used.empty());
    }
    SECTION("an empty name reads no file") {
        sources.config_file = "";
        CHECK(load_config(sources).config.retry == 0);
    }
    SECTION("a named file that is missing is an error") {
        sources.config_file = dir.path("missing.conf");
        const auto error = load_error(sources);
        CHECK(std::string{error.what()} ==
              "config file " + dir.path("missing.conf") + " (from --config) does not exist");
        sources.config_file.reset();
        sources.environment["WEBHOOK_CONFIG"] = dir.path("missing.conf");
        CHECK_THAT(load_error(sources).what(), Catch::Contains("(from WEBHOOK_CONFIG) does not exist"));
    }
}

TEST_CASE("config: file syntax with comments, blank lines, quotes and CRLF", "[config]") {
    TempDir dir;
    auto sources = sources_with_url();
    sources.command_line.clear();
    sources.config_file = dir.write("a.conf",
                                    "\xEF\xBB\xBF# a comment\n"
                                    "\n"
                                    "   # an indented comment\n"
                                    "url = https://h.example/x#fragment   # trailing comment\n"
                                    "agent_id = \"agent # one\"  # quoted keeps the hash\n"
                                    "secret = 'it\"s'\n"
                                    "types=call_started,call_ended\r\n"
                                    "  log_level   =   debug  \n"
                                    "admin =\n");
    const auto loaded = load_config(sources);
    CHECK(loaded.config.url == "https://h.example/x#fragment");
    CHECK(loaded.config.agent_id == "agent # one");
    CHECK(loaded.config.types == std::vector<std::string>{"call_started", "call_ended"});
    CHECK(loaded.config.log_level == LogLevel::debug);
    CHECK(loaded.config.admin.empty());
    CHECK(loaded.origins.at("admin") == Origin::config_file);
    CHECK(loaded.config.secret == "it\"s");
}

TEST_CASE("config: a value that starts with '#' is a comment after whitespace, text right after '='", "[config]") {
    // Found by fuzz_config_file: the comment scan read the byte before a leading '#'.
    TempDir dir;
    auto sources = sources_with_url();
    sources.config_file = dir.write("a.conf", "agent_id = # no agent\nsecret =#hash-secret\n");
    const auto loaded = load_config(sources);
    CHECK(loaded.config.agent_id.empty());
    CHECK(loaded.config.secret == "#hash-secret");
}

TEST_CASE("config: file errors name the file, the line and the key", "[config]") {
    TempDir dir;
    auto sources = sources_with_url();
    const auto error_for = [&](const std::string& content) {
        sources.config_file = dir.write("bad.conf", content);
        return load_error(sources);
    };
    const auto path = dir.path("bad.conf");

    auto error = error_for("# fine\ntimout = 5s\n");
    CHECK(std::string{error.what()} ==
          "config file " + path + " line 2: unknown setting \"timout\" (did you mean timeout?)");
    CHECK(error.setting == "timout");

    CHECK(std::string{error_for("max-line = 1024\n").what()} ==
          "config file " + path + " line 1: unknown setting \"max-line\" (did you mean max_line?)");
    CHECK(std::string{error_for("retry 3\n").what()} == "config file " + path + " line 1: expected key = value");
    CHECK(std::string{error_for("\n= 3\n").what()} == "config file " + path + " line 2: expected key = value");
    CHECK(std::string{error_for("completely_unrelated = 1\n").what()} ==
          "config file " + path + " line 1: unknown setting \"completely_unrelated\"");
    CHECK(std::string{error_for("retry = 1\nretry = 2\n").what()} ==
          "config file " + path + " line 2: retry is already set on line 1");
    CHECK(std::string{error_for("agent_id = \"abc\" extra\n").what()} ==
          "config file " + path + " line 1: unexpected text after the quoted value of agent_id");

    error = error_for("\n\ntimeout = abc\n");
    CHECK(std::string{error.what()} ==
          "invalid setting timeout (" + path + " line 3) = \"abc\": expected a duration such as 3000, 500ms, 3s or 2m");
    CHECK(error.setting == "timeout");

    SECTION("a directory is not a config file") {
        sources.config_file = dir.path("");
        CHECK_THAT(load_error(sources).what(), Catch::Contains("it is a directory"));
    }
}

TEST_CASE("config: file errors never echo the secret", "[config]") {
    TempDir dir;
    auto sources = sources_with_url();
    for (const std::string content :
         {"secret = \"hunter2-secret\n", "secret = 'hunter2-secret\" # x\n", "secret = \"hunter2-secret\" trailing\n",
          "secret hunter2-secret\n", "secert = hunter2-secret\n"}) {
        INFO(content);
        sources.config_file = dir.write("bad.conf", content);
        const std::string message = load_error(sources).what();
        CHECK(message.find("hunter2") == std::string::npos);
        CHECK(message.find('\n') == std::string::npos);
    }
}

TEST_CASE("config: every invalid value gets one line naming setting, source, value and what is allowed", "[config]") {
    struct Bad {
        const char* key;
        const char* value;
        const char* expected;
    };
    const std::string too_long_agent_id(257, 'a');
    const Bad cases[] = {
        {"url", "ftp://h.example/", "expected an http:// or https:// URL"},
        {"url", "http://", "expected an http:// or https:// URL"},
        {"url", "http:///path", "expected an http:// or https:// URL"},
        {"url", "h.example/webhooks", "expected an http:// or https:// URL"},
        {"url", "https://h.example:0/", "expected an http:// or https:// URL"},
        {"url", "https://h.example:99999/", "expected an http:// or https:// URL"},
        {"url", "https://[::1/", "expected an http:// or https:// URL"},
        {"url", "https://h.example/a b", "without spaces or control characters"},
        {"url", "https://h.example/\r\nX-Evil: 1", "without spaces or control characters"},
        {"url", "", "expected an http:// or https:// URL"},
        {"signature", "hmac", "expected one of plain, hmac-sha256, standard"},
        {"timeout", "abc", "expected a duration such as 3000, 500ms, 3s or 2m"},
        {"timeout", "0", "expected a duration from 1ms to 1h"},
        {"timeout", "-5", "expected a duration such as"},
        {"timeout", "2h", "expected a duration from 1ms to 1h"},
        {"timeout", "", "expected a duration such as"},
        {"retry", "-2", "expected a whole number from -1 to 1000000 (-1 = until max_age)"},
        {"retry", "1.5", "expected a whole number from -1 to 1000000"},
        {"retry", "99999999999999999999", "expected a whole number from -1 to 1000000"},
        {"retry", " 3", "expected a whole number"},
        {"retry_base", "0ms", "expected a duration from 1ms to 1h"},
        {"retry_max_delay", "25h", "expected a duration from 1ms to 24h"},
        {"max_age", "0", "expected a duration from 1ms to 720h"},
        {"agent_id", "agent\r\nX-Evil: 1", "expected printable ASCII of at most 256 bytes"},
        {"agent_id", too_long_agent_id.c_str(), "expected printable ASCII of at most 256 bytes"},
        {"ca_file", "/nonexistent/ca.pem", "expected the path of an existing file"},
        {"tls_verify", "maybe", "expected true or false (also yes/no, on/off, 1/0)"},
        {"concurrency", "0", "expected a whole number from 1 to 4096"},
        {"concurrency", "4097", "expected a whole number from 1 to 4096"},
        {"types", "Call_started", "expected a comma-separated list of event types"},
        {"types", "call_started,,call_ended", "expected a comma-separated list of event types"},
        {"types", "call_started,", "expected a comma-separated list of event types"},
        {"types", "custom_event", "expected known event types (custom_event is not one; see allow_unknown_types)"},
        {"socket", "run/events.sock", "expected an absolute file path of at most 107 bytes"},
        {"socket", "/run/", "expected an absolute file path of at most 107 bytes"},
        {"socket_mode", "0666", "not writable by others"},
        {"socket_mode", "0662", "not writable by others"},
        {"socket_mode", "0668", "expected an octal mode such as 0660 or 660"},
        {"socket_mode", "07777", "expected an octal mode"},
        {"socket_mode", "1777", "expected an octal mode"},
        {"socket_mode", "rw-rw----", "expected an octal mode"},
        {"socket_mode", "60", "expected an octal mode"},
        {"max_line", "255", "expected a whole number from 256 to 16777216"},
        {"max_line", "16777217", "expected a whole number from 256 to 16777216"},
        {"max_line", "64KiB", "expected a whole number from 256 to 16777216"},
        {"max_connections", "65536", "expected a whole number from 1 to 65535"},
        {"max_queue", "0", "expected a whole number from 1 to 10000000"},
        {"queue_full", "drop", "expected one of block, reject"},
        {"ack", "none", "expected one of errors, all"},
        {"allow_unknown_types", "", "expected true or false"},
        {"dead_letter", "dead.ndjson", "expected an absolute file path, or empty for off"},
        {"shutdown_timeout", "2h", "expected a duration from 0ms to 1h"},
        {"call_idle_timeout", "500ms", "expected a duration from 1s to 24h"},
        {"log_level", "verbose", "expected one of debug, info, warn, error"},
        {"log_level", "INFO", "expected one of debug, info, warn, error"},
        {"log_format", "xml", "expected one of text, json"},
        {"admin", "9100", "expected an absolute Unix socket path, HOST:PORT"},
        {"admin", ":9100", "expected an absolute Unix socket path, HOST:PORT"},
        {"admin", "localhost:", "expected an absolute Unix socket path, HOST:PORT"},
        {"admin", "localhost:http", "expected an absolute Unix socket path, HOST:PORT"},
        {"admin", "[::1]", "expected an absolute Unix socket path, HOST:PORT"},
        {"admin", "::1:9100", "expected an absolute Unix socket path, HOST:PORT"},
        {"admin", "relative/admin.sock", "expected an absolute Unix socket path, HOST:PORT"},
        {"admin", "127.0.0.1:65536", "expected an absolute Unix socket path, HOST:PORT"},
        {"admin", "127.0.0.1:00", "expected an absolute Unix socket path, HOST:PORT"},
    };
    for (const auto& bad : cases) {
        INFO(bad.key << " = \"" << bad.value << "\"");
        auto sources = sources_with_url();
        sources.command_line[bad.key] = bad.value;
        const auto error = load_error(sources);
        const std::string message = error.what();
        CHECK(error.setting == bad.key);
        CHECK(message.starts_with("invalid setting " + std::string{bad.key} + " (--" + flag_name(bad.key) + ") = \""));
        CHECK_THAT(message, Catch::Contains(bad.expected));
        CHECK(message.find('\n') == std::string::npos);
        CHECK(message.find('\r') == std::string::npos);

        sources.command_line.erase(bad.key);
        sources.environment[environment_name(bad.key)] = bad.value;
        if (std::string{bad.key} == "url") {
            sources.command_line.erase("url");
        }
        const std::string from_environment = load_error(sources).what();
        CHECK(from_environment.starts_with("invalid setting " + std::string{bad.key} + " (" +
                                           environment_name(bad.key) + ") = "));
    }
}

TEST_CASE("config: the error example from the contract", "[config]") {
    auto sources = sources_with_url();
    sources.environment["WEBHOOK_TIMEOUT"] = "abc";
    CHECK(std::string{load_error(sources).what()} ==
          "invalid setting timeout (WEBHOOK_TIMEOUT) = \"abc\": expected a duration such as 3000, 500ms, 3s or 2m");
}

TEST_CASE("config: long and control-character values are cut and escaped in errors", "[config]") {
    const std::string message = load_error_with("log_level", "a\x01\"b" + std::string(500, 'x')).what();
    CHECK_THAT(message, Catch::Contains("= \"a\\u0001\\\"bxxx"));
    CHECK_THAT(message, Catch::Contains("xxx\"...: expected one of"));
    CHECK(message.size() < 400);
}

TEST_CASE("config: valid values of each kind are accepted", "[config]") {
    CHECK(load_with("url", "http://localhost:8080/events").config.url == "http://localhost:8080/events");
    CHECK(load_with("url", "HTTPS://[::1]:8443/x?y=1").config.url == "HTTPS://[::1]:8443/x?y=1");
    CHECK(load_with("url", "https://user:pw@h.example").config.url == "https://user:pw@h.example");
    CHECK(load_with("timeout", "500ms").config.timeout == 500ms);
    CHECK(load_with("timeout", "1h").config.timeout == 1h);
    CHECK(load_with("retry", "-1").config.retry == -1);
    CHECK(load_with("retry", "1000000").config.retry == 1000000);
    CHECK(load_with("max_age", "720h").config.max_age == 720h);
    CHECK(load_with("shutdown_timeout", "0").config.shutdown_timeout == 0ms);
    CHECK(load_with("agent_id", "agent 7 (prod)").config.agent_id == "agent 7 (prod)");
    CHECK(load_with("concurrency", "4096").config.concurrency == 4096);
    CHECK(load_with("max_line", "16777216").config.max_line == 16777216);
    CHECK(load_with("max_line", "256").config.max_line == 256);
    CHECK(load_with("max_connections", "1").config.max_connections == 1);
    CHECK(load_with("max_queue", "10000000").config.max_queue == 10000000);
    CHECK(load_with("queue_full", "reject").config.queue_full == QueueFullPolicy::reject);
    CHECK(load_with("ack", "all").config.ack == AckMode::all);
    CHECK(load_with("log_level", "warn").config.log_level == LogLevel::warn);
    CHECK(load_with("log_format", "json").config.log_format == LogFormat::json);
    CHECK(load_with("admin", "127.0.0.1:9100").config.admin == "127.0.0.1:9100");
    CHECK(load_with("admin", "[::1]:9100").config.admin == "[::1]:9100");
    CHECK(load_with("admin", "localhost:80").config.admin == "localhost:80");
    CHECK(load_with("admin", "127.0.0.1:0").config.admin == "127.0.0.1:0");  // any free port
    CHECK(load_with("admin", "/run/avr-webhookd/admin.sock").config.admin == "/run/avr-webhookd/admin.sock");
    CHECK(load_with("socket", "/" + std::string(106, 's')).config.socket.size() == 107);
    CHECK_THROWS_AS(load_with("socket", "/" + std::string(107, 's')), ConfigError);
    CHECK(load_with("types", " call_started , call_ended,call_started ").config.types ==
          std::vector<std::string>{"call_started", "call_ended"});
    CHECK(load_with("types", "").config.types.empty());
}

TEST_CASE("config: booleans accept true/false, yes/no, on/off and 1/0", "[config]") {
    for (const char* yes : {"true", "yes", "on", "1", "TRUE", "Yes"}) {
        CHECK(load_with("allow_unknown_types", yes).config.allow_unknown_types);
    }
    for (const char* no : {"false", "no", "off", "0", "False", "OFF"}) {
        CHECK_FALSE(load_with("tls_verify", no).config.tls_verify);
    }
}

TEST_CASE("config: types may name unknown types only with allow_unknown_types", "[config]") {
    auto sources = sources_with_url();
    sources.command_line["types"] = "call_ended,custom_event";
    CHECK_THROWS_AS(load_config(sources), ConfigError);
    sources.environment["WEBHOOK_ALLOW_UNKNOWN_TYPES"] = "true";
    CHECK(load_config(sources).config.types == std::vector<std::string>{"call_ended", "custom_event"});
}

TEST_CASE("config: socket_mode is octal and never world-writable", "[config]") {
    CHECK(load_with("socket_mode", "0660").config.socket_mode == 0660);
    CHECK(load_with("socket_mode", "660").config.socket_mode == 0660);
    CHECK(load_with("socket_mode", "0600").config.socket_mode == 0600);
    CHECK(load_with("socket_mode", "0775").config.socket_mode == 0775);
    for (const char* writable : {"0662", "0666", "777", "0002", "0776"}) {
        INFO(writable);
        CHECK_THAT(load_error_with("socket_mode", writable).what(), Catch::Contains("not writable by others"));
    }
    CHECK(line_of(describe(load_with("socket_mode", "600")), "socket_mode") ==
          "socket_mode = 0600  (command line --socket-mode)");
}

TEST_CASE("config: dead_letter defaults next to the socket, empty turns it off", "[config]") {
    CHECK(load_config(sources_with_url()).config.dead_letter == "/run/avr-webhookd/dead-letter.ndjson");
    CHECK(load_with("socket", "/tmp/avr/in.sock").config.dead_letter == "/tmp/avr/dead-letter.ndjson");
    CHECK(load_with("socket", "/in.sock").config.dead_letter == "/dead-letter.ndjson");

    auto sources = sources_with_url();
    sources.environment["WEBHOOK_DEAD_LETTER"] = "";
    sources.command_line["socket"] = "/tmp/avr/in.sock";
    const auto off = load_config(sources);
    CHECK(off.config.dead_letter.empty());
    CHECK(off.origins.at("dead_letter") == Origin::environment);
    CHECK(line_of(describe(off), "dead_letter") == "dead_letter = \"\"  (environment WEBHOOK_DEAD_LETTER)");

    CHECK(load_with("dead_letter", "/var/lib/avr/dead.ndjson").config.dead_letter == "/var/lib/avr/dead.ndjson");
    CHECK(load_config(sources_with_url()).origins.at("dead_letter") == Origin::built_in);
}

TEST_CASE("config: the url is required", "[config]") {
    ConfigSources sources;
    sources.default_file = "/nonexistent/avr-webhookd.conf";
    const auto error = load_error(sources);
    CHECK(error.setting == "url");
    CHECK_THAT(error.what(), Catch::StartsWith("missing setting url: set WEBHOOK_URL, --url or url"));
}

TEST_CASE("config: the secret never appears in describe or in errors", "[config]") {
    const std::string secret = "s3cr3t-Value";
    for (const auto origin : {Origin::command_line, Origin::environment, Origin::config_file}) {
        TempDir dir;
        auto sources = sources_with_url();
        if (origin == Origin::command_line) {
            sources.command_line["secret"] = secret;
        } else if (origin == Origin::environment) {
            sources.environment["WEBHOOK_SECRET"] = secret;
        } else {
            sources.config_file = dir.write("a.conf", "secret = \"" + secret + "\"\n");
        }
        const auto loaded = load_config(sources);
        CHECK(loaded.config.secret == secret);
        CHECK(loaded.origins.at("secret") == origin);
        const auto described = describe(loaded);
        CHECK(described.find(secret) == std::string::npos);
        CHECK_THAT(line_of(described, "secret"), Catch::StartsWith("secret = <redacted>  ("));
    }

    SECTION("a secret that its signature mode cannot use") {
        const auto error_for = [](const std::string& mode, const std::string& bad_secret) {
            auto sources = sources_with_url();
            sources.command_line["signature"] = mode;
            sources.environment["WEBHOOK_SECRET"] = bad_secret;
            return std::string{load_error(sources).what()};
        };
        for (const auto& [mode, bad_secret] :
             {std::pair{"plain", "s3cr3t\x01Value"}, std::pair{"plain", " s3cr3t "},
              std::pair{"plain", "s3cr3t\nValue"}, std::pair{"standard", "whsec_s3cr3t!!Value"}}) {
            INFO(mode);
            const auto message = error_for(mode, bad_secret);
            CHECK_THAT(message, Catch::StartsWith("invalid setting secret (WEBHOOK_SECRET) = <redacted>: "));
            CHECK(message.find("s3cr3t") == std::string::npos);
            CHECK(message.find('\n') == std::string::npos);
        }
    }
    SECTION("credentials and path tokens inside the url are redacted") {
        const auto loaded = load_with("url", "https://user:pa55word@h.example/x/T0K3N?key=abc");
        CHECK(line_of(describe(loaded), "url") ==
              "url = https://<redacted>@h.example/<redacted>?<redacted>  (command line --url)");
        const std::string message = load_error_with("url", "https://user:pa55word@h.example:0/a/T0K3N").what();
        CHECK(message.find("pa55word") == std::string::npos);
        CHECK(message.find("T0K3N") == std::string::npos);
        CHECK_THAT(message, Catch::Contains("https://<redacted>@h.example:0/<redacted>"));
    }
}

TEST_CASE("config: secret_file is read at load", "[config]") {
    TempDir dir;
    auto sources = sources_with_url();

    SECTION("trailing newlines are stripped and the origin is secret_file's") {
        sources.environment["WEBHOOK_SECRET_FILE"] = dir.write("secret", "from-file-S3cret\r\n\n");
        const auto loaded = load_config(sources);
        CHECK(loaded.config.secret == "from-file-S3cret");
        CHECK(loaded.origins.at("secret") == Origin::environment);
        const auto described = describe(loaded);
        CHECK(described.find("from-file-S3cret") == std::string::npos);
        CHECK(line_of(described, "secret") == "secret = <redacted>  (read from secret_file)");
        CHECK(line_of(described, "secret_file") ==
              "secret_file = " + dir.path("secret") + "  (environment WEBHOOK_SECRET_FILE)");
    }
    SECTION("inner spaces and a missing final newline are kept as they are") {
        sources.command_line["signature"] = "hmac-sha256";
        sources.command_line["secret_file"] = dir.write("secret", "two words");
        CHECK(load_config(sources).config.secret == "two words");
    }
    SECTION("a missing file is an error naming it") {
        sources.command_line["secret_file"] = dir.path("missing");
        const auto error = load_error(sources);
        CHECK(error.setting == "secret_file");
        CHECK(std::string{error.what()} ==
              "invalid setting secret_file (--secret-file) = \"" + dir.path("missing") +
                  "\": expected a readable file holding the secret (No such file or directory)");
    }
    SECTION("a directory is an error") {
        sources.command_line["secret_file"] = dir.path("");
        CHECK_THAT(load_error(sources).what(), Catch::Contains("expected a file holding the secret, not a directory"));
    }
    SECTION("an empty file is an error") {
        sources.command_line["secret_file"] = dir.write("secret", "\n");
        CHECK_THAT(load_error(sources).what(), Catch::Contains("but it is empty"));
    }
    SECTION("secret and secret_file together are an error, whatever their sources") {
        sources.command_line["secret_file"] = dir.write("secret", "from-file-S3cret\n");
        sources.environment["WEBHOOK_SECRET"] = "env-S3cret";
        const std::string message = load_error(sources).what();
        CHECK_THAT(message, Catch::StartsWith("invalid setting secret_file (--secret-file) = "));
        CHECK_THAT(message,
                   Catch::Contains("only one of secret and secret_file, but secret is also set (WEBHOOK_SECRET)"));
        CHECK(message.find("S3cret") == std::string::npos);
    }
    SECTION("an empty secret on the command line clears one from elsewhere") {
        sources.command_line["secret_file"] = dir.write("secret", "from-file-S3cret\n");
        sources.environment["WEBHOOK_SECRET"] = "env-S3cret";
        sources.command_line["secret"] = "";
        CHECK(load_config(sources).config.secret == "from-file-S3cret");
    }
    SECTION("the file's content is validated for the signature mode without echoing it") {
        sources.command_line["secret_file"] = dir.write("secret", "bad\x01S3cret\n");
        const std::string message = load_error(sources).what();
        CHECK_THAT(message, Catch::StartsWith("invalid setting secret (read from secret_file) = <redacted>: "));
        CHECK(message.find("S3cret") == std::string::npos);
    }
}

TEST_CASE("config: warnings for a secret others can read", "[config]") {
    TempDir dir;
    auto sources = sources_with_url();
    const auto secret_file = dir.write("secret", "S3cret\n");

    fs::permissions(secret_file, fs::perms::owner_read | fs::perms::owner_write);
    sources.command_line["secret_file"] = secret_file;
    CHECK(load_config(sources).warnings.empty());

    fs::permissions(secret_file, fs::perms::others_read, fs::perm_options::add);
    CHECK(load_config(sources).warnings ==
          std::vector<std::string>{"secret_file " + secret_file + " is readable by all users"});

    sources.command_line.erase("secret_file");
    sources.command_line["secret"] = "S3cret";
    CHECK(load_config(sources).warnings ==
          std::vector<std::string>{"--secret is visible to all users in the process list; prefer secret_file"});

    sources.command_line.erase("secret");
    sources.config_file = dir.write("a.conf", "secret = S3cret\n");
    fs::permissions(*sources.config_file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
    CHECK(load_config(sources).warnings == std::vector<std::string>{"config file " + *sources.config_file +
                                                                    " holds the secret and is readable by all users"});
    fs::permissions(*sources.config_file, fs::perms::owner_read | fs::perms::owner_write);
    CHECK(load_config(sources).warnings.empty());
}

TEST_CASE("config: describe quotes only strings that would not read back bare", "[config]") {
    CHECK(line_of(describe(load_with("agent_id", "agent 7")), "agent_id") ==
          "agent_id = agent 7  (command line --agent-id)");
    CHECK(line_of(describe(load_with("agent_id", "agent # 7")), "agent_id") ==
          "agent_id = \"agent # 7\"  (command line --agent-id)");
    CHECK(line_of(describe(load_with("agent_id", " padded")), "agent_id") ==
          "agent_id = \" padded\"  (command line --agent-id)");
    CHECK(line_of(describe(load_with("agent_id", "\"quoted\"")), "agent_id") ==
          "agent_id = \"\\\"quoted\\\"\"  (command line --agent-id)");
}

TEST_CASE("config: cross-setting rules", "[config]") {
    auto sources = sources_with_url();
    SECTION("hmac-sha256 and standard need a secret") {
        sources.command_line["signature"] = "standard";
        CHECK(std::string{load_error(sources).what()} ==
              "invalid setting signature (--signature) = \"standard\": expected plain when no secret or secret_file is "
              "set");
        sources.command_line["secret"] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        CHECK(load_config(sources).config.signature == SignatureMode::standard);
    }
    SECTION("retry_max_delay is at least retry_base") {
        sources.command_line["retry_base"] = "10s";
        sources.environment["WEBHOOK_RETRY_MAX_DELAY"] = "5s";
        CHECK(std::string{load_error(sources).what()} ==
              "invalid setting retry_max_delay (WEBHOOK_RETRY_MAX_DELAY) = \"5s\": expected a duration of at least "
              "retry_base (10s)");
    }
    SECTION("an unknown key on the command line") {
        sources.command_line["timout"] = "1s";
        CHECK(std::string{load_error(sources).what()} ==
              "unknown setting \"timout\" on the command line (did you mean timeout?)");
    }
}

TEST_CASE("config: unknown WEBHOOK_ variables are warnings, other variables are ignored", "[config]") {
    auto sources = sources_with_url();
    sources.environment["WEBHOOK_TIMOUT"] = "5s";
    sources.environment["WEBHOOK_SOMETHING_ELSE"] = "x";
    sources.environment["PATH"] = "/usr/bin";
    sources.environment["webhook_timeout"] = "1";
    const auto loaded = load_config(sources);
    CHECK(loaded.config.timeout == 3000ms);
    CHECK(loaded.warnings ==
          std::vector<std::string>{
              "ignoring unknown environment variable WEBHOOK_SOMETHING_ELSE",
              "ignoring unknown environment variable WEBHOOK_TIMOUT (did you mean WEBHOOK_TIMEOUT?)"});
}

TEST_CASE("config: environment_from splits NAME=VALUE at the first =", "[config]") {
    std::string a = "WEBHOOK_URL=https://h.example/?a=b", b = "EMPTY=", c = "NO_EQUALS";
    char* envp[] = {a.data(), b.data(), c.data(), nullptr};
    const auto environment = environment_from(envp);
    CHECK(environment == Environment{{"WEBHOOK_URL", "https://h.example/?a=b"}, {"EMPTY", ""}});
    CHECK(environment_from(nullptr).empty());
}

TEST_CASE("config: command-line flags for every setting, through program_options", "[config]") {
    namespace po = boost::program_options;
    po::options_description options;
    add_setting_options(options);
    for (const auto& setting : all_settings()) {
        CHECK(options.find_nothrow(flag_name(setting.key), false) != nullptr);
    }
    const char* argv[] = {"avr-webhookd",
                          "--timeout",
                          "5s",
                          "--allow-unknown-types",
                          "--tls-verify=false",
                          "--secret-file=/run/credentials/secret",
                          "--config",
                          "/etc/x.conf",
                          "--url=https://h.example/"};
    po::variables_map vm;
    po::store(po::parse_command_line(static_cast<int>(std::size(argv)), argv, options), vm);
    po::notify(vm);
    CHECK(command_line_settings(vm) == std::map<std::string, std::string>{{"allow_unknown_types", "true"},
                                                                          {"secret_file", "/run/credentials/secret"},
                                                                          {"timeout", "5s"},
                                                                          {"tls_verify", "false"},
                                                                          {"url", "https://h.example/"}});
    CHECK(command_line_config_file(vm) == "/etc/x.conf");

    Environment environment{{"WEBHOOK_RETRY", "2"}};
    const auto sources = config_sources(vm, environment);
    CHECK(sources.config_file == "/etc/x.conf");
    CHECK(sources.environment == environment);
    CHECK(sources.command_line.size() == 5);

    po::variables_map empty;
    po::store(po::parse_command_line(1, argv, options), empty);
    CHECK(command_line_settings(empty).empty());
    CHECK_FALSE(command_line_config_file(empty));
}

namespace {

// The shipped example files of this source tree.
fs::path source_dir() { return fs::path(AVR_WEBHOOKD_SOURCE_DIR); }

std::vector<std::string> lines_of(const fs::path& file) {
    std::ifstream in(file);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
        lines.push_back(line);
    }
    return lines;
}

// describe() without the origins, to compare values only.
std::string values_of(const LoadedConfig& loaded) {
    std::istringstream lines(describe(loaded));
    std::string out;
    for (std::string line; std::getline(lines, line);) {
        out += line.substr(0, line.rfind("  (")) + "\n";
    }
    return out;
}

// "# name = value" (conf) or "#NAME=value" (env): a commented-out setting, as {name, value}.
std::optional<std::pair<std::string, std::string>> commented_setting(std::string_view line,
                                                                     std::string_view name_characters,
                                                                     std::string_view separator) {
    if (!line.starts_with('#')) {
        return std::nullopt;
    }
    line.remove_prefix(line.starts_with("# ") ? 2 : 1);
    const auto name_end = line.find_first_not_of(name_characters);
    if (name_end == 0 || name_end == std::string_view::npos || !line.substr(name_end).starts_with(separator)) {
        return std::nullopt;
    }
    auto value = line.substr(name_end + separator.size());
    if (value.starts_with(' ')) {
        value.remove_prefix(1);
    }
    return std::pair{std::string{line.substr(0, name_end)}, std::string{value}};
}

}  // namespace

TEST_CASE("config: the example config file documents every setting with its built-in default", "[config]") {
    const auto example = source_dir() / "config" / "avr-webhookd.conf";
    REQUIRE(fs::exists(example));
    // Uncomment every "# key = value" line: the result must be the built-in configuration.
    std::string uncommented;
    std::set<std::string> documented;
    for (const auto& line : lines_of(example)) {
        if (const auto setting = commented_setting(line, "abcdefghijklmnopqrstuvwxyz_", " =")) {
            documented.insert(setting->first);
            uncommented += setting->first + " = " + setting->second + "\n";
        }
    }
    for (const auto& setting : all_settings()) {
        CHECK(documented.contains(std::string{setting.key}));
    }
    CHECK(documented.size() == all_settings().size());

    TempDir dir;
    auto sources = sources_with_url();
    sources.config_file = dir.write("uncommented.conf", uncommented);
    CHECK(values_of(load_config(sources)) == values_of(load_config(sources_with_url())));
}

TEST_CASE("config: the example environment file documents every variable with its built-in default", "[config]") {
    const auto example = source_dir() / "config" / "avr-webhookd.env";
    REQUIRE(fs::exists(example));
    Environment environment;
    for (const auto& line : lines_of(example)) {
        const auto variable = commented_setting(line, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_", "=");
        if (variable && variable->first.starts_with("WEBHOOK_")) {
            environment.insert(*variable);
        }
    }
    for (const auto& setting : all_settings()) {
        CHECK(environment.contains(environment_name(setting.key)));
    }
    CHECK(environment.contains("WEBHOOK_CONFIG"));
    environment.erase("WEBHOOK_CONFIG");

    auto sources = sources_with_url();
    sources.environment = environment;
    const auto loaded = load_config(sources);
    CHECK(loaded.warnings.empty());
    CHECK(values_of(loaded) == values_of(load_config(sources_with_url())));
}

TEST_CASE("config: find_setting_text reads one setting without needing the rest", "[config]") {
    TempDir dir;
    ConfigSources sources;
    sources.default_file = "/nonexistent/avr-webhookd-test/avr-webhookd.conf";
    CHECK_FALSE(find_setting_text(sources, "admin"));

    sources.config_file = dir.write("a.conf", "admin = 127.0.0.1:9464\nsocket = /tmp/x.sock\n");
    CHECK(find_setting_text(sources, "admin") == "127.0.0.1:9464");  // no url anywhere
    CHECK(find_setting_text(sources, "socket") == "/tmp/x.sock");

    sources.environment["WEBHOOK_ADMIN"] = "/run/avr-webhookd/admin.sock";
    CHECK(find_setting_text(sources, "admin") == "/run/avr-webhookd/admin.sock");
    sources.command_line["admin"] = "[::1]:9100";
    CHECK(find_setting_text(sources, "admin") == "[::1]:9100");

    sources.command_line["admin"] = "nonsense:port";
    CHECK_THROWS_WITH(find_setting_text(sources, "admin"), Catch::Contains("invalid setting admin (--admin)"));
    CHECK_THROWS_AS(find_setting_text(sources, "no_such_key"), ConfigError);

    ConfigSources broken;
    broken.config_file = dir.write("b.conf", "admin = 127.0.0.1:9464\nbogus = 1\n");
    CHECK_THROWS_WITH(find_setting_text(broken, "admin"), Catch::Contains("b.conf line 2"));
}

TEST_CASE("config: check-config and the daemon agree on every url (one validation path)", "[config][url]") {
    const std::vector<std::string> urls{
        "https://user:pw@h.example/",
        "https://user@h.example/",
        "http://u%3A:p%40@h.example:8080/x",
        "https://u:p%zz@h.example/",
        "http://h_1.example/",
        "http://h..example/",
        "http://999.1.1.1/",
        "http://[::1]:8443/x",
        "http://[::1%25eth0]/",
        "http://[fe80::1/",
        "https://h.example:0/",
        "https://h.example:65536/",
        "http://h.example:/",
        "http://h.example:80x/",
        "https://@/",
        "https:///path",
        "http://:80/",
        "HTTP://H.EXAMPLE/",
        "http://h.example/#frag",
        "http://h.example?x",
        "http://-h.example/",
        "http://" + std::string(64, 'a') + ".example/",
        "http://h.example/\\x",
    };
    for (const auto& url : urls) {
        INFO(url);
        std::string error;
        const bool daemon_accepts = parse_url(url, &error).has_value();
        bool check_config_accepts = true;
        try {
            load_with("url", url);
        } catch (const ConfigError&) {
            check_config_accepts = false;
        }
        CHECK(check_config_accepts == daemon_accepts);
    }
}

TEST_CASE("config: a plain secret over http:// to a host that is not loopback is warned about", "[config]") {
    const auto warnings_for = [](const std::string& url, const std::string& signature) {
        auto sources = sources_with_url();
        sources.command_line["url"] = url;
        sources.environment["WEBHOOK_SECRET"] = "S3cret";
        sources.command_line["signature"] = signature;
        return load_config(sources).warnings;
    };
    const auto warned = warnings_for("http://receiver.example/hook", "plain");
    REQUIRE(warned.size() == 1);
    CHECK_THAT(warned.at(0), Catch::StartsWith("signature = plain sends the secret as it is over http:// to "
                                               "receiver.example, which is not loopback"));
    CHECK(warned.at(0).find("S3cret") == std::string::npos);
    CHECK(warnings_for("https://receiver.example/hook", "plain").empty());
    CHECK(warnings_for("http://receiver.example/hook", "hmac-sha256").empty());
    for (const char* loopback : {"http://127.0.0.1:3000/", "http://localhost/", "http://[::1]:80/", "http://127.9.9.9/",
                                 "http://app.localhost/"})
        CHECK(warnings_for(loopback, "plain").empty());
    CHECK(warnings_for("http://127.0.0.1.example/", "plain").size() == 1);
    auto no_secret = sources_with_url();
    no_secret.command_line["url"] = "http://receiver.example/hook";
    CHECK(load_config(no_secret).warnings.empty());
}
