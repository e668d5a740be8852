#include "disk_thread.hpp"

#include <boost/asio/post.hpp>

#include <optional>
#include <utility>

namespace avr_webhookd::spool {

// Shared with the thread, so that a thread left behind outlives its owner safely.
struct DiskThread::State {
    explicit State(boost::asio::io_context& context) : io(&context) {}
    struct Entry {
        Job job;
        bool waited = false;  // run_and_wait's: its loop part goes to the caller
    };
    boost::asio::io_context* io;  // null once the thread was left behind
    std::mutex mutex;
    std::condition_variable wake;
    std::condition_variable finished;
    std::deque<Entry> jobs;
    bool stop = false;
    bool exited = false;  // run() has returned
    std::optional<LoopPart> waited_result;
};

DiskThread::DiskThread(boost::asio::io_context& io)
    : state_(std::make_shared<State>(io)), thread_([state = state_] { run(state); }) {}

DiskThread::~DiskThread() {
    {
        std::lock_guard lock(state_->mutex);
        state_->stop = true;
    }
    state_->wake.notify_one();
    if (thread_.joinable()) thread_.join();
}

void DiskThread::run(std::shared_ptr<State> state) {
    run_jobs(*state);
    std::lock_guard lock(state->mutex);
    state->exited = true;
    state->finished.notify_all();
}

void DiskThread::run_jobs(State& state) {
    std::unique_lock lock(state.mutex);
    for (;;) {
        state.wake.wait(lock, [&] { return state.stop || !state.jobs.empty(); });
        if (state.jobs.empty() || state.io == nullptr) return;  // stopping with nothing left, or left behind
        State::Entry entry = std::move(state.jobs.front());
        state.jobs.pop_front();
        lock.unlock();
        LoopPart part = entry.job();
        lock.lock();
        if (state.io == nullptr) return;  // left behind while the job ran: its result goes nowhere
        if (entry.waited) {
            state.waited_result = std::move(part);
            state.finished.notify_all();
        } else if (part) {
            boost::asio::post(*state.io, std::move(part));
        }
    }
}

void DiskThread::submit(Job job) {
    {
        std::lock_guard lock(state_->mutex);
        if (state_->io == nullptr || state_->stop) return;
        state_->jobs.push_back(State::Entry{std::move(job), false});
    }
    state_->wake.notify_one();
}

DiskThread::LoopPart DiskThread::run_and_wait(Job job, std::chrono::steady_clock::duration budget) {
    std::unique_lock lock(state_->mutex);
    if (state_->io == nullptr) return {};
    state_->waited_result.reset();
    state_->jobs.push_back(State::Entry{std::move(job), true});
    state_->wake.notify_one();
    const auto deadline = std::chrono::steady_clock::now() + budget;
    if (state_->finished.wait_until(lock, deadline, [&] { return state_->waited_result.has_value(); })) {
        LoopPart part = std::move(*state_->waited_result);
        state_->waited_result.reset();
        if (!part) part = [] {};  // done, with nothing for the loop: not the same as timed out
        return part;
    }
    // Stuck in the kernel: leave the thread behind. It ends when (if) the call returns.
    state_->io = nullptr;
    state_->jobs.clear();
    lock.unlock();
    thread_.detach();
    return {};
}

bool DiskThread::finish(std::chrono::steady_clock::duration budget) {
    std::unique_lock lock(state_->mutex);
    if (!thread_.joinable()) return state_->io != nullptr;  // finished before, or left behind
    state_->stop = true;
    state_->wake.notify_one();
    if (state_->finished.wait_for(lock, budget, [&] { return state_->exited; })) {
        lock.unlock();
        thread_.join();
        return true;
    }
    state_->io = nullptr;  // stuck in the kernel: left behind, it ends when (if) the call returns
    state_->jobs.clear();
    lock.unlock();
    thread_.detach();
    return false;
}

bool DiskThread::abandoned() const {
    std::lock_guard lock(state_->mutex);
    return state_->io == nullptr;
}

}  // namespace avr_webhookd::spool
