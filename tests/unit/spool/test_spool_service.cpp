// The daemon's side of the spool (Spool): store, acknowledgement tickets, done records and
// deleting segments, driven on a real io_context with the sync thread.
#include <avr_webhookd/spool/spool.hpp>
#include <avr_webhookd/spool/spool_error.hpp>

#include "spool_helpers.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <mutex>

using namespace avr_webhookd;
using namespace std::chrono_literals;

namespace {

Event spool_event(int call, int number, std::size_t body_size = 100) {
    Event event;
    event.id = "event-" + std::to_string(call) + "-" + std::to_string(number);
    event.uuid = spool::test::call_uuid(call);
    event.type = "transcription";
    event.body = std::string(body_size, 'b');
    event.accepted_wall = std::chrono::system_clock::now();
    return event;
}

// Runs the loop until `condition` or 10 s.
bool run_until(boost::asio::io_context& io, const std::function<bool()>& condition) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!condition() && std::chrono::steady_clock::now() < deadline) {
        io.restart();
        io.run_for(10ms);
    }
    return condition();
}

spool::SpoolSettings settings_for(const std::filesystem::path& dir, SpoolSync sync = SpoolSync::always) {
    spool::SpoolSettings settings;
    settings.dir = dir;
    settings.sync = sync;
    settings.sync_interval = 20ms;
    settings.max_bytes = 1 << 20;
    return settings;
}

}  // namespace

TEST_CASE("spool service: an event is acknowledged once a sync covers it, done events are forgotten", "[spool]") {
    avr_webhookd::test::TempDirectory dir("spool-service");
    boost::asio::io_context io;
    Logger logger({LogLevel::error, LogFormat::text, false});
    Metrics metrics;
    std::uint64_t durable = 0;
    std::vector<std::uint64_t> records;
    {
        spool::Spool spool(io, settings_for(dir.path()), logger, metrics);
        spool.on_durable([&](std::uint64_t ticket) { durable = ticket; });
        spool.start();
        std::uint64_t last_ticket = 0;
        for (int i = 1; i <= 20; ++i) {
            const auto stored = spool.store(spool_event(1, i), static_cast<std::uint64_t>(i));
            REQUIRE_FALSE(stored.error);
            CHECK(stored.ticket > last_ticket);  // one write per event, each its own generation
            last_ticket = stored.ticket;
            records.push_back(stored.record_id);
        }
        CHECK(durable < last_ticket);  // nothing ran the loop yet: no sync reported
        REQUIRE(run_until(io, [&] { return durable >= last_ticket; }));
        CHECK(metrics.spool_sync_latency.count() >= 1);
        CHECK(metrics.spool_sync_latency.count() <= 20);  // group commit: syncs cover several events
        for (int i = 0; i < 15; ++i) spool.done(records[static_cast<std::size_t>(i)]);
        spool.close();
    }
    // What was not done comes back, in order, with its sequence numbers.
    spool::Spool reopened(io, settings_for(dir.path()), logger, metrics);
    const auto& recovered = reopened.recovered();
    REQUIRE(recovered.events.size() == 5);
    spool::StoredEvent first;
    std::string first_body;
    REQUIRE_FALSE(reopened.read_event(recovered.events.front().locator, first, first_body));
    CHECK(first.event_id == "event-1-16");
    CHECK(recovered.events.front().sequence == 16);
    CHECK(recovered.last_sequence.at(spool::test::call_uuid(1)) == 20);
    std::string body;
    REQUIRE_FALSE(reopened.read_body(recovered.events.back().locator, body));
    CHECK(body == std::string(100, 'b'));
    CHECK(metrics.spool_recovered == 5);
}

TEST_CASE("spool service: interval acknowledges at once, the spool's bound and its lock", "[spool]") {
    avr_webhookd::test::TempDirectory dir("spool-service");
    boost::asio::io_context io;
    Logger logger({LogLevel::error, LogFormat::text, false});
    Metrics metrics;
    std::uint64_t durable = 0;
    spool::Spool spool(io, settings_for(dir.path(), SpoolSync::interval), logger, metrics);
    spool.on_durable([&](std::uint64_t ticket) { durable = ticket; });
    spool.start();
    const auto stored = spool.store(spool_event(2, 1), 1);
    REQUIRE_FALSE(stored.error);
    CHECK(stored.ticket == 0);
    REQUIRE(run_until(io, [&] { return durable > 0; }));  // the interval timer synced it

    // A second owner of the folder is refused.
    CHECK_THROWS_AS(spool::Spool(io, settings_for(dir.path()), logger, metrics), spool::SpoolOpenError);

    // Up to max_bytes (1 MiB), then spool_full: nothing written, and it says so in health.
    std::error_code error;
    int stored_count = 0;
    for (int i = 2; i < 200 && !error; ++i) {
        error = spool.store(spool_event(2, i, 16 << 10), static_cast<std::uint64_t>(i)).error;
        if (!error) ++stored_count;
    }
    CHECK(error == spool::SpoolErrc::spool_full);
    CHECK(stored_count > 50);
    CHECK_FALSE(spool.has_room(16 << 10));
    REQUIRE(spool.unhealthy_reason());
    CHECK_THAT(*spool.unhealthy_reason(), Catch::Contains("spool_max_bytes"));
    CHECK(metrics.spool_disk_full == 1);
}

namespace {

// The system's calls, except that one kind hangs while it is set to, as on a sick disk.
class HangingDisk final : public spool::SystemFileSystem {
public:
    enum class Call { none, sync_data, read_at };

    std::error_code sync_data(int fd) override {
        wait_while_hanging(Call::sync_data);
        return SystemFileSystem::sync_data(fd);
    }
    std::error_code read_at(int fd, char* into, std::size_t size, std::uint64_t offset, std::size_t& got) override {
        wait_while_hanging(Call::read_at);
        return SystemFileSystem::read_at(fd, into, size, offset, got);
    }
    void hang(Call call) {
        std::lock_guard lock(mutex_);
        hanging_ = call;
        changed_.notify_all();
    }
    // Waits (within 10 s) until `count` calls hang.
    bool wait_hung(int count) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, 10s, [&] { return hung_ == count; });
    }

private:
    void wait_while_hanging(Call call) {
        std::unique_lock lock(mutex_);
        if (hanging_ != call) return;
        ++hung_;
        changed_.notify_all();
        changed_.wait(lock, [&] { return hanging_ != call; });
        --hung_;
        changed_.notify_all();
    }

    std::mutex mutex_;
    std::condition_variable changed_;
    Call hanging_ = Call::none;
    int hung_ = 0;
};

std::string file_text(const std::filesystem::path& file) {
    std::ifstream in(file);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("spool service: close() is bounded when fdatasync hangs, with an error log", "[spool]") {
    avr_webhookd::test::TempDirectory dir("spool-service");
    // Outlives the sync thread left behind (it is let go at the end, and the test waits for it).
    static HangingDisk files;
    boost::asio::io_context io;
    const auto log_file = dir.path() / "log";
    const int log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(log_fd >= 0);
    Logger logger({LogLevel::info, LogFormat::text, false}, log_fd);
    Metrics metrics;
    auto settings = settings_for(dir.path() / "spool");
    settings.close_sync_budget = 300ms;
    std::uint64_t durable = 0;
    {
        spool::Spool spool(io, settings, logger, metrics, files);
        spool.on_durable([&](std::uint64_t ticket) { durable = ticket; });
        spool.start();
        const auto first = spool.store(spool_event(1, 1), 1);
        REQUIRE(run_until(io, [&] { return durable >= first.ticket; }));

        files.hang(HangingDisk::Call::sync_data);
        const auto second = spool.store(spool_event(1, 2), 2);
        REQUIRE_FALSE(second.error);
        REQUIRE(files.wait_hung(1));  // the group commit's fdatasync is stuck
        const auto started = std::chrono::steady_clock::now();
        spool.close();
        const auto took = std::chrono::steady_clock::now() - started;
        CHECK(took >= 300ms);
        CHECK(took < 5s);
        CHECK(durable < second.ticket);  // never acknowledged
    }
    const std::string log = file_text(log_file);
    CHECK_THAT(log, Catch::Contains("the final fdatasync of"));
    CHECK_THAT(log, Catch::Contains("did not finish within"));
    CHECK(metrics.spool_sync_failures == 1);
    files.hang(HangingDisk::Call::none);
    CHECK(files.wait_hung(0));
    ::close(log_fd);

    // The record written before the stop is there at the next start (the page cache kept it).
    spool::Spool reopened(io, settings_for(dir.path() / "spool"), logger, metrics);
    CHECK(reopened.recovered().events.size() == 2);
}

namespace {

struct CountingWaiter final : spool::BlockReader::Waiter {
    int told = 0;
    void records_read() override { ++told; }
};

}  // namespace

TEST_CASE("spool service: reading a parked event back never blocks the event loop, even when the read hangs",
          "[spool]") {
    avr_webhookd::test::TempDirectory dir("spool-service");
    HangingDisk files;  // outlives the spool and its read thread
    boost::asio::io_context io;
    Logger logger({LogLevel::error, LogFormat::text, false});
    Metrics metrics;
    spool::Spool spool(io, settings_for(dir.path(), SpoolSync::interval), logger, metrics, files);
    spool.start();
    const auto stored = spool.store(spool_event(1, 1, 300), 1);
    REQUIRE_FALSE(stored.error);

    files.hang(HangingDisk::Call::read_at);
    CountingWaiter waiter;
    spool::StoredEvent event;
    std::string body;
    std::error_code error;
    REQUIRE(spool.try_read_event(stored.locator, waiter, event, body, error) == spool::BlockReader::Status::reading);
    REQUIRE(files.wait_hung(1));  // the read is stuck in the "kernel"
    // The loop goes on meanwhile: a handler posted now runs, and asking again does not wait.
    bool ran = false;
    boost::asio::post(io, [&] { ran = true; });
    CHECK(run_until(io, [&] { return ran; }));
    CHECK(spool.try_read_event(stored.locator, waiter, event, body, error) == spool::BlockReader::Status::reading);
    CHECK(waiter.told == 0);
    CHECK(spool.parked_reads() == 1);  // one read for both requests

    files.hang(HangingDisk::Call::none);
    REQUIRE(run_until(io, [&] { return waiter.told == 1; }));
    REQUIRE(spool.try_read_event(stored.locator, waiter, event, body, error) == spool::BlockReader::Status::ready);
    CHECK_FALSE(error);
    CHECK(event.event_id == "event-1-1");
    CHECK(body == std::string(300, 'b'));
    spool.close();
}

TEST_CASE("spool service: close() is bounded when reading a parked event back hangs, with an error log", "[spool]") {
    avr_webhookd::test::TempDirectory dir("spool-service");
    // Outlives the read thread left behind (it is let go at the end, and the test waits for it).
    static HangingDisk files;
    boost::asio::io_context io;
    const auto log_file = dir.path() / "log";
    const int log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(log_fd >= 0);
    Logger logger({LogLevel::info, LogFormat::text, false}, log_fd);
    Metrics metrics;
    auto settings = settings_for(dir.path() / "spool", SpoolSync::interval);
    settings.close_sync_budget = 300ms;
    {
        spool::Spool spool(io, settings, logger, metrics, files);
        spool.start();
        const auto stored = spool.store(spool_event(1, 1), 1);
        REQUIRE_FALSE(stored.error);
        files.hang(HangingDisk::Call::read_at);
        CountingWaiter waiter;
        spool::StoredEvent event;
        std::string body;
        std::error_code error;
        REQUIRE(spool.try_read_event(stored.locator, waiter, event, body, error) ==
                spool::BlockReader::Status::reading);
        REQUIRE(files.wait_hung(1));
        const auto started = std::chrono::steady_clock::now();
        spool.close();
        const auto took = std::chrono::steady_clock::now() - started;
        CHECK(took >= 300ms);
        CHECK(took < 5s);
        // After the stop a read that needs the disk fails at once instead of waiting for ever.
        spool::StoredEvent other;
        CHECK(spool.try_read_event(stored.locator, waiter, other, body, error) == spool::BlockReader::Status::failed);
        CHECK(error == std::errc::operation_canceled);
        CHECK(waiter.told == 0);
    }  // the spool goes without waiting for the read left behind
    const std::string log = file_text(log_file);
    CHECK_THAT(log, Catch::Contains("reading a parked event back from"));
    CHECK_THAT(log, Catch::Contains("did not finish within"));
    files.hang(HangingDisk::Call::none);
    CHECK(files.wait_hung(0));
    ::close(log_fd);
}
