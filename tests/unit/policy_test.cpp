// SPDX-License-Identifier: GPL-2.0-or-later
#include <gtest/gtest.h>

#include <map>

#include "aufs_fuse/policy.hpp"

using namespace aufs;

namespace {

// Branch kinds by letter: 'w' writable, 'r' read-only. `parent` marks the
// branches holding the parent directory.
BranchFacts F(const std::string& kinds, const std::string& parent, std::map<int, uint64_t> free = {},
              int shadow = -1) {
  BranchFacts f;
  for (size_t i = 0; i < kinds.size(); ++i) {
    f.writable.push_back(kinds[i] == 'w');
    f.has_parent.push_back(parent[i] == 'p');
  }
  f.parent_top = static_cast<int>(parent.find('p'));
  f.shadow = shadow;
  f.free_bytes = [free](int b) {
    auto it = free.find(b);
    return it == free.end() ? uint64_t{0} : it->second;
  };
  return f;
}

PolicyState P(const std::string& create, const std::string& cpup = "tdp") {
  PolicyConfig c;
  EXPECT_EQ(parse_create_policy(create, c), "");
  EXPECT_EQ(parse_cpup_policy(cpup, c), "");
  return PolicyState(c);
}

}  // namespace

TEST(Policy, Parse) {
  PolicyConfig c;
  EXPECT_EQ(parse_create_policy("mfsrr:1000:5", c), "");
  EXPECT_EQ(c.create, CreatePolicy::MfsRr);
  EXPECT_EQ(c.low, 1000u);
  EXPECT_EQ(c.mfs_sec, 5);
  EXPECT_EQ(format_policies(c), "create=mfsrr:1000:5,cpup=tdp");
  EXPECT_EQ(parse_create_policy("most-free-space:7", c), "");
  EXPECT_EQ(c.create, CreatePolicy::Mfs);
  EXPECT_EQ(parse_cpup_policy("bottom-up-parent", c), "");
  EXPECT_EQ(c.cpup, CpupPolicy::Bup);
  EXPECT_NE(parse_create_policy("tdp:3", c), "");
  EXPECT_NE(parse_create_policy("pmfs:9999", c), "");
}

TEST(Policy, TdpCreate) {
  auto p = P("tdp");
  EXPECT_EQ(p.select_create(F("wrw", "ppp"), false, 0), 0);   // parent's top writable
  EXPECT_EQ(p.select_create(F("rww", "ppp"), false, 0), 1);   // first writable holding it
  EXPECT_EQ(p.select_create(F("wrw", "-pp"), false, 0), 2);   // below the parent's top
  EXPECT_EQ(p.select_create(F("wrr", "-pp"), false, 0), 0);   // above: ancestors copied up
  EXPECT_EQ(p.select_create(F("rrr", "ppp"), false, 0), -1);  // EROFS
  // Never below a whiteout of the name: branch 0 holds .wh.NAME.
  EXPECT_EQ(p.select_create(F("rww", "ppp", {}, 0), false, 0), -1);
  EXPECT_EQ(p.select_create(F("wrw", "-pp", {}, 1), false, 0), 0);
}

TEST(Policy, RoundRobinSkipsMkdir) {
  auto p = P("rr");
  auto f = F("wrww", "pppp");
  EXPECT_EQ(p.select_create(f, false, 0), 0);
  EXPECT_EQ(p.select_create(f, false, 0), 2);
  EXPECT_EQ(p.select_create(f, true, 0), 3);   // mkdir: no advance
  EXPECT_EQ(p.select_create(f, true, 0), 3);
  EXPECT_EQ(p.select_create(f, false, 0), 3);
  EXPECT_EQ(p.select_create(f, false, 0), 0);
  // Override: the name is whited out on branch 1, so land at or above it.
  EXPECT_EQ(p.select_create(F("wrww", "pppp", {}, 1), false, 0), 0);
}

TEST(Policy, MostFreeSpaceCachesForSeconds) {
  auto p = P("mfs:10");
  EXPECT_EQ(p.select_create(F("wwrw", "pppp", {{0, 5}, {1, 50}, {3, 20}}), false, 100), 1);
  // Within 10 s the answer is reused even if free space changed.
  EXPECT_EQ(p.select_create(F("wwrw", "pppp", {{0, 500}, {1, 50}, {3, 20}}), false, 105), 1);
  EXPECT_EQ(p.select_create(F("wwrw", "pppp", {{0, 500}, {1, 50}, {3, 20}}), false, 111), 0);
}

TEST(Policy, MfsRrFallsBackBelowLow) {
  auto p = P("mfsrr:100:0");
  EXPECT_EQ(p.select_create(F("ww", "pp", {{0, 500}, {1, 50}}), false, 0), 0);
  auto q = P("mfsrr:1000:0");
  EXPECT_EQ(q.select_create(F("ww", "pp", {{0, 500}, {1, 50}}), false, 0), 0);  // rr: first
  EXPECT_EQ(q.select_create(F("ww", "pp", {{0, 500}, {1, 50}}), false, 0), 1);  // rr: next
}

TEST(Policy, TdmfsTopMostAboveLow) {
  auto p = P("tdmfs:100:0");
  EXPECT_EQ(p.select_create(F("www", "ppp", {{0, 50}, {1, 200}, {2, 900}}), false, 0), 1);
  EXPECT_EQ(p.select_create(F("www", "ppp", {{0, 50}, {1, 60}, {2, 70}}), false, 0), 2);  // mfs
  // Bounded by a whiteout on branch 0: only branch 0 is allowed.
  EXPECT_EQ(p.select_create(F("www", "ppp", {{0, 50}, {1, 200}}, 0), false, 0), 0);
}

TEST(Policy, PmfsPrefersParentHolders) {
  auto p = P("pmfs:0");
  EXPECT_EQ(p.select_create(F("www", "-pp", {{0, 900}, {1, 10}, {2, 20}}), false, 0), 2);
  EXPECT_EQ(p.select_create(F("wwr", "--p", {{0, 900}, {1, 10}}), false, 0), 1);  // tdp
  auto q = P("pmfsrr:100:0");
  EXPECT_EQ(q.select_create(F("www", "-pp", {{0, 900}, {1, 10}, {2, 20}}), false, 0), 0);
}

TEST(Policy, CopyUp) {
  auto tdp = P("tdp", "tdp");
  auto bup = P("tdp", "bup");
  auto bu = P("tdp", "bu");
  // Source on a writable branch: modified in place.
  EXPECT_EQ(tdp.select_cpup(F("wrwr", "pppp"), 2), 2);
  // Source on 3; parent on 0 and 3 only.
  auto f = F("wwwr", "p--p");
  EXPECT_EQ(tdp.select_cpup(f, 3), 0);  // top-down: highest holding the parent
  EXPECT_EQ(bup.select_cpup(f, 3), 0);  // bottom-up: nearest above holding it
  EXPECT_EQ(bu.select_cpup(f, 3), 2);   // bottom-up, parent ignored
  auto g = F("wwwr", "-p-p");
  g.parent_top = 1;
  EXPECT_EQ(tdp.select_cpup(g, 3), 1);
  EXPECT_EQ(bup.select_cpup(g, 3), 1);
  EXPECT_EQ(bu.select_cpup(F("rrr", "ppp"), 2), -1);
}
