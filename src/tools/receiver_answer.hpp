#pragma once
// Internal to src/tools/: what the test receiver answers and prints, decided without sockets.

#include <avr_webhookd/delivery/signature.hpp>
#include <avr_webhookd/tools/receiver.hpp>

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd::receiver_detail {

// The lines the specification's example handlers print for one delivery.
std::vector<std::string> describe_delivery(const boost::json::object& body);

// What to do with one request.
struct Answer {
    int status = 200;
    bool drop = false;
    bool from_switch = false;  // a failure switch chose it, not the request's content
    std::string reason;        // printed and sent as the body of a non-2xx answer
    std::string json_body;     // a 2xx answer's JSON body (a routing answer); empty: "OK"
};

// Decided from the options (failure switches apply to request numbers from 1), the method, the
// secret check and the body; `body` is nullopt when it is not a JSON object.
Answer plan_answer(const ReceiverOptions& options, std::uint64_t request_number, bool is_post,
                   const Verification& authentication, const std::optional<boost::json::object>& body);

// The body as a JSON object, or nullopt.
std::optional<boost::json::object> parse_body(std::string_view body);

}  // namespace avr_webhookd::receiver_detail
