#include <avr_webhookd/intake/reply_backlog.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

using avr_webhookd::ReplyBacklog;
using Added = ReplyBacklog::Added;
using Gate = ReplyBacklog::Gate;
using Kind = ReplyBacklog::Kind;

namespace {

std::string reply(int line) { return "{\"ok\":true,\"line\":" + std::to_string(line) + "}\n"; }

// What one write takes, as the writer would send it.
std::string write_once(ReplyBacklog& backlog) {
    std::string out;
    backlog.take(out);
    backlog.written();
    return out;
}

}  // namespace

TEST_CASE("reply backlog: replies leave in the order they came, held ones with those behind them",
          "[intake][reply_backlog]") {
    ReplyBacklog backlog(1 << 20);
    CHECK(backlog.add(reply(1), Kind::promised) == Added::ready);
    CHECK(backlog.add(reply(2), Kind::promised, 7, 5) == Added::held);  // its event is not durable yet
    CHECK(backlog.add(reply(3), Kind::best_effort) == Added::held);     // behind it, although ticket 0
    CHECK(backlog.add(reply(4), Kind::promised, 6, 5) == Added::held);
    CHECK(backlog.held_count() == 3);
    CHECK(write_once(backlog) == reply(1));

    CHECK_FALSE(backlog.release(6));  // 2 still waits for 7, and 3, 4 behind it
    CHECK_FALSE(backlog.has_ready());
    CHECK(backlog.release(7));
    CHECK(backlog.held_count() == 0);
    CHECK(write_once(backlog) == reply(2) + reply(3) + reply(4));
    CHECK(backlog.bytes() == 0);
    CHECK(backlog.settled());
    CHECK(backlog.add(reply(5), Kind::promised, 7, 7) == Added::ready);  // durable already
}

TEST_CASE("reply backlog: a release stops at the first reply still waiting", "[intake][reply_backlog]") {
    ReplyBacklog backlog(1 << 20);
    backlog.add(reply(1), Kind::promised, 1, 0);
    backlog.add(reply(2), Kind::promised, 2, 0);
    backlog.add(reply(3), Kind::promised, 3, 0);
    CHECK(backlog.release(2));
    CHECK(backlog.held_count() == 1);
    CHECK(write_once(backlog) == reply(1) + reply(2));
    CHECK(backlog.release(3));
    CHECK(write_once(backlog) == reply(3));
}

TEST_CASE("reply backlog: the pause rule", "[intake][reply_backlog]") {
    const std::size_t limit = 10 * reply(1).size();
    ReplyBacklog backlog(limit);

    SECTION("promised replies are kept past the limit, and the reader waits until the producer reads") {
        for (int line = 1; line <= 9; ++line) {
            CHECK(backlog.gate() == Gate::read);
            backlog.add(reply(line), Kind::promised);
        }
        CHECK(backlog.gate() == Gate::read);  // one reply under the limit
        backlog.add(reply(1), Kind::promised);
        CHECK(backlog.gate() == Gate::wait_for_reader);
        CHECK(backlog.add(reply(11), Kind::promised) == Added::ready);  // never dropped
        std::string out;
        backlog.take(out);
        CHECK(backlog.gate() == Gate::wait_for_reader);  // being written counts until the socket took it
        backlog.written();
        CHECK(backlog.gate() == Gate::read);
        CHECK(backlog.dropped() == 0);
    }
    SECTION("replies held for the spool pause the reader as waiting for the release, not for the producer") {
        for (int line = 1; line <= 10; ++line) backlog.add(reply(line), Kind::promised, 2, 1);
        CHECK(backlog.gate() == Gate::wait_for_release);
        backlog.release(2);
        CHECK(backlog.gate() == Gate::wait_for_reader);  // released, now the producer's to read
        write_once(backlog);
        CHECK(backlog.gate() == Gate::read);
    }
    SECTION("best-effort replies are dropped past the limit and never pause the reader") {
        int kept = 0;
        for (int line = 1; line <= 100; ++line) kept += backlog.add(reply(1), Kind::best_effort) == Added::ready;
        CHECK(kept == 10);
        CHECK(backlog.dropped() == 90);
        CHECK(backlog.bytes() == limit);
        CHECK(backlog.gate() == Gate::read);
        // A promised reply still goes in, and pauses no one: only promised bytes count for the gate.
        CHECK(backlog.add(reply(101), Kind::promised) == Added::ready);
        CHECK(backlog.gate() == Gate::read);
    }
    SECTION("a large promised reply queued costs no best-effort reply its place") {
        // A routing answer of 64 KiB waits for its fdatasync; the producer reads its replies.
        std::string answer(64 * 1024, 'a');
        answer.push_back('\n');
        CHECK(backlog.add(answer, Kind::promised, 2, 1) == Added::held);
        CHECK(backlog.add(reply(2), Kind::best_effort) == Added::held);
        CHECK(backlog.dropped() == 0);
        backlog.release(2);
        const auto written = write_once(backlog);
        CHECK(written.substr(written.size() - reply(2).size()) == reply(2));
    }
    SECTION("a new limit applies at once") {
        for (int line = 1; line <= 5; ++line) backlog.add(reply(line), Kind::promised);
        CHECK(backlog.gate() == Gate::read);
        backlog.set_limit(limit / 2);
        CHECK(backlog.gate() == Gate::wait_for_reader);
        backlog.set_limit(limit);
        CHECK(backlog.gate() == Gate::read);
        // The edge: paused at the limit, not one byte below it.
        backlog.set_limit(backlog.bytes() + 1);
        CHECK(backlog.gate() == Gate::read);
        backlog.set_limit(backlog.bytes());
        CHECK(backlog.gate() == Gate::wait_for_reader);
    }
}

TEST_CASE("reply backlog: routing answers are reserved, never dropped, and bound how many wait",
          "[intake][reply_backlog]") {
    constexpr std::size_t limit = 4 * ReplyBacklog::answer_reservation;
    ReplyBacklog backlog(limit);
    for (int i = 0; i < 3; ++i) backlog.expect_answer();
    CHECK(backlog.gate() == Gate::read);
    backlog.expect_answer();
    CHECK(backlog.answers_expected() == 4);
    CHECK(backlog.gate() == Gate::wait_for_release);  // four answers under way fill the backlog
    CHECK_FALSE(backlog.settled());

    // Fill the rest of the backlog with unread best-effort replies: an answer still goes in.
    std::string filler(100, 'x');
    filler.push_back('\n');
    while (backlog.add(filler, Kind::best_effort) != Added::dropped) {}
    const std::string large(64 * 1024, 'a');
    CHECK(backlog.answer(large + "\n", 0, 0) == Added::ready);
    CHECK(backlog.answers_expected() == 3);
    CHECK(backlog.gate() == Gate::wait_for_reader);
    write_once(backlog);
    CHECK(backlog.gate() == Gate::read);  // three answers still to come: 3 KiB of 4

    // An answer whose event is not durable yet waits for it like any reply.
    CHECK(backlog.answer("{\"answer\":2}\n", 9, 8) == Added::held);
    CHECK(backlog.release(9));
    CHECK(write_once(backlog) == "{\"answer\":2}\n");
}

TEST_CASE("reply backlog: a failed producer drops everything, and pauses no one", "[intake][reply_backlog]") {
    ReplyBacklog backlog(100);
    backlog.add(reply(1), Kind::promised);
    backlog.add(reply(2), Kind::promised, 5, 0);
    backlog.add(reply(3), Kind::promised, 5, 0);
    backlog.expect_answer();
    CHECK(backlog.gate() != Gate::read);
    backlog.fail();
    CHECK(backlog.failed());
    CHECK(backlog.dropped() == 3);
    CHECK(backlog.bytes() == 0);
    CHECK(backlog.gate() == Gate::read);
    CHECK(backlog.add(reply(4), Kind::promised) == Added::dropped);
    CHECK(backlog.answer(reply(5), 0, 0) == Added::dropped);
    CHECK(backlog.answers_expected() == 0);
    CHECK_FALSE(backlog.release(5));
    CHECK(backlog.settled());
}

// A producer pipelining 1,000,000 lines that reads its replies at its own pace, with the spool
// syncing now and then: every reply arrives, in order, and the backlog never passes the limit by
// more than one reply.
TEST_CASE("reply backlog: a paced producer gets every one of 1,000,000 replies in order", "[intake][reply_backlog]") {
    constexpr std::size_t limit = 4096;
    constexpr int lines = 1'000'000;
    ReplyBacklog backlog(limit);
    std::mt19937 random(42);
    std::uint64_t ticket = 0, durable = 0;
    int next_line = 1, expected = 1;
    std::size_t peak = 0, pauses = 0;
    std::string out, last_reply;
    bool writing = false;
    while (expected <= lines) {
        switch (random() % 4) {
        case 0:  // the reader takes lines while the gate lets it
        case 1:
            if (backlog.gate() != Gate::read) ++pauses;
            for (unsigned n = random() % 200; n > 0 && next_line <= lines && backlog.gate() == Gate::read; --n) {
                const bool rejected = next_line % 97 == 0;
                backlog.add(reply(next_line), Kind::promised, rejected ? 0 : ++ticket, durable);
                ++next_line;
                peak = std::max(peak, backlog.bytes());
            }
            break;
        case 2:  // the spool's fdatasync
            durable = ticket;
            backlog.release(durable);
            break;
        default:  // the writer, and the producer reading what was written
            if (writing) {
                backlog.written();
                writing = false;
                for (std::size_t start = 0; start < out.size();) {
                    const auto end = out.find('\n', start);
                    REQUIRE(std::string_view(out).substr(start, end + 1 - start) == reply(expected));
                    ++expected;
                    start = end + 1;
                }
            } else if (backlog.has_ready()) {
                backlog.take(out);
                writing = true;
            }
        }
    }
    CHECK(next_line == lines + 1);
    CHECK(peak < limit + reply(lines).size());
    CHECK(pauses > 0);
    CHECK(backlog.dropped() == 0);
    CHECK(backlog.settled());
}
