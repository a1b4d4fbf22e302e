// SPDX-License-Identifier: GPL-2.0-or-later
// The directory-part cache's store: name sets, fd accounting, eviction.
#include "core/part_cache.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace aufs::core {
namespace {

struct stat dir_stat(ino_t ino, long mtime_ns, long ctime_ns) {
  struct stat st {};
  st.st_ino = ino;
  st.st_mtim = {100, mtime_ns};
  st.st_ctim = {100, ctime_ns};
  return st;
}

TEST(NameSet, AnswersForEveryListedNameAndAlmostNoOther) {
  std::vector<sys::RawDirent> ents;
  for (int i = 0; i < 1000; ++i) ents.push_back({"name" + std::to_string(i), 0, DT_REG});
  ents.push_back({".wh.hidden", 0, DT_REG});
  auto counts = std::make_shared<PartCounts>();
  NameSet s(ents, dir_stat(7, 1, 2), counts);
  for (auto& e : ents) EXPECT_TRUE(s.may_have(e.name)) << e.name;
  int false_hits = 0;
  for (int i = 0; i < 100000; ++i) false_hits += s.may_have("other" + std::to_string(i));
  EXPECT_EQ(false_hits, 0);  // 64-bit hashes: a collision here is a bug
  EXPECT_FALSE(s.may_have("hidden"));
  EXPECT_EQ(counts->name_bytes.load(), 1001 * 8);
  EXPECT_EQ(counts->sets.load(), 1);
}

TEST(NameSet, MatchesOnlyTheDirectoryItWasReadFrom) {
  NameSet s({}, dir_stat(7, 1, 2), nullptr);
  EXPECT_TRUE(s.matches(dir_stat(7, 1, 2)));
  EXPECT_FALSE(s.matches(dir_stat(8, 1, 2)));  // another directory at the path
  EXPECT_FALSE(s.matches(dir_stat(7, 3, 2)));  // an entry added or removed
  EXPECT_FALSE(s.matches(dir_stat(7, 1, 3)));  // renamed into, or chmod
}

TEST(NameSet, BytesAreReturnedWhenFreed) {
  auto counts = std::make_shared<PartCounts>();
  {
    NameSet s({{"a", 0, DT_REG}, {"b", 0, DT_DIR}}, dir_stat(1, 0, 0), counts);
    EXPECT_EQ(counts->name_bytes.load(), 16);
  }
  EXPECT_EQ(counts->name_bytes.load(), 0);
  EXPECT_EQ(counts->sets.load(), 0);
}

TEST(PartCache, CountsDescriptorsWhileTheyLive) {
  PartCache c;
  {
    auto fd = c.adopt(UniqueFd(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)));
    ASSERT_GE(fd->get(), 0);
    EXPECT_EQ(c.counts()->fds.load(), 1);
    EXPECT_EQ(c.counts()->opens.load(), 1u);
  }
  EXPECT_EQ(c.counts()->fds.load(), 0);
}

TEST(PartCache, NameBudgetRefusesWhatDoesNotFit) {
  PartCache c;
  c.configure(64, 100, 0);
  EXPECT_TRUE(c.room_for_names(100));
  EXPECT_FALSE(c.room_for_names(101));
  EXPECT_EQ(c.counts()->over_budget.load(), 1u);
}

TEST(PartCache, OverTheFdBudgetTheOldestNodesAreGiven) {
  PartCache c;
  c.configure(16, 1 << 20, 0);
  std::vector<NodePtr> nodes;
  std::vector<std::shared_ptr<const PartFd>> fds;
  std::vector<NodePtr> victims;
  for (int i = 0; i < 40; ++i) {
    nodes.push_back(std::make_shared<Node>(100 + i, 100 + i, S_IFDIR));
    fds.push_back(c.adopt(UniqueFd(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC))));
    for (auto& v : c.remember(nodes.back())) victims.push_back(v);
    // The caller drops the victims' parts; here: their fds.
    for (auto& v : victims) fds[v->id - 100].reset();
  }
  ASSERT_FALSE(victims.empty());
  EXPECT_LE(c.counts()->fds.load(), 17);
  // First in, first out: the first victim is the first node.
  EXPECT_EQ(victims.front()->id, 100u);
  for (auto& v : victims) EXPECT_NE(v->id, 139u);  // never the node being added
}

TEST(PartCache, GenerationMovesOnInvalidation) {
  PartCache c;
  uint64_t g = c.gen();
  c.invalidate_all();
  EXPECT_NE(c.gen(), g);
}

}  // namespace
}  // namespace aufs::core
