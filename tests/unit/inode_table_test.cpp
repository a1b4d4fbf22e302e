#include <gtest/gtest.h>
#include <sys/stat.h>

#include <thread>
#include <vector>

#include "aufs_fuse/node.hpp"

using namespace aufs;

TEST(InodeTable, LookupForgetAccounting) {
  InodeTable t;
  auto n = std::make_shared<Node>(100, 100, S_IFREG);
  auto got = t.find_or_insert(100, n, 1);
  EXPECT_EQ(got, n);
  auto other = std::make_shared<Node>(100, 100, S_IFREG);
  EXPECT_EQ(t.find_or_insert(100, other, 2), n);  // existing node wins
  EXPECT_EQ(n->nlookup.load(), 3u);
  EXPECT_EQ(t.forget(100, 2), nullptr);
  auto last = t.forget(100, 1);
  ASSERT_EQ(last, n);
  EXPECT_TRUE(t.erase_if_unused(100, 0));
  EXPECT_EQ(t.get(100), nullptr);
  EXPECT_EQ(t.size(), 0u);
}

TEST(InodeTable, ForgetNeverGoesNegativeAndKeepsChildren) {
  InodeTable t;
  auto n = std::make_shared<Node>(7, 7, S_IFDIR);
  t.find_or_insert(7, n, 1);
  EXPECT_EQ(t.forget(7, 5), n);
  EXPECT_EQ(n->nlookup.load(), 0u);
  EXPECT_FALSE(t.erase_if_unused(7, 1));  // a child still points at it
  EXPECT_TRUE(t.erase_if_unused(7, 0));
}

TEST(InodeTable, ConcurrentLookupsAndForgetsBalance) {
  InodeTable t;
  constexpr int kThreads = 4, kIters = 20000;
  std::vector<std::thread> th;
  for (int i = 0; i < kThreads; ++i)
    th.emplace_back([&] {
      for (int k = 0; k < kIters; ++k) {
        NodeId id = 16 + static_cast<NodeId>(k % 64);
        t.find_or_insert(id, std::make_shared<Node>(id, id, S_IFREG), 1);
        if (auto n = t.forget(id, 1)) t.erase_if_unused(id, 0);
      }
    });
  for (auto& x : th) x.join();
  EXPECT_EQ(t.size(), 0u);
}
