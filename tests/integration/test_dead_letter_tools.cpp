// `avr-webhookd dead-letters list|replay` against a running daemon with two destinations: each
// filter, replay to each event's own destination with its original id, a second replay that sends
// nothing unless --again, a file the daemon (and a writer) appends to meanwhile, and a malformed
// line that is reported and skipped while the rest is replayed.

#include "support/daemon_fixture.hpp"

#include <avr_webhookd/delivery/failure_report.hpp>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <fstream>
#include <fcntl.h>
#include <set>
#include <thread>
#include <unistd.h>

using namespace avr_webhookd;
using namespace avr_webhookd::test;

namespace {

// default answers 400 to call_ended (given up at once, not retried); crm answers 503 to all and
// gives up at once (retry 0). Two calls of three events: crm dead-letters all six, default the
// two call_ended.
struct DeadLetters {
    TempDir dir;
    ReceiverThread a{[] {
        ReceiverOptions options;
        options.status_for_type = {{"call_ended", 400}};
        return options;
    }()};
    std::unique_ptr<ReceiverThread> crm = std::make_unique<ReceiverThread>(always_failing());
    std::string crm_address = "127.0.0.1:" + std::to_string(crm->receiver().port());
    DaemonProcess daemon{dir, {"--url", a.url(), "--destination-crm-url", crm->url(), "--destination-crm-retry", "0"}};

    DeadLetters() {
        REQUIRE(daemon.wait_ready());
        std::string input;
        for (unsigned call = 1; call <= 2; ++call) {
            const auto n = std::to_string(call);
            input += event_line(call_uuid(call), "call_started", {}, "s" + n) + "\n" +
                     event_line(call_uuid(call), "transcription", "hi", "t" + n) + "\n" +
                     event_line(call_uuid(call), "call_ended", {}, "e" + n) + "\n";
        }
        REQUIRE(exchange(daemon.socket(), input).empty());
        REQUIRE(wait_until([&] { return read_lines(daemon.dead_letter()).size() == 8; }, 20s));
    }

    CommandResult tool(std::vector<std::string> arguments) {
        std::vector<std::string> command{daemon_binary(), "dead-letters"};
        command.insert(command.end(), arguments.begin(), arguments.end());
        command.insert(command.end(),
                       {"--dead-letter", daemon.dead_letter().string(), "--socket", daemon.socket().string()});
        return run_command(command, dir.path(), 60s);
    }
    // "events:           N (...)" of list's summary.
    std::string listed(std::vector<std::string> filters) {
        filters.insert(filters.begin(), {"list", "--summary"});
        const auto result = tool(filters);
        INFO(result.out << result.err);
        CHECK(result.status.success());
        const std::string label = "events:           ";
        const auto at = result.out.find(label);
        return at == std::string::npos
                   ? "?"
                   : result.out.substr(at + label.size(), result.out.find(' ', at + label.size()) - at - label.size());
    }
    // crm is healthy from now on, on the same port.
    ReceiverThread& heal_crm() {
        crm.reset();  // its port is free again before the healthy one binds it
        crm = std::make_unique<ReceiverThread>(ReceiverOptions{}, crm_address);
        return *crm;
    }
};

std::multiset<std::string> ids(const std::vector<ReceivedRequest>& requests) {
    std::multiset<std::string> result;
    for (const auto& request : requests) result.insert(header(request, "x-avr-webhook-id"));
    return result;
}

// A dead-letter line as the daemon writes it, for a third call.
std::string crafted_line(const std::string& id) {
    AttemptOutcome outcome;
    outcome.status = 503;
    outcome.code = "HTTP 503";
    outcome.message = "Service Unavailable";
    const auto body =
        R"({"uuid":")" + call_uuid(3) +
        R"(","type":"transcription","timestamp":"2026-01-01T00:00:00.000Z","payload":{"role":"user","text":"x"}})";
    return dead_letter_line(id, body, "retry budget exhausted (1 attempt)", outcome, 1,
                            std::chrono::system_clock::now(), "crm");
}

void append_line(const std::filesystem::path& file, const std::string& line) {
    const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    REQUIRE(fd >= 0);
    const std::string text = line + "\n";  // one write with O_APPEND, as the daemon writes
    CHECK(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::close(fd);
}

}  // namespace

TEST_CASE("dead-letters list: a summary and the lines, with each filter", "[integration][dead_letters]") {
    DeadLetters setup;
    auto result = setup.tool({"list"});
    INFO(result.out << result.err);
    CHECK(result.status.success());
    CHECK_THAT(result.out, Catch::Contains("events:           8 (0 replayed already)\n"));
    CHECK_THAT(result.out, Catch::Contains("by destination:   crm 6, default 2\n"));
    CHECK_THAT(result.out, Catch::Contains("by type:          call_ended 4, call_started 2, transcription 2\n"));
    CHECK_THAT(result.out, Catch::Contains("LINE  GIVEN UP"));
    CHECK_THAT(result.out, Catch::Contains(" crm          call_started   " + call_uuid(1) + "  s1 "));

    CHECK(setup.listed({"--destination", "crm"}) == "6");
    CHECK(setup.listed({"--destination", "default"}) == "2");
    CHECK(setup.listed({"--call", call_uuid(1)}) == "4");
    CHECK(setup.listed({"--type", "call_ended"}) == "4");
    CHECK(setup.listed({"--type", "call_ended", "--type", "call_started"}) == "6");
    CHECK(setup.listed({"--reason", "HTTP 400"}) == "2");
    CHECK(setup.listed({"--reason", "503"}) == "6");
    CHECK(setup.listed({"--since", "1h"}) == "8");
    CHECK(setup.listed({"--since", "2099-01-01"}) == "0");
    CHECK(setup.listed({"--destination", "crm", "--type", "call_started", "--call", call_uuid(2)}) == "1");

    result = setup.tool({"list", "--since", "yesterday"});
    CHECK(result.status.code == 1);
    CHECK_THAT(result.err, Catch::Contains("invalid --since"));
    // The file as the daemon resolves it: here from WEBHOOK_DEAD_LETTER.
    result = run_command({daemon_binary(), "dead-letters", "list", "--summary"}, setup.dir.path(), 30s, [&] {
        auto environment = minimal_environment();
        environment.push_back("WEBHOOK_DEAD_LETTER=" + setup.daemon.dead_letter().string());
        return environment;
    }());
    CHECK_THAT(result.out, Catch::Contains("events:           8 "));
    REQUIRE(setup.daemon.stop());
}

TEST_CASE("dead-letters replay: each filter, original ids to their own destination, and once only",
          "[integration][dead_letters]") {
    DeadLetters setup;
    auto& crm = setup.heal_crm();
    const auto a_before = setup.a.requests().size();

    auto result = setup.tool({"replay", "--destination", "crm", "--type", "call_started"});
    INFO(result.out << result.err);
    CHECK(result.status.success());
    CHECK_THAT(result.out, Catch::Contains("replayed 2 events with their original ids: crm 2"));
    REQUIRE(crm.wait_for_requests(2));
    CHECK(ids(crm.requests()) == std::multiset<std::string>{"s1", "s2"});

    // The same selection again sends nothing ...
    result = setup.tool({"replay", "--destination", "crm", "--type", "call_started"});
    CHECK(result.status.success());
    CHECK_THAT(result.out, Catch::Contains("2 already replayed, skipped (--again sends them again)"));
    CHECK(result.out.find("replayed 2 events") == std::string::npos);
    // ... unless asked: had the second run sent them too, they would arrive before these.
    result =
        setup.tool({"replay", "--destination", "crm", "--type", "call_started", "--call", call_uuid(1), "--again"});
    CHECK_THAT(result.out, Catch::Contains("replayed 1 events"));
    REQUIRE(crm.wait_for_requests(3));
    CHECK(ids(crm.requests()) == std::multiset<std::string>{"s1", "s1", "s2"});

    // --call takes both destinations' lines of that call; call_ended goes back to default (which
    // refuses it again: it is dead-lettered again, a new line).
    result = setup.tool({"replay", "--call", call_uuid(2)});
    CHECK_THAT(result.out, Catch::Contains("replayed 3 events with their original ids: crm 2, default 1"));
    CHECK_THAT(result.out, Catch::Contains("1 already replayed, skipped"));
    REQUIRE(crm.wait_for_requests(5));
    REQUIRE(setup.a.wait_for_requests(a_before + 1));
    CHECK(header(setup.a.requests().back(), "x-avr-webhook-id") == "e2");
    REQUIRE(wait_until([&] { return read_lines(setup.daemon.dead_letter()).size() == 9; }, 20s));

    // --reason and --since.
    result = setup.tool({"replay", "--reason", "503", "--since", "1h"});
    CHECK_THAT(result.out, Catch::Contains("replayed 2 events with their original ids: crm 2"));
    REQUIRE(crm.wait_for_requests(7));
    CHECK(ids(crm.requests()) == std::multiset<std::string>{"s1", "s1", "s2", "t2", "e2", "t1", "e1"});
    result = setup.tool({"replay", "--since", "2099-01-01"});
    CHECK_THAT(result.out, Catch::Contains("no dead letter in "));
    CHECK(setup.a.requests().size() == a_before + 1);  // default got only its own line, once

    const auto record = read_lines(setup.daemon.dead_letter().string() + ".replayed");
    CHECK(record.size() == 1 + 7);  // the header and each replayed line's key once
    REQUIRE(setup.daemon.stop());
}

TEST_CASE("dead-letters replay: while the file grows, and past a malformed line", "[integration][dead_letters]") {
    DeadLetters setup;
    auto& crm = setup.heal_crm();
    const auto file = setup.daemon.dead_letter();
    append_line(file, "{\"id\":\"broken\",");  // a malformed line among the good ones
    const auto malformed_line = read_lines(file).size();
    // The daemon is in the middle of writing a line: the replay leaves it for the next run.
    const auto partial = crafted_line("p0");
    std::ofstream(file, std::ios::app | std::ios::binary) << partial.substr(0, partial.size() / 2);

    auto result = setup.tool({"replay", "--destination", "crm"});
    INFO(result.out << result.err);
    CHECK(result.status.code == 1);  // something to look at: the malformed line
    CHECK_THAT(result.err,
               Catch::Contains("line " + std::to_string(malformed_line) + ": skipped, not a dead-letter line"));
    CHECK_THAT(result.err, Catch::Contains("its last line is still being written; it was left for the next run"));
    CHECK_THAT(result.out, Catch::Contains("replayed 6 events with their original ids: crm 6"));
    CHECK_THAT(result.out, Catch::Contains("1 malformed lines skipped"));
    REQUIRE(crm.wait_for_requests(6));

    // The line is finished, and a writer keeps appending dead letters (paced, so that it goes on
    // while the replays read the file): what one run did not see the next sends; nothing twice,
    // nothing torn.
    append_line(file, partial.substr(partial.size() / 2));
    constexpr int appended = 200;
    std::thread writer([&] {
        for (int i = 0; i < appended; ++i) {
            append_line(file, crafted_line("w" + std::to_string(i)));
            std::this_thread::sleep_for(1ms);
        }
    });
    result = setup.tool({"replay", "--destination", "crm"});
    CHECK(result.status.code == 1);
    writer.join();
    result = setup.tool({"replay", "--destination", "crm"});
    CHECK(result.status.code == 1);
    const auto expected = 6u + 1u + appended;
    REQUIRE(crm.wait_for_requests(expected, 30s));
    const auto received = ids(crm.requests());
    CHECK(received.size() == expected);
    CHECK(std::set<std::string>(received.begin(), received.end()).size() == expected);
    CHECK(received.contains("p0"));
    for (int i = 0; i < appended; ++i) CHECK(received.contains("w" + std::to_string(i)));
    result = setup.tool({"replay", "--destination", "crm"});
    CHECK_THAT(result.out, Catch::Contains(std::to_string(expected) + " already replayed, skipped"));
    CHECK(setup.tool({"list", "--destination", "crm", "--summary"})
              .out.find("(" + std::to_string(expected) + " replayed already)") != std::string::npos);
    REQUIRE(setup.daemon.stop());
}
