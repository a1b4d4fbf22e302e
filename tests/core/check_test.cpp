// SPDX-License-Identifier: GPL-2.0-or-later
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "aufs_fuse/check.hpp"
#include "aufs_fuse/union_fs.hpp"
#include "support/tempdir.hpp"

using namespace aufs;
using namespace aufs::test;

namespace {

void corrupt(const TempDir& t) {
  mkdirs(t / "b/d");
  write_file(t / "b/d/f", "f");
  write_file(t / "b/d/.wh.f", "", 0444);                 // name + whiteout
  write_file(t / "b/d/.wh..wh.g.0a1b", "half a copy");   // copy-up temp
  mkdirs(t / "b/.wh..wh.x.ffff/inner");                  // rmdir temp
  write_file(t / "b/.wh..wh.x.ffff/inner/.wh.y", "");
  mkdirs(t / "b/.wh.baddir");                            // whiteout that is a dir
  write_file(t / "b/.wh.notempty", "data");              // non-empty whiteout
  mkdirs(t / "b/.wh..wh.plnk");
  write_file(t / "b/.wh..wh.plnk/123.456", "");         // kernel-AUFS pseudo-link
  write_file(t / "b/.wh..wh.plnk/98765", "");            // aufs-fuse record: kept
  mkdirs(t / "b/.wh..wh.orph");
  write_file(t / "b/ok", "ok");
  write_file(t / "b/.wh.gone", "");                      // fine: nothing named gone
}

std::vector<std::string> kinds(const CheckReport& r, bool fixed_only = false) {
  std::vector<std::string> v;
  for (auto& i : r.issues)
    if (!fixed_only || i.fixed) v.push_back(std::string(kind_name(i.kind)) + ":" + i.path);
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST(Check, ReportsWithoutFixing) {
  TempDir t;
  corrupt(t);
  auto r = check_branch(t / "b", false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(kinds(r.value()),
            (std::vector<std::string>{"bad-whiteout:.wh.baddir", "bad-whiteout:.wh.notempty",
                                      "name-and-whiteout:d/.wh.f",
                                      "stale-pseudo-link:.wh..wh.plnk/123.456",
                                      "temporary-leftover:.wh..wh.x.ffff",
                                      "temporary-leftover:d/.wh..wh.g.0a1b"}));
  EXPECT_TRUE(exists(t / "b/d/.wh.f"));
  EXPECT_TRUE(exists(t / "b/d/.wh..wh.g.0a1b"));
}

TEST(Check, FixRepairsWhatIsSafe) {
  TempDir t;
  corrupt(t);
  auto r = check_branch(t / "b", true, true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(kinds(r.value(), true).size(), 4u);
  EXPECT_FALSE(exists(t / "b/d/.wh.f"));
  EXPECT_TRUE(exists(t / "b/d/f"));
  EXPECT_FALSE(exists(t / "b/d/.wh..wh.g.0a1b"));
  EXPECT_FALSE(exists(t / "b/.wh..wh.x.ffff"));
  EXPECT_FALSE(exists(t / "b/.wh..wh.plnk/123.456"));
  EXPECT_TRUE(exists(t / "b/.wh..wh.plnk/98765"));
  EXPECT_TRUE(exists(t / "b/.wh.baddir")) << "never guessed at";
  EXPECT_TRUE(exists(t / "b/.wh.gone"));
  auto again = check_branch(t / "b", false);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->issues.size(), 2u);  // the two bad whiteouts
}

TEST(Check, MountRepairsRwBranchesOnly) {
  TempDir t;
  mkdirs(t / "rw");
  mkdirs(t / "ro");
  mkdirs(t / "mnt");
  write_file(t / "rw/.wh..wh.a.0001", "x");
  write_file(t / "ro/.wh..wh.b.0002", "x");
  mkdirs(t / "rw/.wh..wh.plnk");
  write_file(t / "rw/.wh..wh.plnk/1.2", "");
  auto p = parse_command_line({"-o", "br=" + (t / "rw") + ":" + (t / "ro"), t / "mnt"});
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(validate_options(p.opts), "");
  auto u = Union::mount(p.opts);
  ASSERT_TRUE(u.ok());
  EXPECT_FALSE(exists(t / "rw/.wh..wh.a.0001"));
  EXPECT_TRUE(exists(t / "ro/.wh..wh.b.0002"));
  EXPECT_TRUE(exists(t / "rw/.wh..wh.plnk/1.2")) << "mount never drops pseudo-links";
}

TEST(Check, NochkLeavesLeftovers) {
  TempDir t;
  mkdirs(t / "rw");
  mkdirs(t / "mnt");
  write_file(t / "rw/.wh..wh.a.0001", "x");
  auto p = parse_command_line({"-o", "br=" + (t / "rw") + ",nochk", t / "mnt"});
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(validate_options(p.opts), "");
  auto u = Union::mount(p.opts);
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(exists(t / "rw/.wh..wh.a.0001"));
}
