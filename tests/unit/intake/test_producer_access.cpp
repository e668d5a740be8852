#include <avr_webhookd/intake/producer_access.hpp>

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

using namespace avr_webhookd;

TEST_CASE("producer id lists parse comma-separated numeric ids", "[producer_access][config]") {
    CHECK(parse_id_list("") == std::vector<std::uint32_t>{});
    CHECK(parse_id_list("  ") == std::vector<std::uint32_t>{});
    CHECK(parse_id_list("0") == std::vector<std::uint32_t>{0});
    CHECK(parse_id_list("1000, 0 ,10001") == std::vector<std::uint32_t>{1000, 0, 10001});
    CHECK(parse_id_list("5,5,6") == std::vector<std::uint32_t>{5, 6});  // duplicates once
    CHECK(parse_id_list("4294967294") == std::vector<std::uint32_t>{4294967294u});
    for (const char* bad : {"-1", "4294967295", "4294967296", "abc", "1,", ",1", "1,,2", "1 2", "0x10", "+1", "1.5"}) {
        INFO(bad);
        CHECK_FALSE(parse_id_list(bad).has_value());
    }
    CHECK(format_id_list({1000, 0}) == "1000,0");
}

TEST_CASE("producer allow-list: uid or any group of the peer", "[producer_access]") {
    PeerCredentials peer;
    peer.pid = 42;
    peer.uid = 1000;
    peer.gid = 1000;
    peer.groups = {1000, 10001};

    CHECK(ProducerAccess{}.allows(peer));
    CHECK(ProducerAccess{}.allows(std::nullopt));  // unrestricted: whoever can open the socket
    CHECK(ProducerAccess{{1000}, {}}.allows(peer));
    CHECK_FALSE(ProducerAccess{{0}, {}}.allows(peer));
    CHECK(ProducerAccess{{}, {1000}}.allows(peer));    // effective group
    CHECK(ProducerAccess{{0}, {10001}}.allows(peer));  // supplementary group
    CHECK_FALSE(ProducerAccess{{0}, {0, 5}}.allows(peer));
    CHECK_FALSE(ProducerAccess{{1000}, {}}.allows(std::nullopt));  // restricted and unknown: refused
    CHECK(describe(peer) == "pid 42 uid 1000 gid 1000");
    CHECK(describe(std::nullopt) == "unknown peer");
}

TEST_CASE("peer credentials of a socket pair are this process's", "[producer_access]") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    const auto peer = peer_credentials(fds[0]);
    ::close(fds[0]);
    ::close(fds[1]);
    REQUIRE(peer);
    CHECK(peer->pid == ::getpid());
    CHECK(peer->uid == ::geteuid());
    CHECK(peer->gid == ::getegid());
    CHECK(ProducerAccess{{static_cast<std::uint32_t>(::geteuid())}, {}}.allows(peer));
}
