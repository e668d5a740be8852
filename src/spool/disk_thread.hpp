#pragma once
// Internal to the spool: a thread that does disk work off the event loop.

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace avr_webhookd::spool {

// Runs jobs one at a time, in order, on a thread of its own; what a job returns runs on the event
// loop afterwards (posted). A thread stuck in the kernel (an fdatasync that hangs on a sick disk)
// must not hold a stop for ever: finish() waits within a budget and, past it, leaves the thread
// behind (detached). Such a thread touches nothing of its owner's when it comes back: it only
// drops its job (which must own what it uses) and ends.
class DiskThread {
public:
    using LoopPart = std::function<void()>;
    using Job = std::function<LoopPart()>;  // runs on the thread; its result on the loop (may be empty)

    explicit DiskThread(boost::asio::io_context& io);
    ~DiskThread();  // finish() without a bound, unless already left behind
    DiskThread(const DiskThread&) = delete;
    DiskThread& operator=(const DiskThread&) = delete;

    void submit(Job job);
    // Runs `job` after the queued ones and waits up to `budget` for it. Its loop part is not
    // posted: the caller, on the loop, gets it back (never empty when the job ran; empty when the
    // budget ran out: the thread is then left behind, and what is submitted later is dropped).
    LoopPart run_and_wait(Job job, std::chrono::steady_clock::duration budget);
    // Ends the thread after the jobs queued so far, waiting up to `budget`; past it the thread is
    // left behind (and false returned). Later submits are dropped.
    bool finish(std::chrono::steady_clock::duration budget);
    bool abandoned() const;

private:
    struct State;
    static void run(std::shared_ptr<State> state);
    static void run_jobs(State& state);

    std::shared_ptr<State> state_;
    std::thread thread_;
};

}  // namespace avr_webhookd::spool
