#include <avr_webhookd/intake/producer_access.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

namespace avr_webhookd {

std::optional<PeerCredentials> peer_credentials(int fd) {
    ucred credentials{};
    socklen_t length = sizeof credentials;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0 || length != sizeof credentials)
        return std::nullopt;
    PeerCredentials peer;
    peer.pid = credentials.pid;
    peer.uid = credentials.uid;
    peer.gid = credentials.gid;
#ifdef SO_PEERGROUPS
    // Producers are usually let in by a supplementary group (group avr), not their own one.
    std::vector<gid_t> groups(64);
    for (int tries = 0; tries < 4; ++tries) {
        length = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &length) == 0) {
            groups.resize(length / sizeof(gid_t));
            peer.groups.assign(groups.begin(), groups.end());
            break;
        }
        if (errno != ERANGE || length / sizeof(gid_t) > 65536) break;
        groups.resize(length / sizeof(gid_t));
    }
#endif
    return peer;
}

std::string describe(const std::optional<PeerCredentials>& peer) {
    if (!peer) return "unknown peer";
    return "pid " + std::to_string(peer->pid) + " uid " + std::to_string(peer->uid) + " gid " +
           std::to_string(peer->gid);
}

std::optional<std::vector<std::uint32_t>> parse_id_list(std::string_view text) {
    std::vector<std::uint32_t> ids;
    auto trim = [](std::string_view part) {
        while (!part.empty() && (part.front() == ' ' || part.front() == '\t')) part.remove_prefix(1);
        while (!part.empty() && (part.back() == ' ' || part.back() == '\t')) part.remove_suffix(1);
        return part;
    };
    if (trim(text).empty()) return ids;
    for (;;) {
        const auto comma = text.find(',');
        const auto item = trim(text.substr(0, comma));
        std::uint32_t id = 0;
        const auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), id);
        // 4294967295 is (uid_t)-1, "no user": never a real peer.
        if (item.empty() || error != std::errc{} || end != item.data() + item.size() || id == UINT32_MAX)
            return std::nullopt;
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
        if (comma == std::string_view::npos) return ids;
        text.remove_prefix(comma + 1);
    }
}

std::string format_id_list(const std::vector<std::uint32_t>& ids) {
    std::string out;
    for (const auto id : ids) out += (out.empty() ? "" : ",") + std::to_string(id);
    return out;
}

bool ProducerAccess::allows(const std::optional<PeerCredentials>& peer) const {
    if (!restricted()) return true;
    if (!peer) return false;
    auto listed = [](const std::vector<std::uint32_t>& list, std::uint32_t id) {
        return std::find(list.begin(), list.end(), id) != list.end();
    };
    if (listed(uids, peer->uid) || listed(gids, peer->gid)) return true;
    return std::any_of(peer->groups.begin(), peer->groups.end(),
                       [&](std::uint32_t group) { return listed(gids, group); });
}

}  // namespace avr_webhookd
