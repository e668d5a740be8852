#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace avr_webhookd {

// The unparsed bytes of a sans-io reader (HttpRequestReader, HttpResponseReader): a socket reads
// into prepare(), commit() counts what it read, the parser consume()s from the front. It never
// holds more than the limit given to prepare(), and grows only a read at a time.
class ReadBuffer {
public:
    static constexpr std::size_t read_size = 4096;

    // Where the next read goes: at most read_size bytes, and at most `limit` buffered in all
    // (empty when the buffer is full).
    std::span<char> prepare(std::size_t limit) {
        const auto wanted = std::max(std::min(size_ + read_size, limit), size_);
        if (bytes_.size() < wanted) bytes_.resize(wanted);
        return {bytes_.data() + size_, std::min(read_size, wanted - size_)};
    }
    // `count` bytes were written into the span of the last prepare(); returns how many count.
    std::size_t commit(std::size_t count) {
        count = std::min(count, bytes_.size() - size_);
        size_ += count;
        return count;
    }
    // The parser took the first `count` bytes.
    void consume(std::size_t count) {
        count = std::min(count, size_);
        std::memmove(bytes_.data(), bytes_.data() + count, size_ - count);
        size_ -= count;
    }
    // Forgets the unparsed bytes; the space prepared stays for the next reads.
    void clear() { size_ = 0; }
    std::string_view data() const { return {bytes_.data(), size_}; }
    std::size_t size() const { return size_; }

private:
    std::string bytes_;  // [0, size_) unparsed; bytes_.size() is the space prepared
    std::size_t size_ = 0;
};

}  // namespace avr_webhookd
