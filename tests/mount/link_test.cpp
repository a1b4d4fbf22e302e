// SPDX-License-Identifier: GPL-2.0-or-later
// Hard links and symlinks made through the union.
#include <sys/stat.h>
#include <unistd.h>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

class Links : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw"));
    mkdirs(p("l1/dir"));
    write_file(p("l1/f"), "lower\n", 0640);
    write_file(p("l1/x"), "x\n");
    before_ = snapshot(p("l1"));
  }
  void TearDown() override {
    if (!IsSkipped() && !root().empty()) {
      EXPECT_EQ(snapshot(p("l1")), before_) << "lower branch modified";
    }
    MountTest::TearDown();
  }
  std::string before_;
};

TEST_F(Links, HardLinkOfLowerFile) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto ino0 = lstat_of(m("f"))->st_ino;
  auto r = sh("ln mnt/f mnt/g", root());
  ASSERT_TRUE(r.ok()) << r;
  // Both names on the rw branch, one inode there.
  auto bf = lstat_of(p("rw/f"));
  auto bg = lstat_of(p("rw/g"));
  ASSERT_TRUE(bf.has_value());
  ASSERT_TRUE(bg.has_value());
  EXPECT_EQ(bf->st_ino, bg->st_ino);
  EXPECT_EQ(bf->st_nlink, 2u);
  EXPECT_EQ(read_file(p("rw/g")), "lower\n");
  EXPECT_EQ(bf->st_mode & 07777, 0640u);
  // Through the mount: same st_ino (the one f had before), nlink 2.
  auto uf = lstat_of(m("f"));
  auto ug = lstat_of(m("g"));
  ASSERT_TRUE(uf.has_value());
  ASSERT_TRUE(ug.has_value());
  EXPECT_EQ(uf->st_ino, ug->st_ino);
  EXPECT_EQ(uf->st_ino, ino0);
  EXPECT_EQ(uf->st_nlink, 2u);
  EXPECT_EQ(ug->st_nlink, 2u);
  // Writing through one name shows through the other.
  ASSERT_TRUE(append_file(m("g"), "via g\n"));
  EXPECT_EQ(read_file(m("f")), "lower\nvia g\n");
  // Removing one name leaves the other with nlink 1 (f has a lower copy:
  // whiteout).
  ASSERT_SYS_OK(::unlink(m("f").c_str()));
  EXPECT_EQ(lstat_errno(m("f")), ENOENT);
  EXPECT_TRUE(exists(p("rw/.wh.f")));
  EXPECT_EQ(lstat_of(m("g"))->st_nlink, 1u);
  EXPECT_EQ(read_file(m("g")), "lower\nvia g\n");
}

TEST_F(Links, HardLinkIntoLowerDirAndOverWhiteout) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_SYS_OK(::unlink(m("x").c_str()));
  ASSERT_TRUE(exists(p("rw/.wh.x")));
  ASSERT_SYS_OK(::link(m("f").c_str(), m("x").c_str()));
  EXPECT_FALSE(exists(p("rw/.wh.x")));
  EXPECT_EQ(read_file(m("x")), "lower\n");
  ASSERT_SYS_OK(::link(m("f").c_str(), m("dir/f3").c_str()));
  EXPECT_EQ(lstat_of(p("rw/dir/f3"))->st_ino, lstat_of(p("rw/f"))->st_ino);
  EXPECT_EQ(lstat_of(m("dir/f3"))->st_ino, lstat_of(m("f"))->st_ino);
  EXPECT_EQ(lstat_of(m("f"))->st_nlink, 3u);
  EXPECT_ERRNO(EEXIST, ::link(m("f").c_str(), m("x").c_str()));
  EXPECT_ERRNO(EPERM, ::link(m("dir").c_str(), m("dir2").c_str()));
}

TEST_F(Links, HardLinkOfLowerHardLinkedFileKeepsOneIdentity) {
  ASSERT_EQ(::link(p("l1/x").c_str(), p("l1/x2").c_str()), 0);
  before_ = snapshot(p("l1"));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto ino = lstat_of(m("x"))->st_ino;
  ASSERT_EQ(lstat_of(m("x2"))->st_ino, ino);
  ASSERT_SYS_OK(::link(m("x").c_str(), m("x3").c_str()));
  for (auto n : {"x", "x2", "x3"}) EXPECT_EQ(lstat_of(m(n))->st_ino, ino) << n;
  ASSERT_TRUE(append_file(m("x3"), "via x3\n"));
  for (auto n : {"x", "x2", "x3"}) EXPECT_EQ(read_file(m(n)), "x\nvia x3\n") << n;
  EXPECT_EQ(lstat_of(p("rw/x"))->st_ino, lstat_of(p("rw/x3"))->st_ino);
}

TEST_F(Links, SymlinkLandsInRwBranch) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("ln -s f mnt/s && ln -s /nonexistent/target mnt/dir/dangling", root());
  ASSERT_TRUE(r.ok()) << r;
  auto st = lstat_of(p("rw/s"));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(S_ISLNK(st->st_mode));
  EXPECT_EQ(readlink_of(p("rw/s")), "f");
  EXPECT_EQ(readlink_of(m("s")), "f");
  EXPECT_EQ(read_file(m("s")), "lower\n");
  EXPECT_TRUE(S_ISLNK(lstat_of(m("s"))->st_mode));
  EXPECT_EQ(readlink_of(p("rw/dir/dangling")), "/nonexistent/target");
  EXPECT_EQ(readlink_of(m("dir/dangling")), "/nonexistent/target");
  // The link target is not copied up by making or reading the link.
  EXPECT_FALSE(exists(p("rw/f")));
}

}  // namespace
}  // namespace aufs::mt
