// StagedNumbers: each call's last number among the events of an open batch.
#include <avr_webhookd/queue/staged_numbers.hpp>

#include <catch2/catch.hpp>

#include <cstring>

using namespace avr_webhookd;

namespace {

CallKey key_of(std::uint64_t high, std::uint64_t low) {
    CallKey key{};
    std::memcpy(key.data(), &high, 8);
    std::memcpy(key.data() + 8, &low, 8);
    return key;
}

}  // namespace

TEST_CASE("staged numbers: a call's last staged number, updated, and forgotten at clear", "[queue][batch]") {
    StagedNumbers numbers;
    const auto a = key_of(1, 2);
    const auto b = key_of(2, 1);
    CHECK_FALSE(numbers.last(a));
    numbers.set(a, 7);
    numbers.set(b, 1);
    numbers.set(a, 8);
    CHECK(numbers.last(a) == 8u);
    CHECK(numbers.last(b) == 1u);
    CHECK(numbers.size() == 2);
    numbers.clear();
    CHECK_FALSE(numbers.last(a));
    CHECK_FALSE(numbers.last(b));
    CHECK(numbers.size() == 0);
    numbers.set(b, 3);  // usable again after clear
    CHECK(numbers.last(b) == 3u);
    CHECK_FALSE(numbers.last(a));
}

TEST_CASE("staged numbers: grows past its first size and keeps every call apart", "[queue][batch]") {
    StagedNumbers numbers;
    constexpr std::uint64_t calls = 1000;
    // Keys that differ in one half only, and keys equal in both halves, collide often.
    for (std::uint64_t i = 0; i < calls; ++i) numbers.set(key_of(i, i % 3 == 0 ? i : 42), 100 + i);
    CHECK(numbers.size() == calls);
    for (std::uint64_t i = 0; i < calls; ++i) {
        INFO(i);
        CHECK(numbers.last(key_of(i, i % 3 == 0 ? i : 42)) == 100 + i);
    }
    CHECK_FALSE(numbers.last(key_of(calls, 42)));
    numbers.clear();
    for (std::uint64_t i = 0; i < calls; ++i) CHECK_FALSE(numbers.last(key_of(i, i % 3 == 0 ? i : 42)));
}
