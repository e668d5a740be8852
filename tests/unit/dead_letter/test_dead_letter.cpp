// The dead-letter file and its writer thread, without the daemon: group commit, size bound,
// rollback of failed writes, repair of a torn last line.
#include <avr_webhookd/dead_letter/dead_letter.hpp>

#include "support/process.hpp"

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <algorithm>
#include <fstream>
#include <thread>

using namespace avr_webhookd;
using namespace std::chrono_literals;

namespace {

void write_file(const std::filesystem::path& path, std::string_view text) {
    std::ofstream(path, std::ios::binary) << text;
}

// Runs the io_context until `done` holds or the deadline passes.
template <typename Predicate>
bool run_until(boost::asio::io_context& io, Predicate done, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        io.restart();
        io.run_for(10ms);
    }
    return done();
}

}  // namespace

TEST_CASE("dead-letter file appends whole lines and closes a torn last line at open", "[dead_letter]") {
    test::TempDirectory dir;
    const auto path = dir / "dl.ndjson";
    write_file(path, "{\"id\":\"old\"}\n{\"id\":\"tor");  // the previous run died mid-line
    DeadLetterFile file(path.string());
    const auto result = file.append({"{\"id\":\"a\"}", "{\"id\":\"b\"}"}, 0);
    CHECK(result.written == 2);
    CHECK(result.overflowed == 0);
    CHECK(result.error.empty());
    CHECK(test::read_file(path) == "{\"id\":\"old\"}\n{\"id\":\"tor\n{\"id\":\"a\"}\n{\"id\":\"b\"}\n");
}

TEST_CASE("dead-letter file stops at dead_letter_max_bytes, exactly at the edge", "[dead_letter]") {
    test::TempDirectory dir;
    const auto path = dir / "dl.ndjson";
    DeadLetterFile file(path.string());
    const std::string line(9, 'x');  // 10 bytes with its newline
    auto result = file.append({line, line}, 25);
    CHECK(result.written == 2);  // 20 bytes
    result = file.append({std::string(4, 'y'), line}, 25);
    CHECK(result.written == 1);  // 25 bytes: exactly at the bound
    CHECK(result.overflowed == 1);
    CHECK(std::filesystem::file_size(path) == 25);
    result = file.append({"z"}, 25);
    CHECK(result.written == 0);
    CHECK(result.overflowed == 1);
    // Emptied by an operator after a replay: lines fit again.
    std::filesystem::resize_file(path, 0);
    CHECK(file.append({"z"}, 25).written == 1);
    CHECK(test::read_file(path) == "z\n");
}

TEST_CASE("dead-letter file rolls a short write back: no torn line", "[dead_letter]") {
    // RLIMIT_FSIZE makes write(2) stop part way (then EFBIG), like a disk filling up; it is set
    // in a child so the test process keeps its limits.
    test::TempDirectory dir;
    const auto path = dir / "dl.ndjson";
    write_file(path, "{\"id\":\"first\"}\n");
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        std::signal(SIGXFSZ, SIG_IGN);
        const rlimit limit{100, 100};
        if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(3);
        DeadLetterFile file(path.string());
        const auto result = file.append({std::string(60, 'a'), std::string(60, 'b')}, 0);
        ::_exit(result.written == 0 && !result.error.empty() ? 0 : 4);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(test::read_file(path) == "{\"id\":\"first\"}\n");  // 100 bytes would have been a torn line
}

TEST_CASE("dead-letter writer syncs lines off the loop and reports each on it", "[dead_letter]") {
    test::TempDirectory dir;
    const auto path = dir / "dl.ndjson";
    boost::asio::io_context io;
    DeadLetterWriter writer(io.get_executor(), path.string(), 0);
    std::vector<DeadLetterWriter::Result> results;
    const auto loop_thread = std::this_thread::get_id();
    bool on_loop = true;
    for (int i = 0; i < 100; ++i)
        writer.append("{\"n\":" + std::to_string(i) + "}", [&](const DeadLetterWriter::Outcome& outcome) {
            on_loop = on_loop && std::this_thread::get_id() == loop_thread;
            results.push_back(outcome.result);
        });
    CHECK(writer.pending() == 100);
    REQUIRE(run_until(io, [&] { return results.size() == 100; }));
    CHECK(on_loop);
    CHECK(writer.pending() == 0);
    CHECK(std::count(results.begin(), results.end(), DeadLetterWriter::Result::written) == 100);
    const auto text = test::read_file(path);
    CHECK(std::count(text.begin(), text.end(), '\n') == 100);
    CHECK(text.rfind("{\"n\":99}\n") == text.size() - 9);  // in order
}

TEST_CASE("dead-letter writer reports overflow with the line, and finish() completes the rest", "[dead_letter]") {
    test::TempDirectory dir;
    const auto path = dir / "dl.ndjson";
    boost::asio::io_context io;
    DeadLetterWriter writer(io.get_executor(), path.string(), 10);
    std::vector<DeadLetterWriter::Outcome> outcomes;
    auto keep = [&](const DeadLetterWriter::Outcome& outcome) { outcomes.push_back(outcome); };
    writer.append("123456789", keep);  // 10 bytes: fits exactly
    REQUIRE(run_until(io, [&] { return outcomes.size() == 1; }));
    writer.append("x", keep);
    writer.finish(10s);  // the loop does not run again: finish() runs the completion itself
    REQUIRE(outcomes.size() == 2);
    CHECK(outcomes[0].result == DeadLetterWriter::Result::written);
    CHECK(outcomes[1].result == DeadLetterWriter::Result::overflow);
    CHECK(outcomes[1].line == "x");
    CHECK(writer.full());
    writer.append("late", keep);
    REQUIRE(outcomes.size() == 3);
    CHECK(outcomes[2].result == DeadLetterWriter::Result::failed);
    CHECK(test::read_file(path) == "123456789\n");
}
