#include <gtest/gtest.h>
#include <sys/stat.h>

#include <thread>
#include <vector>

#include "aufs_fuse/node.hpp"

using namespace aufs;

TEST(InodeTable, LookupForgetAccounting) {
  InodeTable t;
  auto n = t.find_or_insert(100, S_IFREG, 1);
  EXPECT_NE(n->id, 100u) << "node ids are not inode numbers";
  EXPECT_EQ(n->ino, 100u);
  EXPECT_EQ(t.find_or_insert(100, S_IFREG, 2), n);  // existing node wins
  EXPECT_EQ(n->nlookup.load(), 3u);
  EXPECT_EQ(t.by_ino(100), n);
  EXPECT_EQ(t.forget(n->id, 2), nullptr);
  auto last = t.forget(n->id, 1);
  ASSERT_EQ(last, n);
  EXPECT_TRUE(t.erase_if_unused(n->id, 0));
  EXPECT_EQ(t.get(n->id), nullptr);
  EXPECT_EQ(t.by_ino(100), nullptr);
  EXPECT_EQ(t.size(), 0u);
}

TEST(InodeTable, NewIncarnationGetsNewId) {
  InodeTable t;
  auto a = t.find_or_insert(7, S_IFREG, 1);
  // Same number, other type (changed behind the mount): a new node.
  auto b = t.find_or_insert(7, S_IFDIR, 1);
  EXPECT_NE(a->id, b->id);
  EXPECT_EQ(t.get(a->id), a) << "the kernel may still use the old id";
  EXPECT_EQ(t.by_ino(7), b);
  // Retired (last name removed): the number's next lookup is a new node.
  t.retire(b);
  auto c = t.find_or_insert(7, S_IFDIR, 1);
  EXPECT_NE(c->id, b->id);
  EXPECT_EQ(t.size(), 3u);
}

TEST(InodeTable, ForgetNeverGoesNegativeAndKeepsChildren) {
  InodeTable t;
  auto n = t.find_or_insert(7, S_IFDIR, 1);
  EXPECT_EQ(t.forget(n->id, 5), n);
  EXPECT_EQ(n->nlookup.load(), 0u);
  EXPECT_FALSE(t.erase_if_unused(n->id, 1));  // a child still points at it
  EXPECT_TRUE(t.erase_if_unused(n->id, 0));
}

TEST(InodeTable, ConcurrentLookupsAndForgetsBalance) {
  InodeTable t;
  constexpr int kThreads = 4, kIters = 20000;
  std::vector<std::thread> th;
  for (int i = 0; i < kThreads; ++i)
    th.emplace_back([&] {
      for (int k = 0; k < kIters; ++k) {
        uint64_t ino = 16 + static_cast<uint64_t>(k % 64);
        auto n = t.find_or_insert(ino, S_IFREG, 1);
        if (t.forget(n->id, 1)) t.erase_if_unused(n->id, 0);
      }
    });
  for (auto& x : th) x.join();
  EXPECT_EQ(t.size(), 0u);
}
