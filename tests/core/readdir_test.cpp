// SPDX-License-Identifier: GPL-2.0-or-later
// Core tier (listings: shwh, the rdcache and its budget, nodirperm1, readdirplus).
#include "union_fixture.hpp"

using namespace aufs;
using namespace aufs::test;

TEST_F(UnionTest, ShwhListsWhiteouts) {
  make_branches({"ro+wh", "ro"});
  write_file(br(0) + "/.wh.gone", "", 0444);
  write_file(br(1) + "/gone", "g");
  write_file(br(1) + "/kept", "k");
  mount("ro,shwh");
  EXPECT_EQ(ls(""), (std::vector<std::string>{".wh.gone", "kept"}));
  EXPECT_TRUE(walk(".wh.gone").ok()) << "shwh: whiteouts can be looked at";
  EXPECT_EQ(walk("gone").err(), ENOENT) << "and they still hide";
}

TEST_F(UnionTest, ListingCacheSeesChangesFromBothSides) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "a");
  mount("rdcache=60");
  EXPECT_EQ(ls(""), std::vector<std::string>{"a"});
  EXPECT_EQ(create("b"), 0);
  EXPECT_EQ(ls(""), (std::vector<std::string>{"a", "b"})) << "change through the union";
  ::usleep(20000);  // a new mtime tick for the direct edit
  write_file(br(1) + "/c", "c");
  EXPECT_EQ(ls(""), (std::vector<std::string>{"a", "b", "c"})) << "direct branch edit";
}

// Kept listings are bounded in entries (65,536; 1,000 here), not only in
// time: the oldest go first, and a listing built again after eviction is
// complete.
TEST_F(UnionTest, ListingCacheIsBoundedInEntries) {
  make_branches({"rw", "ro"});
  for (int d = 0; d < 4; ++d) {
    std::string dir = br(1) + "/d" + std::to_string(d);
    mkdirs(dir);
    for (int i = 0; i < 300; ++i) {
      int fd = ::open((dir + "/f" + std::to_string(i)).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      ASSERT_GE(fd, 0);
      ::close(fd);
    }
  }
  mount("rdcache=600");
  fs->set_listing_budget(1000);
  auto cached = [&] {
    std::string j = fs->info_json();
    auto at = j.find("\"listing_cache_entries\":");
    EXPECT_NE(at, std::string::npos) << j;
    return at == std::string::npos ? -1L : std::stol(j.substr(at + 24));
  };
  EXPECT_EQ(cached(), 0);
  EXPECT_EQ(ls("d0").size(), 300u);
  EXPECT_EQ(cached(), 300);
  for (int d = 1; d < 4; ++d) EXPECT_EQ(ls("d" + std::to_string(d)).size(), 300u);
  EXPECT_EQ(cached(), 900) << "d0 dropped, d1..d3 kept";
  EXPECT_EQ(ls("d0").size(), 300u) << "an evicted listing is built again";
  EXPECT_EQ(cached(), 900) << "d1 dropped";
  // A listing over the whole budget is still kept, alone.
  std::string big = br(1) + "/big";
  mkdirs(big);
  for (int i = 0; i < 1200; ++i) write_file(big + "/f" + std::to_string(i), "");
  EXPECT_EQ(ls("big").size(), 1200u);
  EXPECT_EQ(cached(), 1200);
  // A directory changed and listed again replaces its listing: the old one
  // is freed (and the big one goes, over budget).
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(create("d3/new" + std::to_string(i)), 0);
    ASSERT_EQ(ls("d3").size(), 301u + static_cast<size_t>(i));
    ASSERT_EQ(cached(), 301 + i);
  }
}

TEST_F(UnionTest, NoDirPerm1ChecksEveryBranchCopy) {
  make_branches({"rw", "ro"});
  mkdirs(br(0) + "/d");
  ::chmod((br(0) + "/d").c_str(), 0755);
  mkdirs(br(1) + "/d");
  write_file(br(1) + "/d/f", "f");
  ::chmod((br(1) + "/d").c_str(), 0700);  // root-only lower copy
  mount();
  Ctx user;
  user.uid = 4321;
  user.gid = 4321;
  user.have_groups = true;
  NodeId d = dir("d");
  EXPECT_EQ(fs->lookup(d, "f", &user).err(), EACCES);
  EXPECT_EQ(fs->opendir(d, &user).err(), EACCES);
  EXPECT_TRUE(fs->lookup(d, "f", nullptr).ok()) << "root / no caller: allowed";
  fs.reset();
  mount("dirperm1");
  d = dir("d");
  EXPECT_TRUE(fs->lookup(d, "f", &user).ok()) << "dirperm1: top copy only";
  EXPECT_TRUE(fs->opendir(d, &user).ok());
}

// readdirplus looks up a reply's entries in one batch, with the directory
// opened once per branch: each result must equal a lookup of the name.
TEST_F(UnionTest, BatchedEntryLookupsMatchSingleLookups) {
  make_branches({"rw", "ro+wh", "ro"});
  mkdirs(br(0) + "/d/both");
  mkdirs(br(1) + "/d/both/x");
  mkdirs(br(2) + "/d/both/y");
  mkdirs(br(1) + "/d/opq");
  write_file(br(1) + "/d/opq/.wh..wh..opq", "", 0444);
  mkdirs(br(2) + "/d/opq/hidden");
  write_file(br(0) + "/d/top", "top");
  write_file(br(1) + "/d/mid", "mid");
  write_file(br(2) + "/d/mid", "shadowed");
  write_file(br(2) + "/d/low", "low");
  write_file(br(2) + "/d/gone", "gone");
  write_file(br(1) + "/d/.wh.gone", "", 0444);
  mkdirs(br(2) + "/d/typed");  // a file above a directory: the file wins
  write_file(br(1) + "/d/typed", "file");
  mount();
  auto dh = fs->opendir(walk("d")->id);
  ASSERT_TRUE(dh.ok());
  // The listing's entries plus a whited-out and a missing name.
  std::vector<VEntry> extra{VEntry{}, VEntry{}};
  extra[0].name = "gone";
  extra[1].name = "nothing";
  std::vector<const VEntry*> es;
  for (auto& e : dh.value()->entries) es.push_back(&e);
  for (auto& e : extra) es.push_back(&e);
  ASSERT_EQ(es.size(), 8u) << ::testing::PrintToString(ls("d"));  // both low mid opq top typed + 2
  auto got = fs->lookup_entries(*dh.value(), es.data(), es.size());
  ASSERT_EQ(got.size(), es.size());
  NodeId d = walk("d")->id;
  for (size_t i = 0; i < es.size(); ++i) {
    auto one = fs->lookup(d, es[i]->name);
    ASSERT_EQ(got[i].ok(), one.ok()) << es[i]->name;
    if (!one.ok()) {
      EXPECT_EQ(got[i].err(), one.err()) << es[i]->name;
      EXPECT_EQ(one.err(), ENOENT) << es[i]->name;
      continue;
    }
    EXPECT_EQ(got[i]->id, one->id) << es[i]->name;
    EXPECT_EQ(got[i]->attr.st_ino, one->attr.st_ino) << es[i]->name;
    EXPECT_EQ(got[i]->attr.st_mode, one->attr.st_mode) << es[i]->name;
    EXPECT_EQ(got[i]->attr.st_size, one->attr.st_size) << es[i]->name;
  }
  EXPECT_EQ(ls("d/both"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(ls("d/opq"), std::vector<std::string>{});
  EXPECT_EQ(cat("d/mid"), "mid");
  EXPECT_TRUE(S_ISREG(walk("d/typed")->attr.st_mode));
}
