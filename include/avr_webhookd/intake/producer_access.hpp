#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd {

// Who is on the other end of a producer connection, as the kernel reports it (SO_PEERCRED,
// plus the supplementary groups from SO_PEERGROUPS where the kernel has it).
struct PeerCredentials {
    std::int64_t pid = -1;
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;              // the peer's effective group
    std::vector<std::uint32_t> groups;  // supplementary groups; empty when unknown
};

// The credentials of the peer of connected Unix socket `fd`; nullopt when the kernel cannot say.
std::optional<PeerCredentials> peer_credentials(int fd);

// "pid 123 uid 1000 gid 1000", or "unknown peer" for logs.
std::string describe(const std::optional<PeerCredentials>& peer);

// `producer_uids` / `producer_gids`: comma-separated numeric ids, e.g. "0, 1000". nullopt when
// the text is not such a list; empty text is the empty list.
std::optional<std::vector<std::uint32_t>> parse_id_list(std::string_view text);
std::string format_id_list(const std::vector<std::uint32_t>& ids);

// The allow-list (sans-io). Both lists empty: everyone who can open the socket is served.
// Otherwise a peer is served when its uid is in `uids` or its group or one of its supplementary
// groups is in `gids`; a peer whose credentials are unknown is refused.
struct ProducerAccess {
    std::vector<std::uint32_t> uids;
    std::vector<std::uint32_t> gids;

    bool restricted() const { return !uids.empty() || !gids.empty(); }
    bool allows(const std::optional<PeerCredentials>& peer) const;
};

}  // namespace avr_webhookd
