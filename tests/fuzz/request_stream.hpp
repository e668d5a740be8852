#pragma once

// The servers' read loop over one connection's bytes, shared by the HTTP intake and admin fuzz
// targets: requests one after another (keep-alive), HttpRequestReader's bounds checked after
// every read, a refusal with one of its statuses.

#include <avr_webhookd/common/http_request_reader.hpp>

#include <cstdlib>
#include <string_view>

namespace avr_webhookd::fuzz {

inline void require(bool condition) {
    if (!condition) std::abort();
}

// Calls `on_request(request)` for each complete request and `on_refused(reader)` for a refused
// one. Ends at a refusal (the server answers and closes), at a request without keep-alive, or
// when the bytes end before a request does (the server waits, within its deadline).
template <class OnRequest, class OnRefused>
void read_requests(std::string_view bytes, HttpRequestReader& reader, OnRequest on_request, OnRefused on_refused) {
    for (;;) {
        bytes.remove_prefix(reader.feed(bytes));
        require(reader.buffered() <= reader.max_buffered());
        // Parsed: a request read whole or still reading within its limit; one refused, at most one
        // buffer past it (a head never gets past its own limit).
        const bool refused = reader.state() == HttpRequestReader::State::refused;
        require(reader.request_bytes() <= reader.limits().request + (refused ? reader.max_buffered() : 0));
        if (!reader.head_done()) require(reader.request_bytes() <= reader.limits().head);
        if (reader.state() == HttpRequestReader::State::refused) {
            const unsigned status = reader.refusal_status();
            require(status == 400 || status == 413 || status == 431);
            require(!http_refusal_reason(reader.refusal()).empty() && !reader.refusal_message().empty());
            on_refused(reader);
            return;
        }
        if (reader.state() != HttpRequestReader::State::complete) return;
        on_request(reader.request());
        if (!reader.request().keep_alive()) return;
        reader.next();
    }
}

}  // namespace avr_webhookd::fuzz
