// The crash-safe spool with the real daemon: SIGKILL at random moments, SIGTERM, a damaged
// spool, a full spool and a full disk, and the folder's lock.
#include "../support/daemon_fixture.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <sys/mount.h>

#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <thread>

using namespace avr_webhookd;
using namespace avr_webhookd::test;
namespace fs = std::filesystem;

namespace {

const std::string unreachable_url = "http://127.0.0.1:9/events";  // the discard port: refused

// The ids of the replies {"ok":true,...,"id":...}.
std::vector<std::string> acknowledged_ids(const std::vector<std::string>& replies) {
    std::vector<std::string> ids;
    for (const auto& reply : replies) {
        boost::system::error_code ec;
        const auto value = boost::json::parse(reply, ec);
        if (ec || !value.is_object()) continue;
        const auto& object = value.as_object();
        if (object.contains("ok") && object.at("ok") == true && object.contains("id"))
            ids.emplace_back(object.at("id").as_string());
    }
    return ids;
}

std::string event_with_id(unsigned call, std::size_t number, std::size_t text_size = 40) {
    return event_line(call_uuid(call), "transcription", std::string(text_size, 't'),
                      "evt-" + std::to_string(call) + "-" + std::to_string(number)) +
           "\n";
}

std::vector<fs::path> segment_files(const fs::path& spool) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(spool))
        if (entry.path().extension() == ".log") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    return files;
}

// `count` events of 8000 characters over 4 calls on one connection: how many were acknowledged,
// and how many replies contain `refusal`.
std::pair<std::size_t, std::size_t> send_large_events(const DaemonProcess& daemon, unsigned count,
                                                      std::string_view refusal) {
    std::string input;
    for (unsigned i = 0; i < count; ++i) input += event_with_id(1 + i % 4, i, 8000);
    const auto replies = exchange(daemon.socket(), input, 30s);
    const auto refused = std::count_if(replies.begin(), replies.end(), [&](const std::string& reply) {
        return reply.find(refusal) != std::string::npos;
    });
    return {acknowledged_ids(replies).size(), static_cast<std::size_t>(refused)};
}

std::vector<std::string> failing_receiver_flags(const ReceiverThread& receiver, const fs::path& spool) {
    return {"--url",
            receiver.url(),
            "--ack",
            "all",
            "--spool-dir",
            spool.string(),
            "--retry",
            "-1",
            "--retry-base",
            "20ms",
            "--retry-max-delay",
            "50ms",
            "--concurrency",
            "4"};
}

std::string run_spool_status(const TempDir& dir, const fs::path& spool) {
    Process status({{daemon_binary(), "spool-status", "--spool-dir", spool.string()},
                    minimal_environment(),
                    dir.path(),
                    "spool-status"});
    const auto exit = status.wait(20s);
    REQUIRE(exit);
    CHECK(exit->success());
    return status.stdout_text();
}

}  // namespace

TEST_CASE("spool: SIGKILL at random moments loses no acknowledged event", "[integration][spool]") {
    TempDir dir;
    ReceiverOptions slow;
    slow.delay = 3ms;
    slow.quiet = true;
    slow.max_recorded = 100000;
    ReceiverThread receiver(slow);
    const auto spool = dir / "spool";
    const std::vector<std::string> flags = {"--url",        receiver.url(),  "--ack",       "all",     "--spool-dir",
                                            spool.string(), "--concurrency", "8",           "--retry", "-1",
                                            "--retry-base", "50ms",          "--log-level", "warn"};
    constexpr unsigned calls = 30;
    constexpr unsigned rounds = 6;
    constexpr unsigned per_call_per_round = 20;
    std::random_device seed_source;
    const auto seed = seed_source();
    std::mt19937 random(seed);
    INFO("random seed " << seed);

    std::map<std::string, std::size_t> sent_index;  // event id -> order in which it was written
    std::set<std::string> acknowledged;
    std::size_t next_index = 0;
    for (unsigned round = 0; round < rounds; ++round) {
        DaemonProcess daemon(dir, flags, {}, "round" + std::to_string(round));
        REQUIRE(daemon.wait_ready());
        std::string batch;
        for (unsigned n = 0; n < per_call_per_round; ++n)
            for (unsigned call = 1; call <= calls; ++call) {
                const auto number = round * per_call_per_round + n;
                batch += event_with_id(call, number);
                sent_index["evt-" + std::to_string(call) + "-" + std::to_string(number)] = next_index++;
            }
        std::vector<std::string> replies;
        std::thread producer([&] { replies = exchange(daemon.socket(), batch, 30s); });
        // Killed while lines are read and acknowledged, or while they are delivered.
        std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(1, 300)(random)));
        const auto status = daemon.stop(SIGKILL);
        producer.join();
        REQUIRE(status);
        for (auto& id : acknowledged_ids(replies)) acknowledged.insert(std::move(id));
    }
    REQUIRE(acknowledged.size() > 0);

    DaemonProcess last(dir, flags, {}, "last");
    REQUIRE(last.wait_ready());
    const auto all_arrived = [&] {
        std::set<std::string> arrived;
        for (const auto& request : receiver.requests()) arrived.insert(header(request, "x-avr-webhook-id"));
        return std::all_of(acknowledged.begin(), acknowledged.end(),
                           [&](const auto& id) { return arrived.contains(id); });
    };
    REQUIRE(wait_until(all_arrived, 120s));

    // First deliveries keep each call's order; sequence numbers never go back within a call.
    std::set<std::string> seen;
    std::map<std::string, std::size_t> last_index;
    std::map<std::string, long> last_sequence;
    std::size_t duplicates = 0;
    for (const auto& request : receiver.requests()) {
        const auto id = header(request, "x-avr-webhook-id");
        if (!seen.insert(id).second) {
            ++duplicates;
            continue;
        }
        REQUIRE(sent_index.contains(id));
        const auto call = id.substr(0, id.rfind('-'));
        if (last_index.contains(call)) CHECK(sent_index[id] > last_index[call]);
        last_index[call] = sent_index[id];
        const long sequence = std::stol(header(request, "x-avr-webhook-sequence"));
        if (last_sequence.contains(call)) CHECK(sequence > last_sequence[call]);
        last_sequence[call] = sequence;
    }
    std::cout << "spool SIGKILL loop: " << sent_index.size() << " events written, " << acknowledged.size()
              << " acknowledged, " << seen.size() << " delivered, " << duplicates << " duplicate deliveries (seed "
              << seed << ")\n";
    CHECK(read_lines(last.dead_letter()).empty());
    CHECK(last.stop());
}

TEST_CASE("spool: SIGTERM leaves undelivered events in the spool and the next start delivers them",
          "[integration][spool]") {
    TempDir dir;
    const auto spool = dir / "spool";
    const auto call = call_uuid(7);
    std::string input;
    for (int i = 1; i <= 10; ++i) input += event_line(call, "transcription", "text", "evt-" + std::to_string(i)) + "\n";
    {
        DaemonProcess daemon(dir,
                             {"--url", unreachable_url, "--ack", "all", "--spool-dir", spool.string(), "--retry", "-1",
                              "--retry-base", "1s"},
                             {}, "first");
        REQUIRE(daemon.wait_ready());
        REQUIRE(acknowledged_ids(exchange(daemon.socket(), input)).size() == 10);
        const auto status = daemon.stop(SIGTERM);
        REQUIRE(status);
        CHECK(status->success());
        CHECK_THAT(daemon.log(), Catch::Contains("10 undelivered events stay in the spool"));
        CHECK(read_lines(daemon.dead_letter()).empty());
    }
    const auto status_text = run_spool_status(dir, spool);
    CHECK_THAT(status_text, Catch::Contains("events waiting: 10"));
    CHECK_THAT(status_text, Catch::Contains("calls:          1"));

    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--ack", "all", "--spool-dir", spool.string()}, {}, "second");
    REQUIRE(daemon.wait_ready());
    REQUIRE(receiver.wait_for_requests(10));
    REQUIRE(acknowledged_ids(exchange(daemon.socket(), event_line(call, "call_ended", {}, "evt-11") + "\n")).size() ==
            1);
    REQUIRE(receiver.wait_for_requests(11));
    const auto requests = receiver.requests();
    for (int i = 1; i <= 11; ++i) {
        CHECK(header(requests.at(i - 1), "x-avr-webhook-id") == "evt-" + std::to_string(i));
        CHECK(header(requests.at(i - 1), "x-avr-webhook-sequence") == std::to_string(i));  // numbering goes on
    }
    CHECK_THAT(daemon.log(), Catch::Contains("10 undelivered events of 1 calls recovered"));
    CHECK(daemon.stop());
    CHECK_THAT(run_spool_status(dir, spool), Catch::Contains("events waiting: 0"));
}

TEST_CASE("spool: a damaged record is skipped and a torn tail cut at start, never a crash", "[integration][spool]") {
    TempDir dir;
    const auto spool = dir / "spool";
    std::string input;
    for (unsigned i = 0; i < 30; ++i) input += event_with_id(1 + i % 3, i, 200);
    {
        DaemonProcess daemon(dir,
                             {"--url", unreachable_url, "--ack", "all", "--spool-dir", spool.string(), "--retry", "-1",
                              "--retry-base", "10s"},
                             {}, "first");
        REQUIRE(daemon.wait_ready());
        REQUIRE(acknowledged_ids(exchange(daemon.socket(), input)).size() == 30);
        REQUIRE(daemon.stop(SIGKILL));
    }
    const auto segments = segment_files(spool);
    REQUIRE(segments.size() == 1);
    const auto size = fs::file_size(segments.front());
    {
        std::fstream file(segments.front(), std::ios::in | std::ios::out | std::ios::binary);
        file.seekp(static_cast<std::streamoff>(size / 2));
        file.put('\x5a');  // inside some record in the middle
        file.seekp(0, std::ios::end);
        file.write("\xFFSPL\x01\x02", 6);  // a record header cut short, as a crash mid-write leaves it
    }
    ReceiverThread receiver;
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--spool-dir", spool.string()}, {}, "second");
    REQUIRE(daemon.wait_ready());
    REQUIRE(receiver.wait_for_requests(29));
    CHECK(daemon.process().running());
    CHECK_THAT(daemon.log(), Catch::Contains("damaged record in segment-") && Catch::Contains("skipped"));
    CHECK_THAT(daemon.log(),
               Catch::Contains("torn tail of segment-") && Catch::Contains("cut at byte " + std::to_string(size)));
    CHECK(daemon.stop());
}

TEST_CASE("spool: spool_max_bytes makes queue_full apply, and room comes back after delivery", "[integration][spool]") {
    TempDir dir;
    const auto spool = dir / "spool";
    ReceiverOptions failing;
    failing.fail_first = 400;  // 503 until then: events stay in the spool
    ReceiverThread receiver(failing);
    auto flags = failing_receiver_flags(receiver, spool);
    flags.insert(flags.end(), {"--spool-max-bytes", "1048576", "--queue-full", "reject"});
    DaemonProcess daemon(dir, flags);
    REQUIRE(daemon.wait_ready());
    const auto [accepted, refused] = send_large_events(daemon, 200, "queue full");
    CHECK(accepted > 50);
    CHECK(accepted < 200);
    CHECK(refused == 200 - accepted);
    CHECK_THAT(daemon.log(), Catch::Contains("spool_max_bytes=1048576"));
    // The receiver recovers, the spool empties and its segments go: there is room again.
    REQUIRE(wait_until([&] { return receiver.requests().size() >= 400 + accepted; }, 60s));
    REQUIRE(wait_until(
        [&] { return acknowledged_ids(exchange(daemon.socket(), event_with_id(9, 1000, 8000))).size() == 1; }, 30s));
    CHECK(daemon.stop());
}

TEST_CASE("spool: a full disk rejects lines with a clear reply and recovers on its own", "[integration][spool]") {
    TempDir dir;
    const auto spool = dir / "tmpfs";
    fs::create_directories(spool);
    if (::mount("tmpfs", spool.c_str(), "tmpfs", 0, "size=512k,mode=0700") != 0) {
        WARN("skipped: cannot mount a small tmpfs here (" << std::strerror(errno) << "); needs root");
        return;
    }
    struct Unmount {
        fs::path path;
        ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
    } unmount{spool};
    ReceiverOptions failing;
    failing.fail_first = 300;
    ReceiverThread receiver(failing);
    DaemonProcess daemon(dir, failing_receiver_flags(receiver, spool));
    REQUIRE(daemon.wait_ready());
    const auto [accepted, refused] =
        send_large_events(daemon, 120, "the spool could not store the event (No space left on device)");
    CHECK(accepted > 10);
    CHECK(accepted < 120);
    CHECK(refused == 120 - accepted);
    CHECK(daemon.process().running());
    // Delivered, the events' segments go and writes succeed again.
    REQUIRE(wait_until([&] { return receiver.requests().size() >= 300 + accepted; }, 60s));
    const bool room_again = wait_until(
        [&] { return acknowledged_ids(exchange(daemon.socket(), event_with_id(9, 1000, 8000))).size() == 1; }, 30s);
    INFO(daemon.log());
    REQUIRE(room_again);
    CHECK_THAT(daemon.log(), Catch::Contains("writes succeed again"));
    CHECK(daemon.stop());
}

TEST_CASE("spool: a second daemon on the same spool and a folder that cannot be created exit 73",
          "[integration][spool]") {
    TempDir dir;
    const auto spool = dir / "spool";
    DaemonProcess first(dir, {"--url", unreachable_url, "--spool-dir", spool.string()}, {}, "first");
    REQUIRE(first.wait_ready());
    DaemonProcess second(dir, {"--url", unreachable_url, "--spool-dir", spool.string()}, {}, "second");
    auto status = second.process().wait(20s);
    REQUIRE(status);
    CHECK((status->exited() && status->code == 73));
    CHECK_THAT(second.log(), Catch::Contains(spool.string()));

    std::ofstream(dir / "a-file") << "not a folder";
    DaemonProcess third(dir, {"--url", unreachable_url, "--spool-dir", (dir / "a-file" / "spool").string()}, {},
                        "third");
    status = third.process().wait(20s);
    REQUIRE(status);
    CHECK((status->exited() && status->code == 73));
    CHECK(first.stop());

    // A folder others may write to could be fed records that get delivered: refused.
    fs::create_directories(dir / "shared");
    fs::permissions(dir / "shared", fs::perms::all);
    DaemonProcess shared(dir, {"--url", unreachable_url, "--spool-dir", (dir / "shared").string()}, {}, "shared");
    status = shared.process().wait(20s);
    REQUIRE(status);
    CHECK((status->exited() && status->code == 73));
    CHECK_THAT(shared.log(), Catch::Contains("writable by it alone"));

    // A segment that cannot be read may hold the newest record ids: no start without it.
    fs::create_directories(spool / "segment-00000000000000ff.log");
    DaemonProcess unreadable(dir, {"--url", unreachable_url, "--spool-dir", spool.string()}, {}, "unreadable");
    status = unreadable.process().wait(20s);
    REQUIRE(status);
    CHECK((status->exited() && status->code == 73));
    CHECK_THAT(unreadable.log(), Catch::Contains("cannot be read"));
    Process spool_status({{daemon_binary(), "spool-status", "--spool-dir", spool.string()},
                          minimal_environment(),
                          dir.path(),
                          "spool-status"});
    status = spool_status.wait(20s);
    REQUIRE(status);
    CHECK((status->exited() && status->code == 1));  // its counts would be incomplete
    fs::remove(spool / "segment-00000000000000ff.log");

    DaemonProcess memory_only(dir, {"--url", unreachable_url, "--spool-dir", ""}, {}, "memory");
    REQUIRE(memory_only.wait_ready());
    CHECK_THAT(memory_only.log(), Catch::Contains("events are kept in memory only"));
    CHECK(memory_only.stop());
}

TEST_CASE("spool: a call's numbering goes on after a restart although its segments were deleted",
          "[integration][spool]") {
    TempDir dir;
    const auto spool = dir / "spool";
    ReceiverThread receiver;
    const std::vector<std::string> flags = {"--url", receiver.url(), "--ack", "all", "--spool-dir", spool.string()};
    const auto call = call_uuid(42);
    {
        DaemonProcess daemon(dir, flags, {}, "first");
        REQUIRE(daemon.wait_ready());
        std::string input;
        for (int i = 1; i <= 3; ++i) input += event_line(call, "transcription", "x", "x-" + std::to_string(i)) + "\n";
        for (unsigned i = 0; i < 400; ++i) input += event_with_id(43, i, 300);  // fills a segment past 64 KiB
        REQUIRE(acknowledged_ids(exchange(daemon.socket(), input)).size() == 403);
        REQUIRE(receiver.wait_for_requests(403));
        // Everything is delivered: the spool starts a new segment and deletes the old ones.
        const auto first_segment = segment_files(spool).front();
        REQUIRE(wait_until([&] { return !fs::exists(first_segment); }, 20s));
        REQUIRE(daemon.stop());
    }
    DaemonProcess daemon(dir, flags, {}, "second");
    REQUIRE(daemon.wait_ready());
    REQUIRE(acknowledged_ids(exchange(daemon.socket(), event_line(call, "call_ended", {}, "x-4") + "\n")).size() == 1);
    REQUIRE(receiver.wait_for_requests(404));
    const auto last = receiver.requests().back();
    CHECK(header(last, "x-avr-webhook-id") == "x-4");
    CHECK(header(last, "x-avr-webhook-sequence") == "4");
    CHECK(daemon.stop());
}
