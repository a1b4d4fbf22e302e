// SPDX-License-Identifier: GPL-2.0-or-later
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <random>
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

// The open-addressing sets behind the table, against a std::map model:
// random puts, erases (including backward-shift cases across the wrap)
// and finds, with growth and shrinking.
TEST(NodeSet, MatchesAMapUnderRandomOperations) {
  std::mt19937_64 rng(20261128);
  NodeSet<NodePtr, &Node::id> set;
  std::map<uint64_t, NodePtr> model;
  for (int step = 0; step < 200000; ++step) {
    // A small key range forces long probe runs and frequent re-use.
    uint64_t key = rng() % (step < 100000 ? 5000 : 300) + 1;
    switch (rng() % 3) {
      case 0: {
        auto n = std::make_shared<Node>(key, key * 3, S_IFREG);
        set.put(n);
        model[key] = n;
        break;
      }
      case 1:
        EXPECT_EQ(set.erase(key), model.erase(key) == 1);
        break;
      default: {
        const NodePtr* f = set.find(key);
        auto it = model.find(key);
        ASSERT_EQ(f != nullptr, it != model.end()) << "key " << key << " step " << step;
        if (f) {
          EXPECT_EQ(*f, it->second);
        }
      }
    }
    ASSERT_EQ(set.size(), model.size());
  }
  size_t seen = 0;
  set.for_each([&](const NodePtr& n) {
    ++seen;
    EXPECT_EQ(model.at(n->id), n);
  });
  EXPECT_EQ(seen, model.size());
}

TEST(NodeSet, EraseOfAnotherNodeWithTheKeyIsRefused) {
  NodeSet<Node*, &Node::ino> set;
  Node a(20, 7, S_IFREG), b(21, 7, S_IFREG);
  set.put(&a);
  EXPECT_FALSE(set.erase(7, &b));
  EXPECT_EQ(*set.find(7), &a);
  set.put(&b);  // a new incarnation of number 7 replaces the entry
  EXPECT_EQ(*set.find(7), &b);
  EXPECT_TRUE(set.erase(7, &b));
  EXPECT_EQ(set.find(7), nullptr);
}

TEST(LayerList, InlineAndHeapBehaveAlike) {
  for (size_t n = 0; n < 9; ++n) {
    std::vector<int> v;
    LayerList l;
    for (size_t i = 0; i < n; ++i) {
      v.push_back(static_cast<int>(i * 7));
      l.push_back(static_cast<int>(i * 7));
    }
    EXPECT_EQ(l.size(), n);
    EXPECT_TRUE(l == v);
    EXPECT_EQ(std::vector<int>(l), v);
    LayerList copy = l, moved = LayerList(v);
    EXPECT_TRUE(copy == l);
    EXPECT_TRUE(moved == l);
    copy.push_front(-1);
    v.insert(v.begin(), -1);
    EXPECT_TRUE(copy == v);
    std::sort(copy.begin(), copy.end());
    EXPECT_EQ(copy[0], -1);
    l = copy;  // self-contained copies: changing one leaves the other
    copy.clear();
    EXPECT_TRUE(copy.empty());
    EXPECT_EQ(l.size(), n + 1);
  }
  LayerList one = {4};
  EXPECT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0], 4);
  one = {1, 2, 3, 4, 5};
  EXPECT_EQ(one[4], 5);
}

// The node lock serializes; a waiter sleeps and is woken (many threads
// on few cores exercise the contended path).
TEST(SmallMutex, ExcludesAndWakes) {
  SmallMutex mu;
  long counter = 0;
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) {
        std::lock_guard<SmallMutex> g(mu);
        ++counter;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, 800000);
  EXPECT_TRUE(mu.try_lock());
  EXPECT_FALSE(mu.try_lock());
  mu.unlock();
}
