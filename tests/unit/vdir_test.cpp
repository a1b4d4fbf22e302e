// SPDX-License-Identifier: GPL-2.0-or-later
#include <dirent.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "aufs_fuse/vdir.hpp"

using namespace aufs;

namespace {
BranchListing L(int b, bool wh_able, std::vector<std::string> names, bool own_hides = true) {
  BranchListing l;
  l.branch = b;
  l.wh_able = wh_able;
  l.own_wh_hides = own_hides;
  ino_t i = 100 * static_cast<ino_t>(b + 1);
  for (auto& n : names) l.entries.push_back({n, ++i, DT_REG});
  return l;
}
std::vector<std::string> names(const std::vector<VEntry>& v) {
  std::vector<std::string> r;
  for (auto& e : v) r.push_back(e.name);
  std::sort(r.begin(), r.end());
  return r;
}
}  // namespace

TEST(Vdir, DedupTopWins) {
  auto m = merge_listings({L(0, true, {"a", "b"}), L(1, false, {"b", "c"})});
  EXPECT_EQ(names(m), (std::vector<std::string>{"a", "b", "c"}));
  auto b = std::find_if(m.begin(), m.end(), [](auto& e) { return e.name == "b"; });
  EXPECT_EQ(b->branch, 0);
}

TEST(Vdir, WhiteoutsHideLowerAndAreNeverListed) {
  auto m = merge_listings({L(0, true, {".wh.b", "a", ".wh..wh.aufs", ".wh..wh..opq"}),
                           L(1, false, {"b", "c"})});
  EXPECT_EQ(names(m), (std::vector<std::string>{"a", "c"}));
}

TEST(Vdir, PlainRoBranchWhiteoutsDoNotHideButStayInvisible) {
  auto m = merge_listings({L(0, true, {"a"}), L(1, false, {".wh.c", "x"}), L(2, false, {"c"})});
  EXPECT_EQ(names(m), (std::vector<std::string>{"a", "c", "x"}));
}

TEST(Vdir, RoWhBranchWhiteoutsHide) {
  auto m = merge_listings({L(0, true, {"a"}), L(1, true, {".wh.c", "x"}), L(2, false, {"c"})});
  EXPECT_EQ(names(m), (std::vector<std::string>{"a", "x"}));
}

TEST(Vdir, OwnBranchWhiteoutHidesOwnEntryOnReadOnlyBranch) {
  auto m = merge_listings({L(0, true, {}), L(1, true, {".wh.c", "c"}), L(2, false, {"d"})});
  EXPECT_EQ(names(m), (std::vector<std::string>{"d"}));
}

TEST(Vdir, RwBranchRealEntryWinsOverOwnWhiteout) {
  auto m = merge_listings({L(0, true, {".wh.c", "c"}, false), L(1, false, {"c", "d"})});
  EXPECT_EQ(names(m), (std::vector<std::string>{"c", "d"}));
  EXPECT_EQ(m[0].branch, 0);
}

TEST(Vdir, LongNamesListedAsUnknownType) {
  auto m = merge_listings({L(0, true, {std::string(243, 'x'), "y"})});
  for (auto& e : m) EXPECT_EQ(e.type, e.name.size() > 242 ? DT_UNKNOWN : DT_REG);
}

TEST(Vdir, BottomBranchWhiteoutsAreIrrelevant) {
  auto m = merge_listings({L(0, true, {"a"}), L(1, true, {".wh.a"})});
  EXPECT_EQ(names(m), (std::vector<std::string>{"a"}));
}

TEST(Vdir, ShwhShowsWhiteoutsButNotMetadata) {
  auto m = merge_listings({L(0, true, {".wh.b", "a", ".wh..wh.aufs", ".wh..wh.plnk", ".wh..wh.x.0001",
                                       ".wh..wh..opq"}),
                           L(1, false, {"b", "c"})},
                          true);
  EXPECT_EQ(names(m), (std::vector<std::string>{".wh..wh..opq", ".wh.b", "a", "c"}));
}
