// SPDX-License-Identifier: GPL-2.0-or-later
// Core tier (several writable branches (policies) and live branch changes).
#include "union_fixture.hpp"

using namespace aufs;
using namespace aufs::test;

namespace {
std::string branch_list(Union& u) {
  std::string s;
  auto bs = u.branches();
  for (size_t i = 0; i < bs->size(); ++i)
    s += (i ? ":" : "") + std::to_string((*bs)[i].id) + "=" + format_perm((*bs)[i].spec);
  return s;
}
Status change(Union& u, const std::string& spec, std::string* msg = nullptr) {
  std::vector<BranchOp> ops;
  EXPECT_EQ(parse_branch_ops(spec, false, ops), "");
  return u.change_branches(ops, msg);
}
}  // namespace

TEST_F(UnionTest, ReadOnlyMountRefusesWrites) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "f");
  mount("ro");
  EXPECT_EQ(create("n"), EROFS);
  EXPECT_EQ(unlink("f"), EROFS);
  EXPECT_EQ(fs->open(walk("f")->id, O_RDWR, Ctx{}).err(), EROFS);
  EXPECT_FALSE(exists(br(0) + "/.wh..wh.aufs"));
}

TEST_F(UnionTest, SeveralWritableBranchesTdp) {
  make_branches({"rw", "rw", "ro"});
  mkdirs(br(1) + "/only1");
  write_file(br(1) + "/only1/f", "in place");
  mkdirs(br(2) + "/low");
  write_file(br(2) + "/low/g", "g");
  mount();
  // tdp: the parent's top branch (rw 1) takes the new entry.
  EXPECT_EQ(create("only1/new", "n"), 0);
  EXPECT_TRUE(exists(br(1) + "/only1/new"));
  EXPECT_FALSE(exists(br(0) + "/only1"));
  // A file on a lower writable branch is modified in place.
  append("only1/f", "+");
  EXPECT_EQ(read_file(br(1) + "/only1/f"), "in place+");
  EXPECT_FALSE(exists(br(0) + "/only1/f"));
  // Removing it needs no whiteout (nothing below).
  EXPECT_EQ(unlink("only1/f"), 0);
  EXPECT_FALSE(exists(br(1) + "/only1/.wh.f"));
  // Copy-up from the ro branch: tdp takes the nearest writable branch
  // above the parent's top (AUFS scans upward from there).
  append("low/g", "+");
  EXPECT_EQ(read_file(br(1) + "/low/g"), "g+");
  EXPECT_FALSE(exists(br(0) + "/low"));
}

TEST_F(UnionTest, CreateRoundRobin) {
  make_branches({"rw", "rw", "ro"});
  mount("create=rr");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(create("f" + std::to_string(i)), 0);
  EXPECT_TRUE(exists(br(0) + "/f0"));
  EXPECT_TRUE(exists(br(1) + "/f1"));
  EXPECT_TRUE(exists(br(0) + "/f2"));
  EXPECT_TRUE(exists(br(1) + "/f3"));
  EXPECT_EQ(ls(""), (std::vector<std::string>{"f0", "f1", "f2", "f3"}));
}

TEST_F(UnionTest, CreateRoundRobinRespectsWhiteouts) {
  make_branches({"rw", "rw", "ro"});
  write_file(br(2) + "/x", "lower");
  mount("create=rr");
  EXPECT_EQ(create("a"), 0);        // rr -> branch 0; next would be 1
  EXPECT_EQ(unlink("x"), 0);        // whiteout on branch 0
  EXPECT_TRUE(exists(br(0) + "/.wh.x"));
  EXPECT_EQ(create("x", "new"), 0);  // must land on 0, above the whiteout
  EXPECT_TRUE(exists(br(0) + "/x"));
  EXPECT_EQ(cat("x"), "new");
}

TEST_F(UnionTest, CopyUpBottomUp) {
  make_branches({"rw", "rw", "ro"});
  mkdirs(br(2) + "/d");
  write_file(br(2) + "/d/f", "f");
  mount("cpup=bu");
  append("d/f", "+");
  EXPECT_EQ(read_file(br(1) + "/d/f"), "f+") << "bu: nearest writable above the source";
  EXPECT_FALSE(exists(br(0) + "/d/f"));
}

TEST_F(UnionTest, CreateMostFreeSpace) {
  if (!daemon_is_root()) GTEST_SKIP() << "needs root to mount tmpfs branches";
  make_branches({"rw", "rw", "ro"});
  ASSERT_EQ(::system(("mount -t tmpfs -o size=2m t " + br(0) + " && mount -t tmpfs -o size=8m t " + br(1)).c_str()), 0);
  struct Umount {
    std::string a, b;
    ~Umount() { (void)!::system(("umount " + a + " " + b).c_str()); }
  } um{br(0), br(1)};
  mount("create=mfs:0");
  EXPECT_EQ(create("big"), 0);
  EXPECT_TRUE(exists(br(1) + "/big")) << "branch 1 has the most free space";
  fs.reset();
  mount("create=tdmfs:1048576:0");
  EXPECT_EQ(create("td"), 0);
  EXPECT_TRUE(exists(br(0) + "/td")) << "top-most branch with more than 1 MiB free";
  fs.reset();
  mount("create=tdmfs:4194304:0");
  EXPECT_EQ(create("td2"), 0);
  EXPECT_TRUE(exists(br(1) + "/td2")) << "branch 0 has less than 4 MiB free";
  fs.reset();
}

TEST_F(UnionTest, LiveBranchChanges) {
  make_branches({"rw", "ro"});
  mkdirs(tmp / "extra");
  write_file(tmp / "extra/e", "extra");
  write_file(br(1) + "/f", "lower");
  mount();
  EXPECT_EQ(walk("e").err(), ENOENT);
  ASSERT_TRUE(change(*fs, "append:" + (tmp / "extra") + "=ro+wh").ok());
  EXPECT_EQ(cat("e"), "extra");
  EXPECT_EQ(branch_list(*fs), "0=rw:1=ro:2=ro+wh");
  // prepend: a new top branch shadows; ids stay with their branches.
  mkdirs(tmp / "top");
  write_file(tmp / "top/f", "top");
  ASSERT_TRUE(change(*fs, "prepend:" + (tmp / "top") + "=ro").ok());
  EXPECT_EQ(branch_list(*fs), "3=ro:0=rw:1=ro:2=ro+wh");
  EXPECT_EQ(cat("f"), "top");
  // del with an open file: EBUSY, nothing changed.
  auto fh = fs->open(walk("e")->id, O_RDONLY, Ctx{});
  ASSERT_TRUE(fh.ok());
  std::string msg;
  EXPECT_EQ(change(*fs, "del:" + (tmp / "extra"), &msg).err(), EBUSY);
  EXPECT_NE(msg.find("open files"), std::string::npos);
  fs->release(std::move(fh.value()));
  ASSERT_TRUE(change(*fs, "del:" + (tmp / "extra")).ok());
  EXPECT_EQ(walk("e").err(), ENOENT);
  // Bad index, relative path.
  EXPECT_EQ(change(*fs, "add:9:" + (tmp / "extra")).err(), EDOM);
  EXPECT_EQ(change(*fs, "append:relative/dir").err(), EINVAL);
  // A no-op change (unknown del path) changes nothing, not even counters.
  uint64_t n = fs->counters().branch_changes.load();
  EXPECT_TRUE(change(*fs, "del:/nonexistent/branch").ok());
  EXPECT_EQ(fs->counters().branch_changes.load(), n);
}

TEST_F(UnionTest, RefusedBranchChangeLeavesDiskUntouched) {
  make_branches({"rw", "ro"});
  mkdirs(tmp / "t");
  mount();
  EXPECT_TRUE(exists(br(0) + "/.wh..wh.aufs"));
  // mod rw->ro would remove the base, prepend rw would create metadata, but
  // the last op fails: all or nothing.
  auto st = change(*fs, "mod:" + br(0) + "=ro,prepend:" + (tmp / "t") + "=rw,add:99:" + br(1));
  EXPECT_EQ(st.err(), EDOM);
  EXPECT_TRUE(exists(br(0) + "/.wh..wh.aufs"));
  EXPECT_FALSE(exists(tmp / "t/.wh..wh.aufs"));
  EXPECT_EQ(branch_list(*fs), "0=rw:1=ro");
}

TEST_F(UnionTest, ModRwRoAndReadOnlyRemount) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "f");
  mount();
  auto w = fs->open(walk("f")->id, O_WRONLY, Ctx{});
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(change(*fs, "mod:" + br(0) + "=ro").err(), EBUSY);
  fs->release(std::move(w.value()));
  ASSERT_TRUE(change(*fs, "mod:" + br(0) + "=ro").ok());
  EXPECT_FALSE(exists(br(0) + "/.wh..wh.aufs"));
  EXPECT_EQ(create("n"), EROFS);
  ASSERT_TRUE(change(*fs, "mod:" + br(0) + "=rw").ok());
  EXPECT_TRUE(exists(br(0) + "/.wh..wh.aufs"));
  EXPECT_EQ(create("n"), 0);
  ASSERT_TRUE(change(*fs, "ro").ok());
  EXPECT_EQ(create("m"), EROFS);
  ASSERT_TRUE(change(*fs, "rw").ok());
  EXPECT_EQ(create("m"), 0);
}

namespace aufs::test {

// user.aufs.stats of the control file shows what the FUSE layer hands in
// (core tests have none) and passes "reset" on to it.
TEST_F(UnionTest, ControlFileStatsComeFromTheFuseLayer) {
  make_branches({"rw"});
  mount();
  const char* key = "user.aufs.stats";
  Ctx root{};
  EXPECT_EQ(fs->getxattr(kControlId, key, 4096).err(), ENODATA);
  EXPECT_EQ(fs->setxattr(kControlId, key, "reset", 5, 0, root).err(), ENOTSUP);
  int resets = 0;
  fs->set_request_stats({[] { return std::string(R"({"lookup":7})"); }, [&] { ++resets; }});
  auto j = fs->getxattr(kControlId, key, 4096);
  ASSERT_TRUE(j.ok()) << j.err();
  EXPECT_EQ(std::string(j->begin(), j->end()), R"({"requests":{"lookup":7}})");
  auto names = fs->listxattr(kControlId, 4096);
  ASSERT_TRUE(names.ok());
  EXPECT_NE(std::string(names->begin(), names->end()).find(std::string(key) + '\0'), std::string::npos);
  EXPECT_TRUE(fs->setxattr(kControlId, key, "reset\n", 6, 0, root).ok());
  EXPECT_EQ(resets, 1);
  EXPECT_EQ(fs->setxattr(kControlId, key, "zero", 4, 0, root).err(), EINVAL);
  Ctx other{};
  other.uid = 4242;
  EXPECT_EQ(fs->setxattr(kControlId, key, "reset", 5, 0, other).err(), EPERM);
  EXPECT_EQ(resets, 1);
  fs->set_request_stats({});
  EXPECT_EQ(fs->getxattr(kControlId, key, 4096).err(), ENODATA);
}

}  // namespace aufs::test

// A change that changes nothing, or leaves no writable branch, comes back
// with a note for the user (the tools print it); a plain change with none.
TEST_F(UnionTest, BranchChangeNotesSayWhatHappened) {
  make_branches({"rw", "ro"});
  mount();
  std::string msg;
  ASSERT_TRUE(change(*fs, "append:" + br(1), &msg).ok());
  EXPECT_EQ(msg, "nothing changed: branch '" + br(1) + "' is branch 1 already: not added again");
  ASSERT_TRUE(change(*fs, "del:" + br(1) + "-none", &msg).ok());
  EXPECT_EQ(msg, "nothing changed: no branch '" + br(1) + "-none': nothing deleted");
  ASSERT_TRUE(change(*fs, "mod:" + br(1) + "=ro", &msg).ok());
  EXPECT_EQ(msg, "nothing changed: branch '" + br(1) + "' is ro already");
  std::string before = branch_list(*fs);
  ASSERT_TRUE(change(*fs, "mod:" + br(1) + "=ro+wh", &msg).ok());
  EXPECT_EQ(msg, "");
  EXPECT_NE(branch_list(*fs), before);
  ASSERT_TRUE(change(*fs, "del:" + br(0), &msg).ok());
  EXPECT_EQ(msg, "no writable branch is left: writes fail (EROFS) until one is added");
  EXPECT_EQ(create("n"), EROFS);
}
