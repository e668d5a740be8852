// The client's HTTP response reader on arbitrary bytes, delivered in reads of input-chosen sizes,
// as a hostile receiver could send them: it must never crash, never hold more than its bound,
// never keep a body over the limit, and never call a connection reusable with bytes unread.
//
// Input layout: byte 0 picks the head limit (64 .. 64 + 255*64), byte 1 the body limit
// (0 .. 255*256), byte 2 the read size (1..256), byte 3 bit 0 whether the peer closes at the end;
// the rest is what the receiver sends.
#include <avr_webhookd/delivery/http_response_reader.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

using namespace avr_webhookd;

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 4) return 0;
    const HttpResponseLimits limits{64 + std::size_t{data[0]} * 64, std::size_t{data[1]} * 256};
    const std::size_t read_size = 1 + std::size_t{data[2]};
    const bool close_at_end = (data[3] & 1) != 0;
    std::string_view stream(reinterpret_cast<const char*>(data) + 4, size - 4);

    HttpResponseReader reader(limits);
    std::size_t unread = 0;
    while (!stream.empty()) {
        if (reader.state() != HttpResponseReader::State::reading) {
            unread = stream.size();
            reader.feed(stream);  // bytes after the end: ignored, but the connection is spoilt
            break;
        }
        const auto space = reader.prepare();
        check(!space.empty() && space.size() <= HttpResponseReader::read_size);
        const auto take = std::min({read_size, stream.size(), space.size()});
        std::memcpy(space.data(), stream.data(), take);
        stream.remove_prefix(take);
        reader.commit(take);
        check(reader.buffered() <= reader.max_buffered());
    }
    if (close_at_end) reader.finish();

    switch (reader.state()) {
    case HttpResponseReader::State::reading:
        check(!close_at_end);
        check(!reader.reusable());
        break;
    case HttpResponseReader::State::failed:
        check(reader.failure() != HttpResponseReader::Failure::none && !reader.failure_message().empty());
        check(!reader.reusable());
        break;
    case HttpResponseReader::State::complete: {
        const auto& response = reader.response();
        check(response.status >= 200 && response.status <= 999);
        check(response.body.size() <= limits.body);
        if (reader.reusable()) check(unread == 0 && reader.buffered() == 0 && !response.body_truncated);
        break;
    }
    }
    return 0;
}
