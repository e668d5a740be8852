#include <avr_webhookd/delivery/destinations.hpp>

#include <avr_webhookd/common/rethrow.hpp>
#include <avr_webhookd/common/signal.hpp>

#include <boost/asio/co_spawn.hpp>

#include <algorithm>
#include <utility>

namespace avr_webhookd {

namespace asio = boost::asio;
using asio::awaitable;

namespace {

constexpr std::chrono::seconds dead_letter_flush_budget{30};

const Destination* named(const std::vector<Destination>& destinations, std::string_view name) {
    const auto found = std::find_if(destinations.begin(), destinations.end(),
                                    [&](const Destination& destination) { return destination.name == name; });
    return found == destinations.end() ? nullptr : &*found;
}

}  // namespace

Destinations::Destinations(asio::io_context& io, const Config& config, Logger& logger, Metrics& metrics,
                           spool::Spool* spool)
    : io_(io),
      config_(config),
      logger_(logger),
      metrics_(metrics),
      spool_(spool),
      dead_letters_(
          std::make_unique<DeadLetterWriter>(io.get_executor(), config.dead_letter, config.dead_letter_max_bytes)),
      dead_letter_done_(io.get_executor()) {
    for (const auto& destination : all_destinations(config)) active_.push_back(make(config, destination));
    wire_spool();
}

Destinations::~Destinations() { dead_letters_->finish(dead_letter_flush_budget); }

std::unique_ptr<Deliverer> Destinations::make(const Config& config, const Destination& destination) {
    return std::make_unique<Deliverer>(
        io_, config_for(config, destination), logger_, metrics_, spool_,
        DestinationOptions{destination.name, dead_letters_.get(), [this] { dead_letter_done_.notify_all(); }});
}

// The spool has one numbering checkpoint and one room signal for all destinations.
void Destinations::wire_spool() {
    if (!spool_) return;
    spool_->on_room([this] {
        for (auto& deliverer : active_) deliverer->spool_has_room();
    });
    spool_->on_checkpoint([this] {
        spool::Spool::Numbering numbering;
        for (const auto& deliverer : active_) deliverer->append_numbering(numbering);
        return numbering;
    });
}

Deliverer* Destinations::find(std::string_view name) const {
    const auto found =
        std::find_if(active_.begin(), active_.end(), [&](const auto& deliverer) { return deliverer->name() == name; });
    return found == active_.end() ? nullptr : found->get();
}

std::vector<const Deliverer*> Destinations::active() const {
    std::vector<const Deliverer*> deliverers;
    for (const auto& deliverer : active_) deliverers.push_back(deliverer.get());
    return deliverers;
}

EventSink::Receipt Destinations::submit(Event&& event) { return fan_out(std::move(event), nullptr); }

EventSink::Receipt Destinations::submit_for_answer(Event&& event, AnswerHandler on_answer) {
    return fan_out(std::move(event), &on_answer);
}

// Each destination decides on its own copy (its types, its queue); the last one gets the event
// itself, so a single destination costs no copy.
EventSink::Receipt Destinations::fan_out(Event&& event, const AnswerHandler* on_answer) {
    std::vector<Deliverer*> targets;
    if (event.destination.empty()) {
        for (const auto& deliverer : active_) targets.push_back(deliverer.get());
    } else if (auto* only = find(event.destination)) {
        targets.push_back(only);
    } else {
        return Receipt(Admission::unknown_destination, 0,
                       "no destination named \"" + event.destination +
                           "\" is configured: the event was not accepted (it stays in your file)");
    }
    Deliverer* answering = on_answer ? find(config_.respond_destination) : nullptr;
    std::optional<Receipt> queued;  // staged, when any copy was (its batch's ticket covers the others)
    std::optional<Receipt> refused;
    std::vector<std::pair<Deliverer*, Event>> unstored;  // a copy the spool could not take
    for (std::size_t i = 0; i < targets.size(); ++i) {
        Event copy = i + 1 == targets.size() ? std::move(event) : event;
        auto* target = targets[i];
        // On not_stored the copy is left as it was (submit moves it only into a queue).
        auto receipt = target == answering ? target->submit_for_answer(std::move(copy), *on_answer)
                                           : target->submit(std::move(copy));
        if (receipt.admission == Admission::queued || receipt.admission == Admission::staged) {
            if (!queued || receipt.admission == Admission::staged ||
                (queued->admission == Admission::queued && receipt.ticket > queued->ticket))
                queued = receipt;
            continue;
        }
        if (receipt.admission == Admission::filtered) continue;
        if (receipt.admission == Admission::not_stored) unstored.emplace_back(target, std::move(copy));
        if (!refused) refused = receipt;
    }
    if (!queued) return refused ? *refused : Receipt(Admission::filtered);
    // Taken for some destinations, so the producer is told ok and will not send it again: every
    // other destination's copy must then be on record. A full queue's copy was dead-lettered (or
    // logged whole) by its destination; an unstored one is dead-lettered here (in a batch, once
    // the batch is taken).
    const std::string why = refused && !refused->detail.empty() ? refused->detail : "spool write failed";
    for (auto& [target, copy] : unstored) {
        if (queued->admission == Admission::staged) batch_write_offs_.push_back(WriteOff{target, std::move(copy), why});
        else target->write_off_unstored(copy, why);
    }
    return *queued;
}

void Destinations::begin_batch() {
    batching_ = true;
    for (const auto& deliverer : active_) deliverer->open_batch();
}

EventSink::Receipt Destinations::end_batch() {
    if (!batching_) return Admission::queued;
    batching_ = false;
    const bool staged = std::any_of(active_.begin(), active_.end(), [](const auto& d) { return d->has_staged(); });
    auto write_offs = std::exchange(batch_write_offs_, {});
    std::uint64_t ticket = 0;
    std::error_code error;
    try {
        if (staged && spool_) error = spool_->write_appended(ticket);
    } catch (...) {
        // A bug or bad_alloc, before or after the write: every destination's batch ends all the
        // same, its events queued (a record not yet written goes with the next write), and the
        // intake refuses the lines, so at worst an event is delivered twice.
        for (const auto& deliverer : active_) deliverer->commit_batch(true);
        throw;
    }
    for (const auto& deliverer : active_) deliverer->commit_batch(!error);
    if (error) return Receipt(Admission::not_stored, 0, Deliverer::not_stored_detail(error));
    for (auto& [target, copy, why] : write_offs) target->write_off_unstored(copy, why);
    return Receipt(Admission::queued, ticket);
}

bool Destinations::has_room() const {
    return std::all_of(active_.begin(), active_.end(), [](const auto& deliverer) { return deliverer->has_room(); });
}

awaitable<void> Destinations::wait_for_room() {
    for (const auto& deliverer : active_) {
        if (!deliverer->has_room()) {
            co_await deliverer->wait_for_room();
            co_return;  // the caller checks has_room() again
        }
    }
}

// The records are popped as they are queued, so that a large backlog is not held twice.
void Destinations::restore_from_spool() {
    if (!spool_) return;
    auto& recovery = spool_->recovered();
    std::size_t restored = 0;
    std::vector<Deliverer*> by_index;  // Recovery::destinations' names, looked up once
    for (const auto& destination : recovery.destinations)
        by_index.push_back(find(destination.empty() ? default_destination_name : std::string_view(destination)));
    for (; !recovery.events.empty(); recovery.events.pop_front()) {
        const auto& record = recovery.events.front();
        if (auto* deliverer = by_index.at(record.destination)) {
            deliverer->restore(record);
            ++restored;
            continue;
        }
        active_.front()->give_up_record(record, "destination_removed", recovery.destination_of(record),
                                        "the destination is no longer configured");
    }
    for (const auto& [key, last] : recovery.last_sequence) {
        const auto [destination, call] = spool::split_numbering_key(key);
        if (auto* deliverer = find(destination.empty() ? default_destination_name : destination))
            deliverer->continue_numbering(call, last);
    }
    spool_->release_recovered();
    if (restored > 0) logger_.info("spool: " + std::to_string(restored) + " events queued again for delivery");
}

void Destinations::start() {
    started_ = true;
    for (auto& deliverer : active_) deliverer->start();
}

awaitable<void> Destinations::shut_down(std::chrono::milliseconds budget) {
    std::size_t running = active_.size();
    detail::Signal finished(io_.get_executor());
    for (auto& deliverer : active_)
        asio::co_spawn(io_, deliverer->shut_down(budget), [&running, &finished](std::exception_ptr error) {
            --running;
            finished.notify_all();
            detail::rethrow_exceptions(error);
        });
    while (running > 0) co_await finished.wait();
    // Then the dead-letter lines they wrote (shutdown ones included) reach the disk, within a bound:
    // a hung disk must not keep the daemon from stopping; what is left completes as failed later.
    const auto deadline = std::chrono::steady_clock::now() + dead_letter_flush_budget;
    while (dead_letters_->pending() > 0 && std::chrono::steady_clock::now() < deadline)
        co_await dead_letter_done_.wait_until(deadline);
    if (const auto left = dead_letters_->pending())
        logger_.error("shutdown: " + std::to_string(left) + " dead-letter lines not synced after " +
                      std::to_string(dead_letter_flush_budget.count()) + "s");
}

void Destinations::abort() {
    for (auto& deliverer : active_) deliverer->abort();
}

void Destinations::reconfigure(const Config& config) {
    const auto wanted = all_destinations(config);
    // Phase one may throw and changes nothing: every destination's new settings are checked and
    // the new destinations built. Phase two applies them.
    for (const auto& destination : wanted) Deliverer::check_startable(config_for(config, destination));
    std::vector<std::unique_ptr<Deliverer>> added;
    for (const auto& destination : wanted)
        if (!find(destination.name)) added.push_back(make(config, destination));
    for (auto& deliverer : active_)
        if (const auto* destination = named(wanted, deliverer->name()))
            deliverer->reconfigure(config_for(config, *destination));
    for (auto position = active_.begin(); position != active_.end();) {
        if (named(wanted, (*position)->name())) {
            ++position;
            continue;
        }
        (*position)->remove();
        removed_.push_back(std::move(*position));
        position = active_.erase(position);
    }
    for (auto& deliverer : added) {
        logger_.info("reload: destination " + deliverer->name() + " added, delivering to " +
                     url_for_log(named(wanted, deliverer->name())->url));
        if (started_) deliverer->start();
        active_.push_back(std::move(deliverer));
    }
    dead_letters_->set_max_bytes(config.dead_letter_max_bytes);
    config_ = config;
    wire_spool();
}

void Destinations::update_gauges() {
    for (auto& deliverer : active_) deliverer->update_gauges();
    // A removed destination's gauges go to zero as its last attempts end, instead of freezing.
    for (auto& deliverer : removed_) deliverer->update_gauges();
}

std::optional<std::string> Destinations::unhealthy_reason() const {
    if (spool_)
        if (auto reason = spool_->unhealthy_reason()) return reason;
    for (const auto& deliverer : active_)
        if (auto reason = deliverer->unhealthy_reason())
            return active_.size() == 1 ? reason : "destination " + deliverer->name() + ": " + *reason;
    return std::nullopt;
}

}  // namespace avr_webhookd
