// SPDX-License-Identifier: GPL-2.0-or-later
// Core tier (name resolution: merging, whiteouts, opaque directories, inode numbers).
#include "union_fixture.hpp"

using namespace aufs;
using namespace aufs::test;

TEST_F(UnionTest, RwBranchGetsAufsMetadata) {
  make_branches({"rw", "ro"});
  mount();
  struct stat st;
  ASSERT_EQ(::lstat((br(0) + "/.wh..wh.aufs").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  ASSERT_EQ(::lstat((br(0) + "/.wh..wh.plnk").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(exists(br(0) + "/.wh..wh.orph"));
  EXPECT_FALSE(exists(br(1) + "/.wh..wh.aufs"));
  EXPECT_EQ(ls(""), std::vector<std::string>{});
}

TEST_F(UnionTest, LookupTopMostWinsAndDirsMerge) {
  make_branches({"rw", "ro", "ro"});
  write_file(br(0) + "/f", "top");
  write_file(br(1) + "/f", "mid");
  mkdirs(br(1) + "/d");
  mkdirs(br(2) + "/d");
  write_file(br(1) + "/d/x", "x");
  write_file(br(2) + "/d/y", "y");
  write_file(br(2) + "/d/x", "lower x");
  mount();
  EXPECT_EQ(cat("f"), "top");
  EXPECT_EQ(ls("d"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(cat("d/x"), "x");
  EXPECT_EQ(cat("d/y"), "y");
}

TEST_F(UnionTest, WhiteoutsAndOpaqueOnlyOnWhAbleBranches) {
  make_branches({"rw", "ro+wh", "ro", "ro"});
  write_file(br(1) + "/.wh.a", "", 0444);
  write_file(br(2) + "/.wh.b", "", 0444);  // plain ro: ignored for hiding
  write_file(br(3) + "/a", "a");
  write_file(br(3) + "/b", "b");
  mkdirs(br(1) + "/o");
  write_file(br(1) + "/o/.wh..wh..opq", "", 0444);
  write_file(br(1) + "/o/mine", "m");
  mkdirs(br(3) + "/o");
  write_file(br(3) + "/o/hidden", "h");
  mkdirs(br(2) + "/p");
  write_file(br(2) + "/p/.wh..wh..opq", "", 0444);  // ignored on plain ro
  mkdirs(br(3) + "/p");
  write_file(br(3) + "/p/shown", "s");
  mount();
  EXPECT_EQ(walk("a").err(), ENOENT);
  EXPECT_EQ(cat("b"), "b");
  EXPECT_EQ(ls(""), (std::vector<std::string>{"b", "o", "p"}));
  EXPECT_EQ(ls("o"), std::vector<std::string>{"mine"});
  EXPECT_EQ(walk("o/hidden").err(), ENOENT);
  EXPECT_EQ(ls("p"), std::vector<std::string>{"shown"});
}

TEST_F(UnionTest, FileOverDirAndDirOverFile) {
  make_branches({"rw", "ro", "ro", "ro"});
  write_file(br(1) + "/x", "file");
  mkdirs(br(2) + "/x");
  write_file(br(2) + "/x/in", "i");
  mkdirs(br(1) + "/y");
  write_file(br(2) + "/y", "file");
  // Mismatching lower types are skipped: dir, file, dir merges the dirs.
  mkdirs(br(1) + "/z");
  write_file(br(1) + "/z/one", "1");
  write_file(br(2) + "/z", "file");
  mkdirs(br(3) + "/z");
  write_file(br(3) + "/z/three", "3");
  mount();
  auto x = walk("x");
  ASSERT_TRUE(x.ok());
  EXPECT_TRUE(S_ISREG(x->attr.st_mode));
  EXPECT_EQ(walk("x/in").err(), ENOTDIR);
  auto y = walk("y");
  ASSERT_TRUE(y.ok());
  EXPECT_TRUE(S_ISDIR(y->attr.st_mode));
  EXPECT_EQ(ls("z"), (std::vector<std::string>{"one", "three"}));
}

TEST_F(UnionTest, ReservedAndLongNames) {
  make_branches({"rw"});
  mount();
  EXPECT_EQ(walk(".wh.x").err(), EPERM);
  EXPECT_EQ(create(".wh.x"), EPERM);
  EXPECT_EQ(mkdir(".wh..wh.plnk"), EPERM);
  EXPECT_EQ(create(std::string(243, 'n')), ENAMETOOLONG);
  EXPECT_EQ(create(std::string(242, 'n')), 0);
  auto sf = fs->statfs();
  ASSERT_TRUE(sf.ok());
  EXPECT_EQ(sf->f_namemax, 242u);
}

TEST_F(UnionTest, InodeNumbersAndReaddirAgree) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "f");
  mkdirs(br(1) + "/d");
  mount();
  auto dh = fs->opendir(kRootId);
  ASSERT_TRUE(dh.ok());
  for (auto& e : dh.value()->entries) {
    auto w = walk(e.name);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(fs->entry_ino(e), w->attr.st_ino) << e.name;
  }
  auto d = walk("d");
  EXPECT_EQ(create("d/new"), 0);  // copies d up
  EXPECT_TRUE(exists(br(0) + "/d"));
  EXPECT_EQ(walk("d")->attr.st_ino, d->attr.st_ino);
  EXPECT_EQ(walk("")->attr.st_ino, 2u);
}

TEST_F(UnionTest, CrashLeftoverNameAndWhiteoutRealEntryWins) {
  make_branches({"rw", "ro"});
  write_file(br(0) + "/f", "upper");
  write_file(br(0) + "/.wh.f", "", 0444);
  write_file(br(1) + "/f", "lower");
  mount();
  EXPECT_EQ(cat("f"), "upper");
  EXPECT_EQ(ls(""), std::vector<std::string>{"f"});
}

TEST_F(UnionTest, InvalidWhiteoutIsEio) {
  make_branches({"rw", "ro+wh", "ro"});
  mkdirs(br(1) + "/.wh.bad");
  write_file(br(2) + "/bad", "x");
  mount();
  EXPECT_EQ(walk("bad").err(), EIO);
}

TEST_F(UnionTest, SymlinksInBranchesAreNeverFollowed) {
  make_branches({"rw", "ro"});
  TempDir outside;
  write_file(outside / "secret", "s");
  ASSERT_EQ(::symlink(outside.path().c_str(), (br(1) + "/d").c_str()), 0);
  ASSERT_EQ(::symlink("../../..", (br(1) + "/up").c_str()), 0);
  mount();
  auto d = walk("d");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(S_ISLNK(d->attr.st_mode));
  EXPECT_EQ(walk("d/secret").err(), ENOTDIR);
  EXPECT_EQ(unlink("d"), 0);
  EXPECT_TRUE(exists(outside / "secret"));
  EXPECT_TRUE(exists(br(1) + "/d"));
  // The beneath-resolver refuses to leave a branch.
  auto r = sys::open_beneath(fs->branches()->br[1]->root.get(), "up/etc/passwd", O_RDONLY);
  EXPECT_FALSE(r.ok());
  auto r2 = sys::open_beneath(fs->branches()->br[1]->root.get(), "../b0", O_PATH);
  EXPECT_EQ(r2.err(), EXDEV);
}

TEST_F(UnionTest, ForgetReleasesNodes) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/a/b/c");
  write_file(br(1) + "/a/b/c/f", "x");
  mount();
  size_t base = fs->node_count();
  std::vector<NodeId> ids;
  for (const char* p : {"a", "a/b", "a/b/c", "a/b/c/f"}) ids.push_back(walk(p)->id);
  // walk() looked each prefix up again: a 4, b 3, c 2, f 1 references.
  EXPECT_EQ(fs->node_count(), base + 4);
  fs->forget(ids[0], 4);
  EXPECT_EQ(fs->node_count(), base + 4) << "children keep the parent alive";
  fs->forget(ids[3], 1);
  fs->forget(ids[2], 2);
  fs->forget(ids[1], 3);
  EXPECT_EQ(fs->node_count(), base);
}

TEST_F(UnionTest, OciWhiteoutRuleIsAnOption) {
  // An OCI layer may hold X and .wh.X together: X is the layer's own entry
  // (added after deleting a lower X). AUFS hides it; the OCI rule keeps it.
  make_branches({"rw", "ro+wh", "ro"});
  write_file(br(1) + "/x", "layer1");
  write_file(br(1) + "/.wh.x", "", 0444);
  write_file(br(2) + "/x", "base");
  write_file(br(2) + "/y", "base-y");
  write_file(br(1) + "/.wh.y", "", 0444);
  mount();
  EXPECT_EQ(walk("x").err(), ENOENT) << "AUFS: a whiteout hides its own branch too";
  EXPECT_EQ(ls(""), std::vector<std::string>{});
  fs.reset();
  mount("ociwh");
  EXPECT_EQ(cat("x"), "layer1");
  EXPECT_EQ(walk("y").err(), ENOENT) << "lower layers stay hidden";
  EXPECT_EQ(ls(""), std::vector<std::string>{"x"});
}

TEST_F(UnionTest, CachedFileFollowsRenamedDirectory) {
  make_branches({"rw", "ro"});
  mount();
  EXPECT_EQ(mkdir("a"), 0);
  EXPECT_EQ(create("a/f", "1"), 0);
  NodeId f = walk("a/f")->id;  // the kernel keeps this node across the rename
  EXPECT_EQ(rename("a", "b"), 0);
  auto fh = fs->open(f, O_RDONLY, Ctx{});
  ASSERT_TRUE(fh.ok()) << fh.err();
  char buf[4] = {};
  EXPECT_EQ(::pread(fs->io_fd(*fh.value()).value()->get(), buf, sizeof buf, 0), 1);
  fs->release(std::move(fh.value()));
  EXPECT_TRUE(fs->getattr(f).ok());
}

namespace aufs::test {

// Lookups reuse a directory's branch parts and the names of its read-only
// parts; without a watch (as here: no FUSE, no inotify) a name made or
// removed directly in a read-only branch must show at the next lookup.
TEST_F(UnionTest, LowerNameSetsSeeDirectEditsAtOnce) {
  make_branches({"rw", "ro+wh", "ro"});
  mkdirs(br(1) + "/d");
  mkdirs(br(2) + "/d");
  write_file(br(2) + "/d/low", "l");
  // Directories changed in the last 50 ms get no name set (util.hpp, recent).
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  mount();
  NodeId d = dir("d");
  for (int i = 0; i < 4; ++i) {  // builds the name sets
    EXPECT_EQ(fs->lookup(d, "absent").err(), ENOENT);
    EXPECT_TRUE(fs->lookup(d, "low").ok());
  }
  write_file(br(1) + "/d/absent", "direct");
  EXPECT_TRUE(fs->lookup(d, "absent").ok()) << "a stale name set hid a new name";
  ASSERT_EQ(::unlink((br(2) + "/d/low").c_str()), 0);
  EXPECT_EQ(fs->lookup(d, "low").err(), ENOENT);
  write_file(br(1) + "/d/.wh.absent2", "");
  write_file(br(2) + "/d/absent2", "x");
  EXPECT_EQ(fs->lookup(d, "absent2").err(), ENOENT) << "whiteout in a name set missed";
}

// A branch directory renamed behind the union's back: its cached fd is
// used at most for the reval window (1 s), then the path is opened again.
TEST_F(UnionTest, CachedPartsFollowADirectRenameAfterTheWindow) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/d");
  write_file(br(1) + "/d/old", "o");
  mount("udba=reval");
  NodeId d = dir("d");
  EXPECT_TRUE(fs->lookup(d, "old").ok());
  ASSERT_EQ(::rename((br(1) + "/d").c_str(), (br(1) + "/moved").c_str()), 0);
  mkdirs(br(1) + "/d");
  write_file(br(1) + "/d/new", "n");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_TRUE(fs->lookup(d, "new").ok());
  EXPECT_EQ(fs->lookup(d, "old").err(), ENOENT);
}

}  // namespace aufs::test
