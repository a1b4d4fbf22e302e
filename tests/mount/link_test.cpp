// SPDX-License-Identifier: GPL-2.0-or-later
// Hard links and symlinks made through the union.
#include <sys/stat.h>
#include <sys/xattr.h>
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

// The names the union shows for the object behind `of` (same st_ino), among
// `names`.
size_t names_of(const std::string& of, const std::vector<std::string>& names) {
  struct stat st {};
  if (::lstat(of.c_str(), &st) != 0) return 0;
  size_t k = 0;
  for (auto& n : names) {
    struct stat o {};
    if (::lstat(n.c_str(), &o) == 0 && o.st_ino == st.st_ino) ++k;
  }
  return k;
}

// A lower hard-linked file, copied up through one name, is served through
// its pseudo-link: every name counts the names the union shows (not the
// plnk record, not the upper inode's own count), through link, unlink,
// rename over, copy-up of further names, and a remount.
TEST_F(Links, LinkCountOfCopiedUpLowerHardLinks) {
  mkdirs(p("l1/d"));
  for (auto n : {"x2", "d/x3", "x4", "x5"}) ASSERT_EQ(::link(p("l1/x").c_str(), p(std::string("l1/") + n).c_str()), 0);
  write_file(p("l1/other"), "other\n");
  before_ = snapshot(p("l1"));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  std::vector<std::string> all;
  for (auto n : {"x", "x2", "d/x3", "x4", "x5", "y", "x2b", "other"}) all.push_back(m(n));
  auto expect_count = [&](const std::vector<std::string>& names, size_t want, const std::string& what) {
    for (auto& n : names) {
      auto st = lstat_of(m(n));
      ASSERT_TRUE(st.has_value()) << what << ": " << n;
      EXPECT_EQ(st->st_nlink, want) << what << ": " << n;
    }
    EXPECT_EQ(names_of(m(names[0]), all), want) << what;
  };
  expect_count({"x", "x2", "d/x3", "x4", "x5"}, 5, "lower");
  // Copy-up of one name: the upper inode has it and the plnk record.
  ASSERT_SYS_OK(::chmod(m("x").c_str(), 0600));
  EXPECT_EQ(lstat_of(p("rw/x"))->st_nlink, 2u);
  expect_count({"x", "x2", "d/x3", "x4", "x5"}, 5, "copy-up of x");
  // A change through a name served by the plnk record (no new upper name).
  ASSERT_TRUE(append_file(m("x2"), "via x2\n"));
  expect_count({"x", "x2", "d/x3", "x4", "x5"}, 5, "write through x2");
  // link(2): one name more.
  ASSERT_SYS_OK(::link(m("x2").c_str(), m("y").c_str()));
  expect_count({"x", "x2", "d/x3", "x4", "x5", "y"}, 6, "link");
  // rename gives x2 its own upper link first (a further copy-up of a name).
  ASSERT_SYS_OK(::rename(m("x2").c_str(), m("x2b").c_str()));
  expect_count({"x", "x2b", "d/x3", "x4", "x5", "y"}, 6, "rename of a lower name");
  // unlink of a name only on the lower branch (a whiteout).
  ASSERT_SYS_OK(::unlink(m("d/x3").c_str()));
  expect_count({"x", "x2b", "x4", "x5", "y"}, 5, "unlink of a lower name");
  // rename of another file over a lower name.
  ASSERT_SYS_OK(::rename(m("other").c_str(), m("x4").c_str()));
  EXPECT_EQ(read_file(m("x4")), "other\n");
  expect_count({"x", "x2b", "x5", "y"}, 4, "rename over a lower name");
  // unlink of an upper name that has a lower one too, and of a link made
  // through the union.
  ASSERT_SYS_OK(::unlink(m("x").c_str()));
  expect_count({"x2b", "x5", "y"}, 3, "unlink of a copied-up name");
  ASSERT_SYS_OK(::unlink(m("y").c_str()));
  expect_count({"x2b", "x5"}, 2, "unlink of a linked name");
  // The count is kept on the branch: a new daemon shows the same.
  unmount();
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  expect_count({"x2b", "x5"}, 2, "after a remount");
  EXPECT_EQ(read_file(m("x5")), "x\nvia x2\n");
  // The last lower name goes: one name left.
  ASSERT_SYS_OK(::unlink(m("x5").c_str()));
  expect_count({"x2b"}, 1, "last lower name gone");
  // The internal xattr never shows through the union.
  char list[256];
  ssize_t len = ::llistxattr(m("x2b").c_str(), list, sizeof list);
  ASSERT_GE(len, 0);
  EXPECT_EQ(std::string(list, static_cast<size_t>(len)).find("aufs-fuse"), std::string::npos);
}

// The same for a hard-linked symbolic link (its count is kept on the link
// itself, reached by its parent and name).
TEST_F(Links, LinkCountOfCopiedUpLowerHardLinkedSymlink) {
  if (::geteuid() != 0) GTEST_SKIP() << "user.* xattrs cannot be set on symlinks";
  ASSERT_EQ(::symlink("f", p("l1/s").c_str()), 0);
  for (auto n : {"s2", "s3"}) ASSERT_EQ(::link(p("l1/s").c_str(), p(std::string("l1/") + n).c_str()), 0);
  before_ = snapshot(p("l1"));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_SYS_OK(::lchown(m("s").c_str(), 4321, 4321));  // copy-up
  for (auto n : {"s", "s2", "s3"}) {
    EXPECT_EQ(lstat_of(m(n))->st_nlink, 3u) << n;
    EXPECT_EQ(lstat_of(m(n))->st_uid, 4321u) << n;
  }
  ASSERT_SYS_OK(::unlink(m("s3").c_str()));
  for (auto n : {"s", "s2"}) EXPECT_EQ(lstat_of(m(n))->st_nlink, 2u) << n;
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
