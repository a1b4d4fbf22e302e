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
