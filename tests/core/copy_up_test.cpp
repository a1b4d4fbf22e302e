// SPDX-License-Identifier: GPL-2.0-or-later
// Core tier (copy-up of data, metadata, special files; open readers follow it).
#include "union_fixture.hpp"

using namespace aufs;
using namespace aufs::test;

TEST_F(UnionTest, CopyUpOnWriteKeepsDataModeTimesXattrsAndLowerIntact) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/a/b");
  ::chmod((br(1) + "/a").c_str(), 0751);
  write_file(br(1) + "/a/b/f", "hello", 0640);
  bool xattrs = ::setxattr((br(1) + "/a/b/f").c_str(), "user.k", "v", 1, 0) == 0;
  struct timespec old[2] = {{1000000, 0}, {2000000, 0}};
  ::utimensat(AT_FDCWD, (br(1) + "/a/b/f").c_str(), old, 0);
  mount();
  auto before = walk("a/b/f");
  ASSERT_TRUE(before.ok());
  append("a/b/f", " world");
  EXPECT_EQ(read_file(br(0) + "/a/b/f"), "hello world");
  EXPECT_EQ(read_file(br(1) + "/a/b/f"), "hello");
  EXPECT_EQ(cat("a/b/f"), "hello world");
  struct stat st;
  ASSERT_EQ(::stat((br(0) + "/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0751u);
  ASSERT_EQ(::stat((br(0) + "/a/b/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  if (xattrs) {
    char v[8] = {};
    EXPECT_EQ(::getxattr((br(0) + "/a/b/f").c_str(), "user.k", v, sizeof v), 1);
    EXPECT_EQ(v[0], 'v');
  }
  auto after = walk("a/b/f");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->attr.st_ino, before->attr.st_ino);
  EXPECT_TRUE(no_temps(br(0) + "/a/b"));
  EXPECT_EQ(fs->counters().copyups.load(), 3u);  // a, a/b, a/b/f
}

TEST_F(UnionTest, MetadataCopyUpPreservesTimesOfUntouchedFields) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "data", 0644);
  struct timespec old[2] = {{1000000, 0}, {2000000, 0}};
  ::utimensat(AT_FDCWD, (br(1) + "/f").c_str(), old, 0);
  mount();
  auto e = walk("f");
  ASSERT_TRUE(e.ok());
  SetAttrIn in;
  in.valid = SetAttrIn::kMode;
  in.mode = 0600;
  auto st = fs->setattr(e->id, in, nullptr, Ctx{});
  ASSERT_TRUE(st.ok()) << st.err();
  EXPECT_EQ(st->st_mode & 07777, 0600u);
  EXPECT_EQ(st->st_mtim.tv_sec, 2000000);
  EXPECT_EQ(read_file(br(0) + "/f"), "data");
  struct stat lower;
  ::stat((br(1) + "/f").c_str(), &lower);
  EXPECT_EQ(lower.st_mode & 07777, 0644u);
}

TEST_F(UnionTest, TruncateCopiesOnlyWhatIsKept) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "0123456789");
  mount();
  auto e = walk("f");
  SetAttrIn in;
  in.valid = SetAttrIn::kSize;
  in.size = 4;
  ASSERT_TRUE(fs->setattr(e->id, in, nullptr, Ctx{}).ok());
  EXPECT_EQ(read_file(br(0) + "/f"), "0123");
  EXPECT_EQ(read_file(br(1) + "/f"), "0123456789");
  auto fh = fs->open(walk("f")->id, O_WRONLY | O_TRUNC, Ctx{});
  ASSERT_TRUE(fh.ok());
  fs->release(std::move(fh.value()));
}

TEST_F(UnionTest, SparseFilesStaySparse) {
  make_branches({"rw", "ro"});
  int fd = ::open((br(1) + "/sparse").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 64 << 20), 0);
  ASSERT_EQ(::pwrite(fd, "x", 1, 32 << 20), 1);
  ::close(fd);
  mount();
  append("sparse", "y");
  struct stat st;
  ASSERT_EQ(::stat((br(0) + "/sparse").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, (64 << 20) + 1);
  EXPECT_LT(st.st_blocks * 512, 4 << 20) << "copy-up filled holes";
}

TEST_F(UnionTest, SymlinkFifoCopyUp) {
  make_branches({"rw", "ro"});
  ASSERT_EQ(::symlink("target/x", (br(1) + "/l").c_str()), 0);
  ASSERT_EQ(::mkfifo((br(1) + "/p").c_str(), 0640), 0);
  mount();
  for (const char* n : {"l", "p"}) {
    auto e = walk(n);
    ASSERT_TRUE(e.ok());
    SetAttrIn in;
    in.valid = SetAttrIn::kUid | SetAttrIn::kGid;
    in.uid = 1234;
    in.gid = 1234;
    ASSERT_TRUE(fs->setattr(e->id, in, nullptr, Ctx{}).ok()) << n;
    struct stat st;
    ASSERT_EQ(::lstat((br(0) + "/" + n).c_str(), &st), 0) << n;
    EXPECT_EQ(st.st_uid, 1234u);
  }
  char buf[64] = {};
  ASSERT_GT(::readlink((br(0) + "/l").c_str(), buf, sizeof buf), 0);
  EXPECT_STREQ(buf, "target/x");
  auto rl = fs->readlink(walk("l")->id);
  ASSERT_TRUE(rl.ok());
  EXPECT_EQ(rl.value(), "target/x");
  struct stat st;
  ::lstat((br(0) + "/p").c_str(), &st);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(UnionTest, ReaderFollowsCopyUp) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "old");
  mount();
  auto e = walk("f");
  auto reader = fs->open(e->id, O_RDONLY, Ctx{});
  ASSERT_TRUE(reader.ok());
  auto writer = fs->open(e->id, O_WRONLY | O_TRUNC, Ctx{});
  ASSERT_TRUE(writer.ok());
  ASSERT_EQ(::write(fs->io_fd(*writer.value()).value()->get(), "new!", 4), 4);
  char buf[8] = {};
  ASSERT_EQ(::pread(fs->io_fd(*reader.value()).value()->get(), buf, sizeof buf, 0), 4);
  EXPECT_STREQ(buf, "new!");
  fs->release(std::move(reader.value()));
  fs->release(std::move(writer.value()));
}

// A read in flight while a copy-up re-points its handle keeps using the fd
// it started with: closing it there and then let the number be reused by
// another open, so the read could return another file's data.
TEST_F(UnionTest, ReadInFlightKeepsItsFdAcrossCopyUp) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "old");
  write_file(br(1) + "/g", "other");
  mount();
  auto e = walk("f");
  auto reader = fs->open(e->id, O_RDONLY, Ctx{});
  ASSERT_TRUE(reader.ok());
  auto in_flight = fs->io_fd(*reader.value());  // a read has started
  ASSERT_TRUE(in_flight.ok());
  const int fd = in_flight.value()->get();
  auto writer = fs->open(e->id, O_WRONLY | O_TRUNC, Ctx{});  // copy-up, re-points the reader
  ASSERT_TRUE(writer.ok());
  ASSERT_NE(fs->io_fd(*reader.value()).value()->get(), fd);
  auto g = fs->open(walk("g")->id, O_RDONLY, Ctx{});  // would take a freed number
  ASSERT_TRUE(g.ok());
  char buf[8] = {};
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), 3) << std::strerror(errno);
  EXPECT_STREQ(buf, "old");
  in_flight = Errno{EIO};  // the read ends: now the old fd may close
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  fs->release(std::move(g.value()));
  fs->release(std::move(reader.value()));
  fs->release(std::move(writer.value()));
}

TEST_F(UnionTest, CopyUpOnOpenAndMoveUp) {
  make_branches({"rw", "rw+moo", "ro+coo_reg"});
  write_file(br(2) + "/c", "c");
  write_file(br(1) + "/m", "m");
  mount();
  EXPECT_EQ(cat("c"), "c");  // a read-only open is enough
  EXPECT_EQ(read_file(br(1) + "/c"), "c") << "coo: nearest writable branch above";
  EXPECT_EQ(read_file(br(2) + "/c"), "c");
  EXPECT_EQ(cat("m"), "m");
  EXPECT_EQ(read_file(br(0) + "/m"), "m") << "moo: moved to the branch above";
  EXPECT_FALSE(exists(br(1) + "/m")) << "moo: the source goes";
}

TEST_F(UnionTest, SecurityCapabilityNotCopiedUnlessAsked) {
  if (!daemon_is_root()) GTEST_SKIP() << "needs root for security.* xattrs";
  make_branches({"rw", "ro"});
  write_file(br(1) + "/bin", "x", 0755);
  // A valid VFS_CAP_REVISION_2 blob: cap_net_raw (bit 13) permitted+effective.
  const unsigned char cap[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0,
                                 0, 0, 0, 0, 0, 0, 0, 0};
  if (::setxattr((br(1) + "/bin").c_str(), "security.capability", cap, sizeof cap, 0) != 0)
    GTEST_SKIP() << "branch filesystem refuses security.capability";
  // Copy up without writing (a write drops file capabilities on any fs).
  auto touch = [&] {
    SetAttrIn in;
    in.valid = SetAttrIn::kMtimeNow;
    ASSERT_TRUE(fs->setattr(walk("bin")->id, in, nullptr, Ctx{}).ok());
  };
  mount();
  touch();
  EXPECT_TRUE(exists(br(0) + "/bin"));
  EXPECT_LT(::getxattr((br(0) + "/bin").c_str(), "security.capability", nullptr, 0), 0);
  fs.reset();
  remove_tree(br(0));
  mkdirs(br(0));
  mount("cpup_caps");
  touch();
  EXPECT_EQ(::getxattr((br(0) + "/bin").c_str(), "security.capability", nullptr, 0), 20);
}

// Found by Concurrency.OverlappingNamesKeepInvariants (two objects with one
// inode number: the kernel answered mkdir/symlink with ESTALE): a copy-up
// that found its name taken on the rw branch (by a rename, a create, or a
// direct edit) used that object as the copy and gave it the node's number.
TEST_F(UnionTest, CopyUpNeverAdoptsAnotherObjectOfItsName) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "lower");
  mount();
  auto e = walk("a");
  ASSERT_TRUE(e.ok());
  write_file(br(0) + "/a", "upper made directly");
  auto fh = fs->open(e->id, O_RDWR, Ctx{});
  EXPECT_FALSE(fh.ok()) << "the lower file's node took the upper file";
  if (fh.ok()) fs->release(std::move(fh.value()));
  auto now = walk("a");
  ASSERT_TRUE(now.ok());
  EXPECT_NE(now->attr.st_ino, e->attr.st_ino) << "two files with one inode number";
  EXPECT_EQ(cat("a"), "upper made directly");
  EXPECT_EQ(read_file(br(1) + "/a"), "lower");
}
