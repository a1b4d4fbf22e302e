// SPDX-License-Identifier: GPL-2.0-or-later
// rename(2) and renameat2(2) through the union.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

const std::vector<std::string> kRwMeta = {".wh..wh.aufs", ".wh..wh.orph", ".wh..wh.plnk"};

std::vector<std::string> with_meta(std::vector<std::string> v) {
  v.insert(v.end(), kRwMeta.begin(), kRwMeta.end());
  std::sort(v.begin(), v.end());
  return v;
}

class Rename : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw"));
    mkdirs(p("l1/a"));
    mkdirs(p("l1/b"));
    mkdirs(p("l1/d/sub"));
    mkdirs(p("l1/emptyd"));
    write_file(p("l1/a/f"), "lower f\n");
    write_file(p("l1/f1"), "one\n");
    write_file(p("l1/f2"), "two\n");
    write_file(p("l1/d/x"), "x\n");
    write_file(p("l1/d/sub/y"), "y\n");
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

TEST_F(Rename, LowerFileWithinDir) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_SYS_OK(::rename(m("a/f").c_str(), m("a/g").c_str()));
  EXPECT_EQ(lstat_errno(m("a/f")), ENOENT);
  EXPECT_EQ(read_file(m("a/g")), "lower f\n");
  EXPECT_EQ(list_dir(m("a")), (std::vector<std::string>{"g"}));
  EXPECT_EQ(list_dir(p("rw/a")), (std::vector<std::string>{".wh.f", "g"}));
  EXPECT_EQ(read_file(p("rw/a/g")), "lower f\n");
}

TEST_F(Rename, LowerFileBetweenDirs) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto ino = lstat_of(m("a/f"))->st_ino;
  ASSERT_SYS_OK(::rename(m("a/f").c_str(), m("b/f").c_str()));
  EXPECT_EQ(lstat_errno(m("a/f")), ENOENT);
  EXPECT_EQ(read_file(m("b/f")), "lower f\n");
  EXPECT_EQ(lstat_of(m("b/f"))->st_ino, ino);
  EXPECT_TRUE(list_dir(m("a")).empty());
  EXPECT_EQ(list_dir(p("rw/a")), (std::vector<std::string>{".wh.f"}));
  EXPECT_EQ(list_dir(p("rw/b")), (std::vector<std::string>{"f"}));
  // And back again: the whiteout at the old name goes away.
  ASSERT_SYS_OK(::rename(m("b/f").c_str(), m("a/f").c_str()));
  EXPECT_EQ(read_file(m("a/f")), "lower f\n");
  EXPECT_EQ(list_dir(p("rw/a")), (std::vector<std::string>{"f"}));
  EXPECT_TRUE(list_dir(m("b")).empty());
}

TEST_F(Rename, OverExistingLowerFile) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_SYS_OK(::rename(m("f1").c_str(), m("f2").c_str()));
  EXPECT_EQ(lstat_errno(m("f1")), ENOENT);
  EXPECT_EQ(read_file(m("f2")), "one\n");
  EXPECT_EQ(read_file(p("rw/f2")), "one\n");
  EXPECT_TRUE(exists(p("rw/.wh.f1")));
  EXPECT_FALSE(exists(p("rw/.wh.f2")));
  EXPECT_EQ(list_dir(m()), (std::vector<std::string>{"a", "b", "d", "emptyd", "f2"}));
}

TEST_F(Rename, OverExistingRwFile) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_TRUE(write_file(m("n1"), "n1\n"));
  ASSERT_TRUE(write_file(m("n2"), "n2\n"));
  ASSERT_SYS_OK(::rename(m("n1").c_str(), m("n2").c_str()));
  EXPECT_EQ(read_file(m("n2")), "n1\n");
  EXPECT_EQ(lstat_errno(m("n1")), ENOENT);
  // Nothing below: no whiteouts needed.
  EXPECT_EQ(list_dir(p("rw")), with_meta({"n2"}));
}

TEST_F(Rename, NoReplace) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  EXPECT_ERRNO(EEXIST, ::renameat2(AT_FDCWD, m("f1").c_str(), AT_FDCWD, m("f2").c_str(),
                                   RENAME_NOREPLACE));
  EXPECT_EQ(read_file(m("f1")), "one\n");
  EXPECT_EQ(read_file(m("f2")), "two\n");
  EXPECT_EQ(list_dir(p("rw")), kRwMeta);
  ASSERT_SYS_OK(::renameat2(AT_FDCWD, m("f1").c_str(), AT_FDCWD, m("f3").c_str(),
                            RENAME_NOREPLACE));
  EXPECT_EQ(read_file(m("f3")), "one\n");
  EXPECT_EQ(lstat_errno(m("f1")), ENOENT);
  EXPECT_EQ(list_dir(p("rw")), with_meta({".wh.f1", "f3"}));
  // RENAME_WHITEOUT is refused (AUFS: EINVAL).
  EXPECT_ERRNO(EINVAL, ::renameat2(AT_FDCWD, m("f3").c_str(), AT_FDCWD, m("f4").c_str(),
                                   RENAME_WHITEOUT));
  EXPECT_EQ(read_file(m("f3")), "one\n");
  EXPECT_EQ(lstat_errno(m("f4")), ENOENT);
}

TEST_F(Rename, Exchange) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto i1 = lstat_of(m("f1"))->st_ino;
  auto i2 = lstat_of(m("f2"))->st_ino;
  ASSERT_SYS_OK(::renameat2(AT_FDCWD, m("f1").c_str(), AT_FDCWD, m("f2").c_str(),
                            RENAME_EXCHANGE));
  EXPECT_EQ(read_file(m("f1")), "two\n");
  EXPECT_EQ(read_file(m("f2")), "one\n");
  EXPECT_EQ(lstat_of(m("f1"))->st_ino, i2);
  EXPECT_EQ(lstat_of(m("f2"))->st_ino, i1);
  EXPECT_EQ(read_file(p("rw/f1")), "two\n");
  EXPECT_EQ(read_file(p("rw/f2")), "one\n");
  // Exchange of an rw file with a lower one.
  ASSERT_TRUE(write_file(m("a/new"), "new\n"));
  ASSERT_SYS_OK(::renameat2(AT_FDCWD, m("a/new").c_str(), AT_FDCWD, m("a/f").c_str(),
                            RENAME_EXCHANGE));
  EXPECT_EQ(read_file(m("a/f")), "new\n");
  EXPECT_EQ(read_file(m("a/new")), "lower f\n");
  // Exchange with a missing name fails.
  EXPECT_ERRNO(ENOENT, ::renameat2(AT_FDCWD, m("f1").c_str(), AT_FDCWD, m("nothere").c_str(),
                                   RENAME_EXCHANGE));
}

TEST_F(Rename, LowerDirWithContentIsEXDEVButMvCopies) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  EXPECT_ERRNO(EXDEV, ::rename(m("d").c_str(), m("e").c_str()));
  EXPECT_EQ(list_dir(m("d")), (std::vector<std::string>{"sub", "x"}));
  EXPECT_EQ(lstat_errno(m("e")), ENOENT);
  auto r = sh("mv mnt/d mnt/e", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(lstat_errno(m("d")), ENOENT);
  EXPECT_EQ(read_file(m("e/x")), "x\n");
  EXPECT_EQ(read_file(m("e/sub/y")), "y\n");
  EXPECT_TRUE(exists(p("rw/.wh.d")));
  EXPECT_EQ(read_file(p("rw/e/x")), "x\n");
  EXPECT_EQ(read_file(p("rw/e/sub/y")), "y\n");
  EXPECT_FALSE(exists(p("rw/d")));
}

TEST_F(Rename, LogicallyEmptyLowerDir) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_SYS_OK(::rename(m("emptyd").c_str(), m("moved").c_str()));
  EXPECT_EQ(lstat_errno(m("emptyd")), ENOENT);
  auto st = lstat_of(m("moved"));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(S_ISDIR(st->st_mode));
  EXPECT_TRUE(exists(p("rw/.wh.emptyd")));
  EXPECT_TRUE(S_ISDIR(lstat_of(p("rw/moved"))->st_mode));
}

TEST_F(Rename, DirCreatedInRwBranch) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_SYS_OK(::mkdir(m("newd").c_str(), 0755));
  ASSERT_TRUE(write_file(m("newd/x"), "x\n"));
  ASSERT_SYS_OK(::rename(m("newd").c_str(), m("newd2").c_str()));
  EXPECT_EQ(read_file(m("newd2/x")), "x\n");
  EXPECT_EQ(lstat_errno(m("newd")), ENOENT);
  EXPECT_EQ(read_file(p("rw/newd2/x")), "x\n");
  EXPECT_FALSE(exists(p("rw/newd")));
  EXPECT_FALSE(exists(p("rw/.wh.newd")));
  // Into a lower dir (its rw copy is created on the way).
  ASSERT_SYS_OK(::rename(m("newd2").c_str(), m("b/inner").c_str()));
  EXPECT_EQ(read_file(m("b/inner/x")), "x\n");
  EXPECT_EQ(read_file(p("rw/b/inner/x")), "x\n");
  EXPECT_EQ(list_dir(p("rw")), with_meta({"b"}));
}

TEST_F(Rename, RwDirOntoWhitedOutLowerDirBecomesOpaque) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("rm -rf mnt/d && mkdir mnt/n && echo own > mnt/n/own", root());
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_TRUE(exists(p("rw/.wh.d")));
  ASSERT_SYS_OK(::rename(m("n").c_str(), m("d").c_str()));
  EXPECT_EQ(list_dir(m("d")), (std::vector<std::string>{"own"}))
      << "lower d's entries show through the renamed dir";
  EXPECT_EQ(lstat_errno(m("d/x")), ENOENT);
  EXPECT_EQ(lstat_errno(m("d/sub")), ENOENT);
  EXPECT_FALSE(exists(p("rw/.wh.d")));
  EXPECT_TRUE(exists(p("rw/d/.wh..wh..opq")));
  EXPECT_EQ(lstat_errno(m("n")), ENOENT);
}

TEST_F(Rename, DirExchange) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_SYS_OK(::mkdir(m("p1").c_str(), 0755));
  ASSERT_SYS_OK(::mkdir(m("p2").c_str(), 0700));
  ASSERT_TRUE(write_file(m("p1/one"), "1"));
  ASSERT_SYS_OK(::renameat2(AT_FDCWD, m("p1").c_str(), AT_FDCWD, m("p2").c_str(),
                            RENAME_EXCHANGE));
  EXPECT_EQ(list_dir(m("p2")), (std::vector<std::string>{"one"}));
  EXPECT_TRUE(list_dir(m("p1")).empty());
  EXPECT_EQ(lstat_of(m("p1"))->st_mode & 07777, 0700u);
  // A lower dir with content cannot be exchanged (it would need a copy).
  EXPECT_ERRNO(EXDEV, ::renameat2(AT_FDCWD, m("p1").c_str(), AT_FDCWD, m("d").c_str(),
                                  RENAME_EXCHANGE));
}

TEST_F(Rename, DirOntoNonEmptyDirIsENOTEMPTY) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_SYS_OK(::mkdir(m("newd").c_str(), 0755));
  EXPECT_ERRNO(ENOTEMPTY, ::rename(m("newd").c_str(), m("d").c_str()));
  EXPECT_ERRNO(ENOTDIR, ::rename(m("newd").c_str(), m("f1").c_str()));
  EXPECT_ERRNO(EISDIR, ::rename(m("f1").c_str(), m("newd").c_str()));
  EXPECT_EQ(read_file(m("d/x")), "x\n");
}

}  // namespace
}  // namespace aufs::mt
