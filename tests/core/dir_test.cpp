// SPDX-License-Identifier: GPL-2.0-or-later
// Core tier (create, mkdir, link, unlink and rmdir: whiteouts, hard links, owners).
#include "union_fixture.hpp"

using namespace aufs;
using namespace aufs::test;

TEST_F(UnionTest, UnlinkWritesWhiteoutOnlyWhenNeeded) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/lower", "l");
  write_file(br(0) + "/both", "u");
  write_file(br(1) + "/both", "l");
  write_file(br(0) + "/upper", "u");
  mount();
  EXPECT_EQ(unlink("lower"), 0);
  EXPECT_EQ(unlink("both"), 0);
  EXPECT_EQ(unlink("upper"), 0);
  EXPECT_EQ(unlink("nothing"), ENOENT);
  EXPECT_EQ(walk("lower").err(), ENOENT);
  EXPECT_EQ(walk("both").err(), ENOENT);
  EXPECT_EQ(list(br(0)), (std::vector<std::string>{".wh..wh.aufs", ".wh..wh.orph", ".wh..wh.plnk",
                                                   ".wh.both", ".wh.lower"}));
  struct stat a, w;
  ::stat((br(0) + "/.wh..wh.aufs").c_str(), &a);
  ::stat((br(0) + "/.wh.lower").c_str(), &w);
  EXPECT_EQ(a.st_ino, w.st_ino) << "whiteouts are hard links to the base";
  EXPECT_EQ(read_file(br(1) + "/lower"), "l");
  EXPECT_EQ(ls(""), std::vector<std::string>{});
  // Re-creating the name removes the whiteout.
  EXPECT_EQ(create("lower", "again"), 0);
  EXPECT_FALSE(exists(br(0) + "/.wh.lower"));
  EXPECT_EQ(cat("lower"), "again");
}

TEST_F(UnionTest, NolwhMakesPlainWhiteouts) {
  make_branches({"rw+nolwh", "ro"});
  write_file(br(1) + "/f", "l");
  mount();
  EXPECT_FALSE(exists(br(0) + "/.wh..wh.aufs"));
  EXPECT_EQ(unlink("f"), 0);
  struct stat st;
  ASSERT_EQ(::lstat((br(0) + "/.wh.f").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
}

TEST_F(UnionTest, RmdirEmptinessWhiteoutAndOpaqueRecreate) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/d");
  write_file(br(1) + "/d/f", "f");
  mount();
  EXPECT_EQ(rmdir("d"), ENOTEMPTY);
  EXPECT_EQ(unlink("d/f"), 0);
  EXPECT_EQ(ls("d"), std::vector<std::string>{});
  EXPECT_EQ(rmdir("d"), 0);
  EXPECT_TRUE(exists(br(0) + "/.wh.d"));
  EXPECT_FALSE(exists(br(0) + "/d")) << "upper copy removed with its whiteouts";
  EXPECT_TRUE(no_temps(br(0)));
  EXPECT_EQ(walk("d").err(), ENOENT);
  EXPECT_EQ(mkdir("d"), 0);
  EXPECT_TRUE(exists(br(0) + "/d/.wh..wh..opq"));
  EXPECT_FALSE(exists(br(0) + "/.wh.d"));
  EXPECT_EQ(ls("d"), std::vector<std::string>{});
  EXPECT_EQ(walk("d/f").err(), ENOENT);
  EXPECT_EQ(read_file(br(1) + "/d/f"), "f");
  EXPECT_TRUE(no_temps(br(0)));
}

TEST_F(UnionTest, DiropqAlwaysMakesEveryMkdirOpaque) {
  make_branches({"rw", "ro"});
  mount("diropq=a");
  EXPECT_EQ(mkdir("n"), 0);
  EXPECT_TRUE(exists(br(0) + "/n/.wh..wh..opq"));
}

TEST_F(UnionTest, HardLinksShareInodeAndSurviveOnDisk) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "shared");
  ASSERT_EQ(::link((br(1) + "/a").c_str(), (br(1) + "/b").c_str()), 0);
  mount();
  auto a = walk("a");
  auto b = walk("b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->attr.st_ino, b->attr.st_ino);
  auto l = fs->link(a->id, kRootId, "c", Ctx{});
  ASSERT_TRUE(l.ok()) << l.err();
  EXPECT_EQ(l->attr.st_ino, a->attr.st_ino);
  // a and b are one union inode; link() copies that inode up under the name
  // the node carries (the last one looked up) and links it on the rw branch.
  struct stat sx, sc;
  ASSERT_EQ(::stat((br(0) + "/c").c_str(), &sc), 0);
  bool up_a = ::stat((br(0) + "/a").c_str(), &sx) == 0;
  if (!up_a) {
    ASSERT_EQ(::stat((br(0) + "/b").c_str(), &sx), 0);
  }
  EXPECT_EQ(sx.st_ino, sc.st_ino);
  // The copy-up of a hard-linked file is recorded in the plnk store.
  struct stat sp;
  ASSERT_EQ(::stat((br(0) + "/.wh..wh.plnk/" + std::to_string(a->attr.st_ino)).c_str(), &sp), 0);
  EXPECT_EQ(sp.st_ino, sc.st_ino);
  EXPECT_EQ(sc.st_nlink, 3u);
  // The other lower name still shows the same inode and, while the node is
  // cached, the copied-up data (in-memory pseudo-link).
  append("c", "+");
  EXPECT_EQ(cat("a"), "shared+");
  EXPECT_EQ(cat("b"), "shared+");
}

TEST_F(UnionTest, CreatedAsCallingUser) {
  if (!daemon_is_root()) GTEST_SKIP() << "needs root to act as another user";
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/pub");
  ::chmod((br(1) + "/pub").c_str(), 01777);
  mount();
  Ctx u;
  u.uid = 4321;
  u.gid = 4321;
  u.have_groups = true;
  EXPECT_EQ(create("pub/mine", "m", u), 0);
  struct stat st;
  ASSERT_EQ(::stat((br(0) + "/pub/mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 4321u);
  EXPECT_EQ(st.st_gid, 4321u);
  ASSERT_EQ(::stat((br(0) + "/pub").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u) << "copied-up parent keeps its owner";
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  // The caller's own permissions apply on the branch too.
  EXPECT_EQ(create("denied", "", u), EACCES);
}

TEST_F(UnionTest, HardLinksStayOneInodeAcrossRemount) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "v1");
  ASSERT_EQ(::link((br(1) + "/a").c_str(), (br(1) + "/b").c_str()), 0);
  mount();
  uint64_t ino = walk("a")->attr.st_ino;
  append("a", "+v2");
  EXPECT_EQ(cat("b"), "v1+v2");
  fs.reset();  // unmount
  mount();
  // b is looked up first after the remount: it must still see the copy.
  auto b = walk("b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->attr.st_ino, ino);
  EXPECT_EQ(cat("b"), "v1+v2");
  EXPECT_EQ(walk("a")->attr.st_ino, ino);
  EXPECT_EQ(cat("a"), "v1+v2");
  append("b", "+v3");
  EXPECT_EQ(cat("a"), "v1+v2+v3");
  EXPECT_EQ(read_file(br(1) + "/a"), "v1");
  // rename of b needs b's own name on the rw branch: linked from plnk.
  EXPECT_EQ(rename("b", "c"), 0);
  EXPECT_EQ(cat("c"), "v1+v2+v3");
  struct stat sa, sc;
  ASSERT_EQ(::stat((br(0) + "/a").c_str(), &sa), 0);
  ASSERT_EQ(::stat((br(0) + "/c").c_str(), &sc), 0);
  EXPECT_EQ(sa.st_ino, sc.st_ino);
}

TEST_F(UnionTest, NoplinkBreaksHardLinksLikeAufs) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "v1");
  ASSERT_EQ(::link((br(1) + "/a").c_str(), (br(1) + "/b").c_str()), 0);
  mount("noplink");
  append("a", "+v2");
  fs.reset();
  mount("noplink");
  EXPECT_EQ(cat("b"), "v1");
  EXPECT_EQ(cat("a"), "v1+v2");
  EXPECT_NE(walk("a")->attr.st_ino, walk("b")->attr.st_ino);
  EXPECT_FALSE(exists(br(0) + "/.wh..wh.plnk/" + std::to_string(walk("b")->attr.st_ino)));
}

TEST_F(UnionTest, InodeNumbersSurviveRemountAfterCopyUp) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/d/e");
  write_file(br(1) + "/d/e/f", "x");
  mount();
  uint64_t f = walk("d/e/f")->attr.st_ino;
  uint64_t d = walk("d")->attr.st_ino;
  uint64_t e = walk("d/e")->attr.st_ino;
  append("d/e/f", "y");  // copies d, d/e and d/e/f up
  EXPECT_EQ(rename("d/e/f", "d/e/g"), 0);
  fs.reset();
  mount();
  EXPECT_EQ(walk("d/e/g")->attr.st_ino, f);
  EXPECT_EQ(walk("d")->attr.st_ino, d);
  EXPECT_EQ(walk("d/e")->attr.st_ino, e);
  auto dh = fs->opendir(walk("d/e")->id);
  ASSERT_TRUE(dh.ok());
  ASSERT_EQ(dh.value()->entries.size(), 1u);
  EXPECT_EQ(fs->entry_ino(dh.value()->entries[0]), f);
  // The bookkeeping attribute is invisible through the union.
  auto l = fs->listxattr(walk("d/e/g")->id, 4096);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(std::string(l->begin(), l->end()).find("aufs-fuse"), std::string::npos);
  EXPECT_EQ(fs->getxattr(walk("d/e/g")->id, fs->ino_xattr().c_str(), 64).err(), ENODATA);
  EXPECT_EQ(fs->setxattr(walk("d/e/g")->id, fs->ino_xattr().c_str(), "x", 1, 0).err(), EPERM);
}

TEST_F(UnionTest, DirwhRemovesLargeDirectoriesInTheBackground) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/big");
  for (int i = 0; i < 50; ++i) write_file(br(1) + "/big/f" + std::to_string(i), "x");
  mount("dirwh=5");
  for (int i = 0; i < 50; ++i) ASSERT_EQ(unlink("big/f" + std::to_string(i)), 0);
  EXPECT_EQ(list(br(0) + "/big").size(), 50u) << "50 whiteouts";
  EXPECT_EQ(rmdir("big"), 0);
  EXPECT_EQ(walk("big").err(), ENOENT);
  for (int i = 0; i < 200 && fs->reap_pending() > 0; ++i) ::usleep(10000);
  ::usleep(20000);
  EXPECT_EQ(list(br(0)), (std::vector<std::string>{".wh..wh.aufs", ".wh..wh.orph", ".wh..wh.plnk", ".wh.big"}));
}

// Found by Concurrency.OverlappingNamesKeepInvariants (link/write ESTALE
// twice in a row, so the kernel gave up): a hard-linked file's node tracked
// one name; once that name was removed, requests by node failed until the
// kernel looked another name up. The node now moves to another name it was
// reached by (link, lookups) that still leads to it.
TEST_F(UnionTest, HardLinkedNodeMovesToAnotherNameWhenItsNameGoes) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/x", "lower");
  ASSERT_EQ(::link((br(1) + "/x").c_str(), (br(1) + "/y").c_str()), 0);
  mount();
  ASSERT_EQ(create("a", "data"), 0);
  NodeId a = walk("a")->id;
  ASSERT_TRUE(fs->link(a, kRootId, "b", Ctx{}).ok());
  EXPECT_EQ(walk("a")->id, a);  // remembered as "a" again
  ASSERT_EQ(unlink("a"), 0);
  auto check = [&](NodeId id, const std::string& want) {
    auto fh = fs->open(id, O_RDWR, Ctx{});
    ASSERT_TRUE(fh.ok()) << fh.err() << " want " << want;
    std::string out(64, '\0');
    ssize_t n = ::pread(fs->io_fd(*fh.value()).value()->get(), out.data(), out.size(), 0);
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    fs->release(std::move(fh.value()));
    EXPECT_EQ(out, want);
    EXPECT_TRUE(fs->getattr(id).ok());
  };
  check(a, "data");
  // A lower hard link, reached by both names.
  NodeId x = walk("x")->id;
  EXPECT_EQ(walk("y")->id, x);
  ASSERT_EQ(unlink("y"), 0);
  check(x, "lower");
  EXPECT_EQ(read_file(br(1) + "/x"), "lower");
}

// POSIX: unlink updates the parent's mtime, whether it removes an rw entry,
// leaves a whiteout over a lower one, or both; the copy-up of the parent
// itself leaves the grandparent's mtime alone.
TEST_F(UnionTest, UnlinkAdvancesParentMtime) {
  make_branches({"rw", "ro"});
  for (auto b : {br(0), br(1)}) mkdirs(b + "/g/both");
  mkdirs(br(0) + "/g/upper");
  mkdirs(br(1) + "/g/lower");
  write_file(br(0) + "/g/upper/f", "u");
  write_file(br(0) + "/g/both/f", "u");
  write_file(br(1) + "/g/both/f", "l");
  write_file(br(1) + "/g/lower/f", "l");
  struct timespec past[2] = {{1'000'000'000, 0}, {1'000'000'000, 0}};
  for (auto d : {"/g/upper", "/g/both", "/g/lower", "/g"})
    for (auto b : {br(0), br(1)}) ::utimensat(AT_FDCWD, (b + d).c_str(), past, 0);
  mount();
  for (auto d : {"g/upper", "g/both", "g/lower"}) {
    EXPECT_EQ(unlink(std::string(d) + "/f"), 0) << d;
    auto st = walk(d);
    ASSERT_TRUE(st.ok()) << d;
    EXPECT_NE(st->attr.st_mtim.tv_sec, 1'000'000'000) << d << ": union mtime";
    struct stat b;
    ASSERT_EQ(::stat((br(0) + "/" + d).c_str(), &b), 0) << d;
    EXPECT_NE(b.st_mtim.tv_sec, 1'000'000'000) << d << ": rw branch mtime";
  }
  EXPECT_EQ(walk("g")->attr.st_mtim.tv_sec, 1'000'000'000) << "copy-up of g/lower shows in g";
}

// An interrupted create or unlink can leave an entry and its whiteout on
// the writable branch (the mount's check repairs it; made here after the
// mount): the entry wins (a lookup of a writable branch's file does not
// even probe for the whiteout), a directory there hides what lies below
// it, and removing the entry leaves the lower name hidden.
TEST_F(UnionTest, EntryBesideItsWhiteoutOnTheWritableBranch) {
  make_branches({"rw", "ro"});
  write_file(br(0) + "/f", "upper");
  write_file(br(1) + "/f", "lower");
  mkdirs(br(0) + "/d");
  mkdirs(br(1) + "/d");
  write_file(br(1) + "/d/below", "b");
  mount();
  write_file(br(0) + "/.wh.f", "");
  write_file(br(0) + "/.wh.d", "");
  EXPECT_EQ(cat("f"), "upper");
  EXPECT_EQ(ls("d"), std::vector<std::string>{});
  EXPECT_EQ(walk("d/below").err(), ENOENT);
  EXPECT_EQ(unlink("f"), 0);
  EXPECT_EQ(walk("f").err(), ENOENT);
  EXPECT_TRUE(exists(br(0) + "/.wh.f"));
  EXPECT_EQ(read_file(br(1) + "/f"), "lower");
}
