#pragma once

#include <avr_webhookd/intake/http_intake_handler.hpp>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <optional>
#include <string_view>

namespace avr_webhookd {

// The HttpIntakeHandler's view of a request Beast parsed (the server and the fuzz target share it).
// The view refers into `request`, which must outlive it.
inline HttpIntakeRequest http_intake_request(
    const boost::beast::http::request<boost::beast::http::string_body>& request) {
    const auto field = [&request](std::string_view name) -> std::optional<std::string_view> {
        const auto found = request.find(boost::beast::string_view(name.data(), name.size()));
        if (found == request.end()) return std::nullopt;
        return std::string_view(found->value().data(), found->value().size());
    };
    return HttpIntakeRequest{std::string_view(request.method_string().data(), request.method_string().size()),
                             std::string_view(request.target().data(), request.target().size()), field("Content-Type"),
                             field("X-AVR-WEBHOOK-SECRET"), request.body()};
}

}  // namespace avr_webhookd
