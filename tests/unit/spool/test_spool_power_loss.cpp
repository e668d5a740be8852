// Power loss at random moments (issue 18, point 3): the spool's write / rotate / delete / recover
// cycle runs on FaultInjectionFileSystem, which loses whatever was not made durable when the power
// goes. Each run is a seed; each seed goes through several crash-and-restart cycles, each crash
// at a random mutating file operation. After every crash, start-up must succeed and every event
// acknowledged under spool_sync = always (its flush durable) and not yet delivered must come back
// whole, each call's acknowledged events in order, and no call's numbering may go back below an
// acknowledged number. A failure prints the seed: AVR_WEBHOOKD_POWER_LOSS_SEED=<seed>
// build/tests/unit_tests "[power-loss]" replays that run alone.

#include "fault_injection_fs.hpp"
#include "spool_helpers.hpp"

#include <avr_webhookd/spool/numbering_checkpoint.hpp>
#include <avr_webhookd/spool/record.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <utility>
#include <vector>

using namespace avr_webhookd::spool;
using namespace avr_webhookd::spool::test;

namespace {

const std::filesystem::path spool_dir = "/var/lib/avr-webhookd/spool";
const bool trace = std::getenv("AVR_WEBHOOKD_POWER_LOSS_TRACE") != nullptr;

// What the test knows of one event it stored.
struct TestEvent {
    std::string id, call, type, body, destination;
    std::uint64_t sequence = 0;
    std::uint64_t ticket = 0;  // the flush that wrote it (0: its write failed, never acknowledged)
    bool acknowledged = false;
    bool delivered = false;  // done() was called: it may or may not come back
    // Refused (its batch's write failed), and the done records the writer then wrote for it were
    // durable before a crash: it never comes back, even if its record stayed on disk whole.
    bool refused_for_good = false;
    Locator locator;  // where it was written (for a failure's report)
    std::uint64_t record_id = 0;
};

// The daemon's side of one run between two crashes, done by hand on the writer in the order
// Spool does it (store = a batch appended + one flush; one sync at a time; done records by a later
// flush, synced with the next event or by the timer; the numbering checkpoint before segments are
// deleted), with the acknowledgements it would send.
class Run {
public:
    Run(FaultInjectionFileSystem& files, std::mt19937_64& random, std::map<std::string, TestEvent>& events,
        std::map<std::string, std::uint64_t>& last_sequence, std::uint64_t& next_event)
        : files_(files), random_(random), events_(events), last_sequence_(last_sequence), next_event_(next_event) {}

    // Start-up: never fails on what a crash leaves.
    void start(Recovery& recovery) {
        SpoolOptions options;
        options.segment_bytes = 2048 + random_() % 4096;              // rotations every few events
        options.max_bytes = random_() % 4 == 0 ? 24 << 10 : 4 << 20;  // sometimes spool_full
        try {                                                         // as Spool's constructor does
            auto directory = SpoolDirectory::open(files_, spool_dir);
            recovery = recover(directory);
            INFO("segments unreadable: " << recovery.stats.unreadable.size());
            REQUIRE(recovery.stats.unreadable.empty());
            REQUIRE_FALSE(recovery.stats.list_error);
            NumberingCheckpoint::merge(files_, spool_dir, recovery);
            writer_ = std::make_unique<SpoolWriter>(std::move(directory), recovery, options);
        } catch (const std::exception& error) {
            FAIL("the start after a crash failed: " << error.what());
        }
        // Each waiting event read back whole: its record must hold what was stored.
        recovered_.clear();
        for (const auto& event : recovery.events) {
            StoredEvent stored;
            std::string body;
            INFO("record " << event.record_id << " in segment " << event.locator.segment << " at "
                           << event.locator.offset);
            REQUIRE_FALSE(writer_->read_event(event.locator, stored, body));
            REQUIRE(events_.contains(stored.event_id));  // nothing that was never stored
            CHECK(body == events_.at(stored.event_id).body);
            CHECK(stored.record_id == event.record_id);
            CHECK(avr_webhookd::uuid_text(event.call) == stored.call);
            CHECK(recovery.destination_of(event) == stored.destination);
            live_.emplace(event.record_id, stored.event_id);
            recovered_.push_back(std::move(stored));
        }
        // The queues number each call on after the highest number the spool kept (Deliverer).
        last_sequence_.clear();
        for (const auto& [key, last] : recovery.last_sequence) last_sequence_[key] = last;
    }

    // The waiting events found at the start, read back whole, in log order.
    const std::vector<StoredEvent>& recovered() const { return recovered_; }

    // Random steps until the power goes (or `steps` were done: then it goes after them).
    void run(int steps) {
        for (int step = 0; step < steps && !files_.crashed(); ++step) {
            const auto roll = random_() % 100;
            if (roll < 40) store();
            else if (roll < 60) deliver();
            else if (roll < 72) flush();
            else if (roll < 90) finish_sync();
            else if (roll < 97) maintain();
            else writer_->rotate_soon();
            acknowledge();
        }
        if (trace) std::cout << "crash\n";
        for (const auto& [id, generation] : refused_)
            if (writer_->durable_generation() >= generation) events_.at(id).refused_for_good = true;
        files_.crash_now();
        writer_.reset();  // the process is gone: nothing it does now reaches the disk
    }

    bool checkpoint_failed() const { return checkpoint_failed_; }

private:
    std::string pick(const std::vector<std::string>& from) { return from[random_() % from.size()]; }

    // A batch of 1 to 4 events (the lines of one read) appended, then written with one flush, as
    // the intake's batches and Spool::append + write_appended do: all of them or none.
    void store() {
        std::vector<std::pair<TestEvent, Appended>> batch;
        const auto count = 1 + random_() % 4;
        for (std::uint64_t i = 0; i < count; ++i) {
            TestEvent event = make_event();
            Appended appended;
            const auto error = writer_->append_event(NewEvent{event.id, event.call, event.type, event.body,
                                                              event.sequence, 1'780'000'000'000, event.destination},
                                                     appended);
            if (!error) {
                last_sequence_[numbering_key(event.destination, event.call)] = event.sequence;  // staged
                batch.emplace_back(std::move(event), appended);
            } else {
                events_.emplace(event.id, std::move(event));  // refused at once (spool_full)
            }
        }
        const bool written = !batch.empty() && !writer_->flush();
        // Refused: done records for them go out with the next write that succeeds, if the failed
        // one could not be cut back off the file.
        if (!written)
            for (const auto& [event, appended] : batch)
                refused_.emplace_back(event.id, writer_->flush_generation() + 1);
        for (auto& [event, appended] : batch) {
            if (written) {
                event.ticket = writer_->flush_generation();
                event.locator = appended.locator;
                event.record_id = appended.record_id;
                if (trace)
                    std::cout << "store " << event.id << " record " << event.record_id << " segment "
                              << event.locator.segment << " at " << event.locator.offset << " +" << event.locator.length
                              << " generation " << event.ticket << "\n";
                live_.emplace(appended.record_id, event.id);
                waiting_.push_back(event.id);
            }
            events_.emplace(event.id, std::move(event));
        }
        if (!written) {  // the queues never took them: their numbers are given again

            for (auto it = batch.rbegin(); it != batch.rend(); ++it)
                last_sequence_[numbering_key(it->first.destination, it->first.call)] = it->first.sequence - 1;
            return;
        }
        request_sync();
    }

    TestEvent make_event() {
        static const std::vector<std::string> calls{call_uuid(1), call_uuid(2), call_uuid(3), call_uuid(4)};
        static const std::vector<std::string> destinations{"", "", "crm"};
        TestEvent event;
        event.id = "event-" + std::to_string(next_event_++);
        event.call = pick(calls);
        event.destination = pick(destinations);
        event.type = random_() % 5 == 0 ? "call_ended" : "transcription";
        event.sequence = last_sequence_[numbering_key(event.destination, event.call)] + 1;
        // Small and large bodies, so that records straddle the 512-byte sectors. (One draw per
        // statement: the order of a call's arguments is unspecified, and a seed must replay the same.)
        const std::size_t largest = random_() % 4 == 0 ? 1500 : 200;
        const std::size_t size = 20 + random_() % largest;
        const char letter = static_cast<char>('a' + random_() % 26);
        event.body = std::string(size, letter);
        return event;
    }

    // An event that was written may be delivered (before it is durable, as the daemon does).
    void deliver() {
        if (live_.empty()) return;
        auto it = live_.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(random_() % live_.size()));
        writer_->append_done(it->first);
        if (trace) std::cout << "done record " << it->first << " (" << it->second << ")\n";
        events_.at(it->second).delivered = true;
        live_.erase(it);
    }

    // Done records: written, and synced only by the next event's sync or the timer's (Spool).
    void flush() { (void)writer_->flush(); }

    void request_sync() {
        if (in_flight_) {
            sync_wanted_ = true;
            return;
        }
        SyncPoint point = writer_->sync_point();
        if (!point.empty()) in_flight_ = std::move(point);
    }

    void finish_sync() {
        if (!in_flight_) return;
        const SyncPoint point = std::move(*in_flight_);
        in_flight_.reset();
        if (point.sync()) {
            if (trace) std::cout << "sync failed up to " << point.generation() << "\n";
            writer_->sync_failed(point);
            return;  // the timer tries again
        }
        writer_->synced(point);
        if (trace)
            std::cout << "synced up to " << point.generation() << ", durable " << writer_->durable_generation() << "\n";
        const bool wanted = std::exchange(sync_wanted_, false);
        if (wanted) request_sync();
    }

    // The timer: a failed sync tried again, a rotation when all is done, checkpoint, collect.
    void maintain() {
        if (writer_->pending_bytes() > 0) flush();
        if (writer_->flush_generation() > writer_->durable_generation()) request_sync();
        if (writer_->live_events() == 0 && writer_->active_segment_bytes() >= 1024) {
            writer_->rotate_soon();
            flush();
        }
        if (trace)
            std::cout << "collect, active segment " << writer_->active_segment() << ", " << writer_->bytes()
                      << " bytes in " << writer_->segments() << " segments\n";
        const auto result = checkpoint_.collect(*writer_, [&] {
            NumberingCheckpoint::Numbering numbering;
            for (const auto& [key, last] : last_sequence_) numbering.emplace_back(key, last);
            return numbering;
        });
        if (result.checkpoint) checkpoint_failed_ = true;
    }

    // Replies go out once the flush that wrote the event is durable (tickets are this run's
    // flush generations).
    void acknowledge() {
        if (files_.crashed()) return;  // the process died before it could answer
        std::erase_if(waiting_, [&](const std::string& id) {
            auto& event = events_.at(id);
            if (event.ticket > writer_->durable_generation()) return false;
            event.acknowledged = true;
            return true;
        });
    }

    FaultInjectionFileSystem& files_;
    std::mt19937_64& random_;
    std::map<std::string, TestEvent>& events_;
    std::map<std::string, std::uint64_t>& last_sequence_;
    std::uint64_t& next_event_;
    std::unique_ptr<SpoolWriter> writer_;
    std::map<std::uint64_t, std::string> live_;  // record id -> event id, not yet delivered
    std::vector<StoredEvent> recovered_;
    std::vector<std::string> waiting_;                            // stored in this run, not yet acknowledged
    std::vector<std::pair<std::string, std::uint64_t>> refused_;  // id, the flush after its refusal
    std::optional<SyncPoint> in_flight_;
    bool sync_wanted_ = false;
    NumberingCheckpoint checkpoint_;
    bool checkpoint_failed_ = false;
};

// The segments and damage a start found, for a failure's report.
std::string describe(const Recovery& recovery) {
    std::string text = "segments:";
    for (const auto& segment : recovery.segments)
        text += " " + std::to_string(segment.number) + " (" + std::to_string(segment.bytes) + " bytes)";
    for (const auto& range : recovery.stats.corrupt)
        text += "; damaged " + std::to_string(range.segment) + " at " + std::to_string(range.offset) + " +" +
                std::to_string(range.length);
    for (const auto& range : recovery.stats.torn_tails)
        text += "; torn " + std::to_string(range.segment) + " at " + std::to_string(range.offset) + " +" +
                std::to_string(range.length);
    return text;
}

// What a start after a crash must find.
void check_recovery(const Recovery& recovery, const std::vector<StoredEvent>& recovered_events,
                    const std::map<std::string, TestEvent>& events,
                    const std::map<std::string, std::uint64_t>& acknowledged_numbers, bool numbering_kept) {
    std::set<std::string> found;
    std::map<std::string, std::uint64_t> last_acknowledged;  // per numbering key, in recovery order
    for (const auto& recovered : recovered_events) {
        INFO("recovered " << recovered.event_id << " (record " << recovered.record_id << ")");
        const auto stored = events.find(recovered.event_id);
        REQUIRE(stored != events.end());  // nothing that was never stored
        const TestEvent& event = stored->second;
        // An event refused (a failed write, even one that could not be cut back off the file) does
        // not come back to be delivered once what was written after it is durable.
        CHECK_FALSE(event.refused_for_good);
        CHECK(recovered.call == event.call);
        CHECK(recovered.type == event.type);
        CHECK(recovered.destination == event.destination);
        CHECK(recovered.sequence == event.sequence);
        REQUIRE(found.insert(recovered.event_id).second);  // once
        if (event.acknowledged && !event.delivered) {
            auto& last = last_acknowledged[numbering_key(event.destination, event.call)];
            CHECK(event.sequence > last);  // a call's acknowledged events in their order
            last = event.sequence;
        }
    }
    for (const auto& [id, event] : events) {
        if (!event.acknowledged || event.delivered || found.contains(id)) continue;
        // The report is built only for a failure (it is long, and this loop runs for every event).
        FAIL_CHECK("acknowledged event " << id << " of call " << event.call << ", sequence " << event.sequence
                                         << ", record " << event.record_id << " in segment " << event.locator.segment
                                         << " at " << event.locator.offset << " was not recovered; "
                                         << describe(recovery));
    }
    if (!numbering_kept) return;
    for (const auto& [key, number] : acknowledged_numbers) {
        INFO("numbering of " << key);
        const auto kept = recovery.last_sequence.find(key);
        CHECK((kept != recovery.last_sequence.end() && kept->second >= number));
    }
}

// The highest acknowledged sequence number of each numbering key.
std::map<std::string, std::uint64_t> acknowledged_numbers(const std::map<std::string, TestEvent>& events) {
    std::map<std::string, std::uint64_t> numbers;
    for (const auto& [id, event] : events)
        if (event.acknowledged) {
            auto& number = numbers[numbering_key(event.destination, event.call)];
            number = std::max(number, event.sequence);
        }
    return numbers;
}

struct RunReport {
    int crashes = 0;
    std::uint64_t operations = 0;
    std::size_t acknowledged = 0;
    FaultInjectionFileSystem::CrashStats damage;  // what the crashes did to unsynced data
};

RunReport one_run(std::uint64_t seed, int cycles, bool with_faults) {
    INFO("seed " << seed << (with_faults ? " with failing syncs and writes" : "")
                 << " (replay: AVR_WEBHOOKD_POWER_LOSS_SEED=" << seed << ")");
    FaultInjectionFileSystem files(seed);
    std::mt19937_64 random(seed * 7919 + 13);
    FaultInjectionFileSystem::Faults faults;
    if (with_faults)
        faults = {.write = 15,
                  .sync_data = 40,
                  .sync_directory = 40,
                  .create = 10,
                  .truncate = 5,
                  .rename = 20,
                  .remove = 20};
    std::map<std::string, TestEvent> events;
    std::map<std::string, std::uint64_t> last_sequence;
    std::uint64_t next_event = 1;
    RunReport report;
    bool numbering_kept = true;
    for (int cycle = 0; cycle <= cycles; ++cycle) {
        INFO("cycle " << cycle);
        Run run(files, random, events, last_sequence, next_event);
        Recovery recovery;
        files.set_faults({});  // what the crash left, not a disk failing at start, must not stop it
        run.start(recovery);
        files.set_faults(faults);
        if (trace) std::cout << "cycle " << cycle << " started: " << describe(recovery) << "\n";
        check_recovery(recovery, run.recovered(), events, acknowledged_numbers(events), numbering_kept);
        if (cycle == cycles) break;
        // What came back is on the disk now: it must survive the next crash too.
        for (const auto& recovered : run.recovered()) {
            auto& event = events.at(recovered.event_id);
            if (!event.delivered) event.acknowledged = true;
        }
        files.crash_after(1 + random() % 250);
        run.run(400);
        // A checkpoint that failed let segments go without it: a call's numbers may be lost from
        // then on (documented), so this seed no longer checks numbering.
        numbering_kept = numbering_kept && !run.checkpoint_failed();
        files.reboot();
        ++report.crashes;
    }
    report.operations = files.operations();
    report.damage = files.stats();
    for (const auto& [id, event] : events) report.acknowledged += event.acknowledged ? 1 : 0;
    return report;
}

std::uint64_t from_environment(const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr ? std::strtoull(value, nullptr, 10) : 0;
}

}  // namespace

TEST_CASE("power loss at hundreds of random moments loses no acknowledged event and never stops a start",
          "[spool][power-loss]") {
    const auto started = std::chrono::steady_clock::now();
    RunReport total;
    int runs = 0;
    const auto add = [&](const RunReport& report) {
        total.crashes += report.crashes;
        total.operations += report.operations;
        total.acknowledged += report.acknowledged;
        auto& damage = total.damage;
        damage.files_dropped += report.damage.files_dropped;
        damage.files_torn += report.damage.files_torn;
        damage.files_zeroed += report.damage.files_zeroed;
        damage.files_kept += report.damage.files_kept;
        damage.folders_dropped += report.damage.folders_dropped;
        damage.folders_prefix += report.damage.folders_prefix;
        damage.folders_subset += report.damage.folders_subset;
        damage.folders_kept += report.damage.folders_kept;
        damage.failed_operations += report.damage.failed_operations;
        ++runs;
    };
    // The same seeds every time, so that a run is repeatable; AVR_WEBHOOKD_POWER_LOSS_RUNS=<n> runs
    // n seeds from a random start instead, to look further.
    std::uint64_t base = 1;
    constexpr std::uint64_t standard_runs = 60;  // 6 crashes each
    std::uint64_t count = standard_runs;
    if (const auto seed = from_environment("AVR_WEBHOOKD_POWER_LOSS_SEED")) {
        base = seed;
        count = 1;
    } else if (const auto runs = from_environment("AVR_WEBHOOKD_POWER_LOSS_RUNS")) {
        base = std::random_device{}() * 1000003ull + 1;
        count = runs;
        std::cout << "power loss: seeds " << base << " to " << base + count - 1 << "\n";
    }
    for (std::uint64_t seed = base; seed < base + count; ++seed) add(one_run(seed, 6, seed % 2 == 0));
    const auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::cout << "power loss: " << runs << " runs, " << total.crashes << " crash points, " << total.operations
              << " file operations, " << total.acknowledged << " events acknowledged, in " << took << " s\n";
    const auto& damage = total.damage;
    std::cout << "power loss: unsynced files dropped " << damage.files_dropped << ", torn " << damage.files_torn
              << ", sectors zeroed " << damage.files_zeroed << ", kept " << damage.files_kept
              << "; unsynced folder operations dropped " << damage.folders_dropped << ", a prefix kept "
              << damage.folders_prefix << ", a subset kept " << damage.folders_subset << ", all kept "
              << damage.folders_kept << "; injected failures " << damage.failed_operations << "\n";
    // The standard run: hundreds of crash points, with every kind of damage (a replayed seed
    // alone may see few of them).
    if (count == standard_runs) {
        CHECK(total.crashes >= 300);
        CHECK(damage.files_dropped > 0);
        CHECK(damage.files_torn > 0);
        CHECK(damage.files_zeroed > 0);
        CHECK(damage.folders_dropped > 0);
        CHECK(damage.folders_prefix > 0);
        CHECK(damage.folders_subset > 0);
        CHECK(damage.failed_operations > 0);
    }
}

namespace {

// A file written and synced in `folder` as a segment is (fdatasync, then an fsync of the folder),
// then the power goes: whether the file is still there whole.
bool synced_file_survives(FaultInjectionFileSystem& files, const std::filesystem::path& folder) {
    const std::string record(700, 'r');
    {
        FileHandle file, dir;
        REQUIRE_FALSE(files.open(folder / "0000000000000001.seg", FileSystem::Mode::create_new, file));
        REQUIRE_FALSE(files.write_at(file.get(), record, 0));
        REQUIRE_FALSE(files.sync_data(file.get()));
        REQUIRE_FALSE(files.open_directory(folder, dir));
        REQUIRE_FALSE(files.sync(dir.get()));
    }
    files.crash_now();
    files.reboot();
    return files.contents(folder / "0000000000000001.seg") == record;
}

}  // namespace

TEST_CASE("a spool folder the daemon creates, parents included, survives a power loss with what was synced in it",
          "[spool][power-loss]") {
    int lost_without_parent_sync = 0;
    for (std::uint64_t seed = 1; seed <= 64; ++seed) {
        INFO("seed " << seed);
        {
            FaultInjectionFileSystem files(seed);
            { auto directory = SpoolDirectory::open(files, spool_dir); }  // creates /var/lib/... too
            CHECK(synced_file_survives(files, spool_dir));
        }
        // The model takes a folder whose parent was not synced away with what it holds, so that
        // the check above can fail.
        FaultInjectionFileSystem files(seed);
        REQUIRE_FALSE(files.make_directory("/spool", 0700));
        if (!synced_file_survives(files, "/spool")) ++lost_without_parent_sync;
    }
    CHECK(lost_without_parent_sync > 0);
}
