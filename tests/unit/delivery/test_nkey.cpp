// The public key of an NKey user seed, which libnats needs beside the seed file.
#include <avr_webhookd/delivery/nkey.hpp>

#include <catch2/catch.hpp>

using namespace avr_webhookd;

// Seed and public key pairs from nats-server's own tests (server/accounts_test.go).
TEST_CASE("nkey: the public key of a user seed", "[nats][nkey]") {
    CHECK(nkey_user_public_key("SUAPM67TC4RHQLKBX55NIQXSMATZDOZK6FNEOSS36CAYA7F7TY66LP4BOM") ==
          "UCNGL4W5QX66CFX6A6DCBVDH5VOHMI7B2UZZU7TXAUQQSI2JPHULCKBR");
    CHECK(nkey_user_public_key("SUAIS5JPX4X4GJ7EIIJEQ56DH2GWPYJRPWN5XJEDENJOZHCBLI7SEPUQDE") ==
          "UDPGQVFIWZ7Q5UH4I5E6DBCZULQS6VTVBG6CYBD7JV3G3N2GMQOMNAUH");
}

TEST_CASE("nkey: a seed file's first SU line, as libnats reads it", "[nats][nkey]") {
    const auto key = nkey_user_public_key_from_file_text(
        "# the fleet's publisher\n\n  SUAPM67TC4RHQLKBX55NIQXSMATZDOZK6FNEOSS36CAYA7F7TY66LP4BOM\r\n");
    CHECK(key == "UCNGL4W5QX66CFX6A6DCBVDH5VOHMI7B2UZZU7TXAUQQSI2JPHULCKBR");
    std::string error;
    CHECK_FALSE(nkey_user_public_key_from_file_text("nothing here\n", &error));
    CHECK_THAT(error, Catch::Contains("no NKey user seed"));
}

TEST_CASE("nkey: damaged seeds and other kinds of seed are refused without quoting them", "[nats][nkey]") {
    std::string error;
    // One character changed: the checksum no longer matches.
    CHECK_FALSE(nkey_user_public_key("SUAPM67TC4RHQLKBX55NIQXSMATZDOZK6FNEOSS36CAYA7F7TY66LP4BOA", &error));
    CHECK_THAT(error, Catch::Contains("checksum"));
    CHECK_FALSE(nkey_user_public_key("SUAPM67TC4RHQLKBX55NIQXSMATZDOZK6FNEOSS36", &error));
    CHECK_THAT(error, Catch::Contains("58 characters"));
    CHECK_FALSE(nkey_user_public_key("SUAPM67TC4RHQLKBX55NIQXSMATZDOZK6FNEOSS36CAYA7F7TY66LP4B0M", &error));  // '0'
    CHECK_THAT(error, !Catch::Contains("SUAPM"));
    // An operator seed (SO...) from nats-server's test configs.
    CHECK_FALSE(nkey_user_public_key("SOAFYNORQLQFJYBYNUGC5D7SH2MXMUX5BFEWWGHN3EK4VGG5TPT5DZP7QU", &error));
}
