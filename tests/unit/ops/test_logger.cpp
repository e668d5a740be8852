#include "support/process.hpp"

#include <avr_webhookd/ops/logger.hpp>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

using namespace avr_webhookd;
using namespace avr_webhookd::test;

namespace {

// A log file the Logger writes to, read back as lines.
class LogFile {
public:
    LogFile() : path_(dir_ / "log"), fd_(::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) {
        REQUIRE(fd_ >= 0);
    }
    ~LogFile() { ::close(fd_); }
    LogFile(const LogFile&) = delete;
    LogFile& operator=(const LogFile&) = delete;

    int fd() const { return fd_; }
    const std::filesystem::path& path() const { return path_; }
    std::string device_and_inode() const {
        struct stat status {};
        REQUIRE(::fstat(fd_, &status) == 0);
        return std::to_string(status.st_dev) + ":" + std::to_string(status.st_ino);
    }
    std::vector<std::string> lines() const {
        std::vector<std::string> result;
        std::istringstream stream(read_file(path_));
        for (std::string line; std::getline(stream, line);) result.push_back(line);
        return result;
    }

private:
    TempDirectory dir_;
    std::filesystem::path path_;
    int fd_;
};

}  // namespace

TEST_CASE("logger: stream_is_journal compares JOURNAL_STREAM with the stream's device and inode", "[logger]") {
    LogFile file, other;
    const auto journal_stream = file.device_and_inode();
    CHECK(Logger::stream_is_journal(file.fd(), journal_stream.c_str()));
    CHECK_FALSE(Logger::stream_is_journal(other.fd(), journal_stream.c_str()));
    CHECK_FALSE(Logger::stream_is_journal(file.fd(), nullptr));
    CHECK_FALSE(Logger::stream_is_journal(file.fd(), ""));
    CHECK_FALSE(Logger::stream_is_journal(file.fd(), "garbage"));
    const auto device = journal_stream.substr(0, journal_stream.find(':'));
    CHECK_FALSE(Logger::stream_is_journal(file.fd(), (device + ":1").c_str()));
    CHECK_FALSE(Logger::stream_is_journal(-1, journal_stream.c_str()));
}

TEST_CASE("logger: under journald lines carry the syslog priority instead of a timestamp", "[logger]") {
    LogFile file;
    Logger logger({LogLevel::debug, LogFormat::text, true}, file.fd());
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    logger.block(LogLevel::error, "[WEBHOOK][CALL_ENDED] Retry failed\nWebhook Error:\nStatus: 400");
    CHECK(file.lines() == std::vector<std::string>{"<7>d", "<6>i", "<4>w", "<3>e",
                                                   "<3>[WEBHOOK][CALL_ENDED] Retry failed",
                                                   "<3>Webhook Error:", "<3>Status: 400"});
}

TEST_CASE("logger: text lines carry a UTC timestamp and the level, blocks are kept as they are", "[logger]") {
    LogFile file;
    Logger logger({LogLevel::info, LogFormat::text, false}, file.fd());
    logger.debug("hidden");
    logger.warn("careful");
    logger.block(LogLevel::error, "first\nsecond");
    const auto lines = file.lines();
    REQUIRE(lines.size() == 3);
    CHECK_THAT(lines[0], Catch::Matches(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARN  careful)"));
    CHECK(lines[1] == "first");
    CHECK(lines[2] == "second");
}

TEST_CASE("logger: json writes one object per record, a block as one record", "[logger]") {
    LogFile file;
    Logger logger({LogLevel::info, LogFormat::json, true}, file.fd());  // json wins over journald prefixes
    logger.info("quote \" and\ttab");
    logger.block(LogLevel::error, "first\nsecond");
    const auto lines = file.lines();
    REQUIRE(lines.size() == 2);
    const auto info = boost::json::parse(lines[0]).as_object();
    CHECK(info.at("level").as_string() == "info");
    CHECK(info.at("msg").as_string() == "quote \" and\ttab");
    CHECK_THAT(std::string(info.at("time").as_string()), Catch::Matches(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"));
    const auto block = boost::json::parse(lines[1]).as_object();
    CHECK(block.at("level").as_string() == "error");
    CHECK(block.at("msg").as_string() == "first\nsecond");
}

TEST_CASE("logger: sanitize replaces control characters and cuts long text", "[logger]") {
    CHECK(Logger::sanitize("plain text") == "plain text");
    CHECK(Logger::sanitize("forged\n2024-01-01 INFO ok\r\x1b[31m\x7f") == "forged?2024-01-01 INFO ok??[31m?");
    CHECK(Logger::sanitize(std::string(10, 'x'), 10) == std::string(10, 'x'));
    CHECK(Logger::sanitize(std::string(11, 'x'), 10) == std::string(10, 'x') + "...");
    CHECK(Logger::sanitize("caf\xc3\xa9") == "caf\xc3\xa9");  // UTF-8 bytes are not control characters
}

TEST_CASE("logger: json records stay valid UTF-8 JSON whatever bytes a message carries", "[logger]") {
    LogFile file;
    Logger logger({LogLevel::info, LogFormat::json, false}, file.fd());
    const std::string hostile = std::string("reason \xff\xfe phrase \xc3 cut \xed\xa0\x80 surrogate \x01\x1b[2J") +
                                std::string(1, '\0') + "end";
    logger.warn(hostile);
    logger.block(LogLevel::error, "Message: " + hostile + "\nStatus: ");
    const auto lines = file.lines();
    REQUIRE(lines.size() == 2);
    for (const auto& line : lines) {
        INFO(line);
        boost::system::error_code error;
        const auto value = boost::json::parse(line, error);  // Boost.JSON rejects invalid UTF-8
        REQUIRE_FALSE(error);
        const std::string msg(value.as_object().at("msg").as_string());
        CHECK_THAT(msg, Catch::Contains("reason \xEF\xBF\xBD\xEF\xBF\xBD phrase \xEF\xBF\xBD cut"));
        CHECK_THAT(msg, Catch::EndsWith(line == lines[0] ? "end" : "end\nStatus: "));
    }
}

TEST_CASE("logger: text records carry no raw control characters or invalid UTF-8", "[logger]") {
    for (const bool journald : {false, true}) {
        LogFile file;
        Logger logger({LogLevel::info, LogFormat::text, journald}, file.fd());
        logger.warn(
            "forged\n2024-01-01T00:00:00.000Z INFO  fake\r\x1b[31m \xc2\x9b"
            "31m \xff caf\xc3\xa9");
        logger.block(LogLevel::error, "one \x1b]0;title\x07\ntwo");
        const auto lines = file.lines();
        REQUIRE(lines.size() == 3);
        CHECK_THAT(lines[0],
                   Catch::EndsWith("forged?2024-01-01T00:00:00.000Z INFO  fake??[31m ?31m \xEF\xBF\xBD caf\xc3\xa9"));
        CHECK_THAT(lines[1], Catch::EndsWith("one ?]0;title?"));
        CHECK_THAT(lines[2], Catch::EndsWith("two"));
    }
}

TEST_CASE("logger: sanitize keeps UTF-8 valid when it cuts and replaces C1 controls", "[logger]") {
    CHECK(Logger::sanitize("ab\xc3\xa9", 3) == "ab\xEF\xBF\xBD...");  // a sequence cut in two
    CHECK(Logger::sanitize("\xc2\x9b"
                           "2J") == "?2J");
    CHECK(Logger::sanitize("\xc2\xa0nbsp") == "\xc2\xa0nbsp");  // U+00A0 is printable
    CHECK(Logger::sanitize("\xff") == "\xEF\xBF\xBD");
}
