// SPDX-License-Identifier: GPL-2.0-or-later
// readdirplus=auto's choice per calling thread (fuse/plus_demand.hpp).
#include "fuse/plus_demand.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace aufs {
namespace {

TEST(PlusDemand, ANewCallerGetsNamesUntilItLooksUpWhatItWasSent) {
  PlusDemand d;
  EXPECT_FALSE(d.wants_attrs(100));
  d.sent_names(100, 50);
  for (uint32_t i = 1; i < PlusDemand::kSwitchAfter; ++i) {
    d.looked_up(100);
    EXPECT_FALSE(d.wants_attrs(100)) << i;
  }
  d.looked_up(100);
  EXPECT_TRUE(d.wants_attrs(100));
  EXPECT_TRUE(d.wants_attrs(100)) << "it stays";
  // Another thread starts over.
  EXPECT_FALSE(d.wants_attrs(101));
  auto j = nlohmann::json::parse(d.json());
  EXPECT_EQ(j["mode"], "auto");
  EXPECT_EQ(j["callers_switched_to_attributes"], 1);
  EXPECT_EQ(j["replies_with_attributes"], 2);
  EXPECT_EQ(j["replies_names_only"], 5);
  EXPECT_EQ(j["callers_sent_names_only"], 1);
}

TEST(PlusDemand, FewerNamesSentSwitchSooner) {
  PlusDemand d;
  EXPECT_FALSE(d.wants_attrs(7));
  d.sent_names(7, 2);
  d.looked_up(7);
  EXPECT_FALSE(d.wants_attrs(7));
  d.looked_up(7);
  EXPECT_TRUE(d.wants_attrs(7)) << "every name it was sent was looked up";
  // Sent no non-directory at all: its first lookup of one decides.
  EXPECT_FALSE(d.wants_attrs(8));
  d.sent_names(8, 0);
  d.looked_up(8);
  EXPECT_TRUE(d.wants_attrs(8));
}

TEST(PlusDemand, LookupsOfUnknownCallersAndOtherModesChangeNothing) {
  PlusDemand d;
  d.looked_up(5);  // never listed anything: nothing to learn, nothing kept
  EXPECT_FALSE(d.wants_attrs(5));
  EXPECT_TRUE(d.wants_attrs(0)) << "a caller without a pid in our namespace";
  PlusDemand full;
  full.configure(PlusMode::Full);
  EXPECT_TRUE(full.wants_attrs(9));
  EXPECT_EQ(nlohmann::json::parse(full.json())["mode"], "full");
}

TEST(PlusDemand, TheLeastRecentCallerIsForgottenWhenTheTableIsFull) {
  PlusDemand d;
  // Thread 1 switches, then more threads than the table holds come.
  EXPECT_FALSE(d.wants_attrs(1));
  d.sent_names(1, 1);
  d.looked_up(1);
  EXPECT_TRUE(d.wants_attrs(1));
  for (pid_t t = 2; t < static_cast<pid_t>(PlusDemand::kCallers) + 1; ++t) EXPECT_FALSE(d.wants_attrs(t));
  EXPECT_TRUE(d.wants_attrs(1)) << "still in the table, and now the most recent";
  EXPECT_FALSE(d.wants_attrs(1000));  // takes thread 2's place
  EXPECT_TRUE(d.wants_attrs(1));
  auto j = nlohmann::json::parse(d.json());
  EXPECT_EQ(j["callers_sent_names_only"], PlusDemand::kCallers - 1) << "the count follows evictions";
  // Thread 2 was forgotten: it starts over.
  d.sent_names(2, 10);
  EXPECT_FALSE(d.wants_attrs(2));
}

}  // namespace
}  // namespace aufs
