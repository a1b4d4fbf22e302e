// SPDX-License-Identifier: GPL-2.0-or-later
// Core tier (rename: whiteouts, flags, the EXDEV rule for directories).
#include "union_fixture.hpp"

using namespace aufs;
using namespace aufs::test;

TEST_F(UnionTest, RenameFileFromLowerLeavesWhiteout) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/d");
  write_file(br(1) + "/d/f", "data");
  mount();
  auto before = walk("d/f");
  EXPECT_EQ(rename("d/f", "g"), 0);
  EXPECT_EQ(walk("d/f").err(), ENOENT);
  EXPECT_EQ(cat("g"), "data");
  EXPECT_TRUE(exists(br(0) + "/d/.wh.f"));
  EXPECT_EQ(read_file(br(0) + "/g"), "data");
  EXPECT_EQ(read_file(br(1) + "/d/f"), "data");
  EXPECT_EQ(walk("g")->attr.st_ino, before->attr.st_ino);
}

TEST_F(UnionTest, RenameOverWhiteoutAndExisting) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "a");
  write_file(br(1) + "/b", "b");
  write_file(br(0) + "/c", "c");
  mount();
  EXPECT_EQ(unlink("b"), 0);
  EXPECT_EQ(rename("c", "b"), 0);
  EXPECT_FALSE(exists(br(0) + "/.wh.b"));
  EXPECT_FALSE(exists(br(0) + "/.wh.c")) << "c existed only on the rw branch";
  EXPECT_EQ(cat("b"), "c");
  EXPECT_EQ(rename("b", "a"), 0);
  EXPECT_EQ(cat("a"), "c");
  EXPECT_TRUE(exists(br(0) + "/.wh.b"));
  EXPECT_EQ(ls(""), std::vector<std::string>{"a"});
}

TEST_F(UnionTest, RenameFlags) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "A");
  write_file(br(0) + "/b", "B");
  mount();
  EXPECT_EQ(rename("a", "b", RENAME_NOREPLACE), EEXIST);
  EXPECT_EQ(rename("a", "zz", RENAME_EXCHANGE), ENOENT);
  EXPECT_EQ(rename("a", "b", RENAME_EXCHANGE), 0);
  EXPECT_EQ(cat("a"), "B");
  EXPECT_EQ(cat("b"), "A");
  EXPECT_EQ(rename("a", "c", RENAME_NOREPLACE), 0);
  EXPECT_EQ(cat("c"), "B");
  EXPECT_EQ(rename("a", "c", RENAME_NOREPLACE | RENAME_EXCHANGE), EINVAL);
}

TEST_F(UnionTest, RenameDirectoriesExdevRule) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/full");
  write_file(br(1) + "/full/f", "f");
  mkdirs(br(1) + "/empty");
  mount();
  EXPECT_EQ(rename("full", "moved"), EXDEV);
  EXPECT_EQ(rename("empty", "moved"), 0);
  EXPECT_TRUE(exists(br(0) + "/.wh.empty"));
  EXPECT_EQ(mkdir("mine"), 0);
  EXPECT_EQ(create("mine/x", "x"), 0);
  EXPECT_EQ(rename("mine", "mine2"), 0);
  EXPECT_EQ(cat("mine2/x"), "x");
  EXPECT_FALSE(exists(br(0) + "/.wh.mine"));
  // Moving a directory onto a name that still has lower entries below makes
  // it opaque, so nothing merges in.
  EXPECT_EQ(unlink("full/f"), 0);
  EXPECT_EQ(rmdir("full"), 0);
  EXPECT_EQ(rename("mine2", "full"), 0);
  EXPECT_EQ(ls("full"), std::vector<std::string>{"x"});
  EXPECT_TRUE(exists(br(0) + "/full/.wh..wh..opq"));
}

TEST_F(UnionTest, RenameOntoNonEmptyDir) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/t");
  write_file(br(1) + "/t/f", "f");
  mount();
  EXPECT_EQ(mkdir("s"), 0);
  EXPECT_EQ(rename("s", "t"), ENOTEMPTY);
  EXPECT_EQ(create("file"), 0);
  EXPECT_EQ(rename("file", "t"), EISDIR);
  EXPECT_EQ(rename("s", "file"), ENOTDIR);
}
