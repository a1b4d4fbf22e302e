// SPDX-License-Identifier: GPL-2.0-or-later
#include <gtest/gtest.h>

#include <set>

#include "aufs_fuse/xino.hpp"

using namespace aufs;

TEST(Xino, DeterministicPerBranchAndIno) {
  uint64_t s1 = branch_seed("/a"), s2 = branch_seed("/b");
  EXPECT_NE(s1, s2);
  EXPECT_EQ(hash_ino(s1, 42), hash_ino(s1, 42));
  EXPECT_NE(hash_ino(s1, 42), hash_ino(s2, 42));
  EXPECT_NE(hash_ino(s1, 42), hash_ino(s1, 43));
}

TEST(Xino, NeverReservedNorNegative) {
  uint64_t s = branch_seed("/x");
  for (uint64_t i = 0; i < 100000; ++i) {
    uint64_t v = hash_ino(s, i);
    ASSERT_GE(v, kFirstIno);
    ASSERT_LT(v, 1ULL << 63);
  }
}

TEST(Xino, NoCollisionsInAMillionSmoke) {
  uint64_t s = branch_seed("/big");
  std::set<uint64_t> seen;
  for (uint64_t i = 1; i <= 1000000; ++i) ASSERT_TRUE(seen.insert(hash_ino(s, i)).second) << i;
}

TEST(Xino, AliasKeepsNumberAcrossCopyUp) {
  Xino x;
  uint64_t lower = branch_seed("/lower"), upper = branch_seed("/upper");
  uint64_t orig = x.get(lower, 7);
  x.alias(upper, 99, orig);
  EXPECT_EQ(x.get(upper, 99), orig);
  EXPECT_EQ(x.alias_count(), 1u);
  x.unalias(upper, 99);
  EXPECT_NE(x.get(upper, 99), orig);
  // Recording the natural value marks the inode as looked at.
  EXPECT_FALSE(x.find(upper, 5).has_value());
  x.alias(upper, 5, hash_ino(upper, 5));
  EXPECT_EQ(x.find(upper, 5), hash_ino(upper, 5));
}

// Numbers read from a branch are a cache: bounded, and emptied when full;
// aliases from copy-up stay whatever the cache does.
TEST(Xino, RememberedNumbersAreBoundedAliasesStay) {
  Xino x;
  uint64_t up = branch_seed("/upper");
  x.alias(up, 1, 777);
  x.remember(up, 2, 888);                  // a recorded number
  x.remember(up, 3, hash_ino(up, 3));      // the natural one
  EXPECT_EQ(x.find(up, 2), 888u);
  EXPECT_EQ(x.find(up, 3), hash_ino(up, 3));
  EXPECT_EQ(x.alias_count(), 2u) << "the alias and the recorded number";
  x.remember(up, 1, 5);  // an alias wins over a read
  EXPECT_EQ(x.find(up, 1), 777u);
  for (ino_t i = 10; i < 10 + 3 * Xino::kRememberMax; ++i) x.remember(up, i, hash_ino(up, i));
  EXPECT_LE(x.remembered(), Xino::kRememberMax);
  EXPECT_EQ(x.find(up, 1), 777u);
  EXPECT_FALSE(x.find(up, 2).has_value()) << "dropped: the branch is read again";
  EXPECT_EQ(x.alias_count(), 1u);
  x.unalias_if(up, 1, 777);
  EXPECT_FALSE(x.find(up, 1).has_value());
  EXPECT_EQ(x.alias_count(), 0u);
}
