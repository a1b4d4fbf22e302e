// SPDX-License-Identifier: GPL-2.0-or-later
// Core tier (dirren: directory rename through redirect records).
#include "union_fixture.hpp"

using namespace aufs;
using namespace aufs::test;

// ---- dirren: directory rename through redirect records ----

namespace {
const std::string kRec = "/.wh..wh..dr.aufs-fuse";
}

TEST_F(UnionTest, DirrenRenameKeepsLowerContentsAndNumbers) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/a/sub");
  write_file(br(1) + "/a/x", "lower x");
  write_file(br(1) + "/a/sub/y", "lower y");
  mount("dirren");
  auto a0 = walk("a"), x0 = walk("a/x"), s0 = walk("a/sub");
  ASSERT_TRUE(a0.ok() && x0.ok() && s0.ok());
  EXPECT_EQ(rename("a", "b"), 0);
  EXPECT_EQ(ls(""), std::vector<std::string>{"b"});
  EXPECT_EQ(walk("a").err(), ENOENT);
  EXPECT_EQ(ls("b"), (std::vector<std::string>{"sub", "x"}));
  EXPECT_EQ(cat("b/x"), "lower x");
  EXPECT_EQ(cat("b/sub/y"), "lower y");
  EXPECT_EQ(walk("b")->attr.st_ino, a0->attr.st_ino);
  EXPECT_EQ(walk("b/x")->attr.st_ino, x0->attr.st_ino);
  EXPECT_EQ(walk("b/sub")->attr.st_ino, s0->attr.st_ino);
  // Nothing copied: the rw branch holds the directory, its record and the
  // old name's whiteout; the lower branch is untouched.
  EXPECT_TRUE(exists(br(0) + "/b" + kRec));
  EXPECT_TRUE(exists(br(0) + "/.wh.a"));
  EXPECT_FALSE(exists(br(0) + "/b/x"));
  EXPECT_EQ(list(br(1)), std::vector<std::string>{"a"});
  EXPECT_EQ(read_file(br(1) + "/a/x"), "lower x");
  auto check = check_branch(br(0), false);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->issues.empty());

  fs.reset();  // remount: the record alone carries the redirect
  mount("dirren");
  EXPECT_EQ(ls(""), std::vector<std::string>{"b"});
  EXPECT_EQ(ls("b"), (std::vector<std::string>{"sub", "x"}));
  EXPECT_EQ(cat("b/sub/y"), "lower y");
  EXPECT_EQ(walk("b")->attr.st_ino, a0->attr.st_ino);
  EXPECT_EQ(walk("b/x")->attr.st_ino, x0->attr.st_ino);

  fs.reset();  // without dirren the record is ignored (AUFS does the same)
  mount();
  EXPECT_EQ(ls("b"), std::vector<std::string>{});
  EXPECT_EQ(walk("a").err(), ENOENT);
}

TEST_F(UnionTest, DirrenNestedChainsAndBack) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/p/a/s");
  write_file(br(1) + "/p/a/x", "x");
  write_file(br(1) + "/p/a/s/y", "y");
  mount("dirren");
  EXPECT_EQ(rename("p/a", "p/b"), 0);
  EXPECT_EQ(rename("p/b", "p/c"), 0);            // a chain: the record moves along
  EXPECT_EQ(rename("p/c/s", "p/c/t"), 0);        // a lower-only dir inside a renamed one
  EXPECT_EQ(rename("p", "q"), 0);                // the parent of renamed dirs
  EXPECT_EQ(ls(""), std::vector<std::string>{"q"});
  EXPECT_EQ(ls("q"), std::vector<std::string>{"c"});
  EXPECT_EQ(ls("q/c"), (std::vector<std::string>{"t", "x"}));
  EXPECT_EQ(cat("q/c/t/y"), "y");
  EXPECT_EQ(mkdir("q/c/new"), 0);
  EXPECT_EQ(rename("q/c", "q/a"), 0);  // back to a name the lower branch has
  EXPECT_EQ(rename("q", "p"), 0);      // and the parent back to its old name
  EXPECT_EQ(ls("p/a"), (std::vector<std::string>{"new", "t", "x"}));
  EXPECT_EQ(cat("p/a/t/y"), "y");
  EXPECT_EQ(walk("p/a/s").err(), ENOENT);
  fs.reset();
  mount("dirren");
  EXPECT_EQ(ls(""), std::vector<std::string>{"p"});
  EXPECT_EQ(ls("p/a"), (std::vector<std::string>{"new", "t", "x"}));
  EXPECT_EQ(cat("p/a/t/y"), "y");
  EXPECT_EQ(cat("p/a/x"), "x");
  EXPECT_EQ(list(br(1) + "/p/a"), (std::vector<std::string>{"s", "x"}));
}

TEST_F(UnionTest, DirrenWritesWhiteoutsAndRmdir) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/a");
  write_file(br(1) + "/a/x", "x");
  write_file(br(1) + "/a/y", "y");
  mount("dirren");
  EXPECT_EQ(rename("a", "b"), 0);
  append("b/x", "+more");  // copy-up goes to the new name on the rw branch
  EXPECT_EQ(read_file(br(0) + "/b/x"), "x+more");
  EXPECT_EQ(read_file(br(1) + "/a/x"), "x");
  EXPECT_EQ(rename("b/y", "b/y2"), 0);  // a lower file renamed inside: copied up, old name whited out
  EXPECT_EQ(cat("b/y2"), "y");
  EXPECT_EQ(walk("b/y").err(), ENOENT);
  EXPECT_EQ(rename("b/y2", "b/y"), 0);
  EXPECT_EQ(unlink("b/y"), 0);  // only in the old lower dir: whited out under the new name
  EXPECT_TRUE(exists(br(0) + "/b/.wh.y"));
  EXPECT_EQ(walk("b/y").err(), ENOENT);
  EXPECT_EQ(create("b/z", "z"), 0);
  EXPECT_EQ(ls("b"), (std::vector<std::string>{"x", "z"}));
  EXPECT_EQ(rmdir("b"), ENOTEMPTY);
  EXPECT_EQ(unlink("b/x"), 0);
  EXPECT_EQ(unlink("b/z"), 0);
  EXPECT_EQ(ls("b"), std::vector<std::string>{});
  EXPECT_EQ(rmdir("b"), 0);
  EXPECT_EQ(ls(""), std::vector<std::string>{});
  EXPECT_TRUE(exists(br(1) + "/a/y"));
  fs.reset();
  mount("dirren");
  EXPECT_EQ(ls(""), std::vector<std::string>{});
  EXPECT_EQ(mkdir("b"), 0);
  EXPECT_EQ(ls("b"), std::vector<std::string>{});
}

TEST_F(UnionTest, DirrenStaleOrInvalidRecordsAreHarmless) {
  make_branches({"rw", "ro"});
  mkdirs(br(0) + "/gone");
  write_file(br(0) + "/gone" + kRec, "aufs-fuse-dirren 1\n1 2 3 /nowhere missing/dir\n", 0444);
  mkdirs(br(0) + "/bad");
  write_file(br(0) + "/bad/mine", "m");
  write_file(br(0) + "/bad" + kRec, "adr\x01 not ours", 0444);
  mkdirs(br(1) + "/bad");
  write_file(br(1) + "/bad/low", "l");
  mount("dirren");
  EXPECT_EQ(ls("gone"), std::vector<std::string>{});
  // An unreadable record: the directory merges by name as without dirren.
  EXPECT_EQ(ls("bad"), (std::vector<std::string>{"low", "mine"}));
  EXPECT_EQ(rmdir("gone"), 0);
  auto check = check_branch(br(0), false);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->issues.empty());
}

TEST_F(UnionTest, DirrenTwoLowerBranchesAndMovedBranchRoot) {
  make_branches({"rw", "ro", "ro"});
  mkdirs(br(1) + "/a");
  mkdirs(br(2) + "/a");
  write_file(br(1) + "/a/one", "1");
  write_file(br(2) + "/a/two", "2");
  mkdirs(br(2) + "/b");  // unrelated lower b: not merged into the renamed a
  write_file(br(2) + "/b/other", "o");
  mount("dirren");
  EXPECT_EQ(rmdir("b"), ENOTEMPTY);
  EXPECT_EQ(unlink("b/other"), 0);
  EXPECT_EQ(rmdir("b"), 0);
  // The lower b (its "other" still there) stays hidden under the moved a.
  EXPECT_EQ(rename("a", "b"), 0);
  EXPECT_EQ(ls("b"), (std::vector<std::string>{"one", "two"}));
  fs.reset();
  // The branch moved: the same directory under another path is found by
  // its root's device and inode.
  ASSERT_EQ(::rename(br(2).c_str(), (tmp / "moved").c_str()), 0);
  perms_ = {"rw", "ro"};
  auto r = parse_command_line({"-o", "br=" + br(0) + "=rw:" + br(1) + "=ro:" + (tmp / "moved") +
                                         "=ro,dirren", tmp / "mnt"});
  ASSERT_TRUE(r.ok()) << r.error;
  auto u = Union::mount(r.opts);
  ASSERT_TRUE(u.ok());
  fs = std::move(u.value());
  EXPECT_EQ(ls("b"), (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(cat("b/two"), "2");
}

TEST_F(UnionTest, DirrenWithSeveralWritableBranchesKeepsWritablePartsInPlace) {
  // Writes find a writable branch's copy by the directory's own path, so a
  // directory with entries on a lower writable branch keeps the EXDEV rule;
  // an empty writable part is hidden, not recorded.
  make_branches({"rw", "rw", "ro"});
  mkdirs(br(0) + "/a");
  mkdirs(br(1) + "/a");
  write_file(br(1) + "/a/w", "on rw2");
  mkdirs(br(2) + "/a");
  write_file(br(2) + "/a/r", "on ro");
  mkdirs(br(0) + "/e");
  mkdirs(br(1) + "/e");  // empty on rw2, entries on ro
  mkdirs(br(2) + "/e");
  write_file(br(2) + "/e/r", "e on ro");
  mkdirs(br(1) + "/g");  // its top copy on rw2: renamed there
  write_file(br(1) + "/g/w", "g on rw2");
  mkdirs(br(2) + "/g");
  write_file(br(2) + "/g/r", "g on ro");
  mount("dirren");
  EXPECT_EQ(rename("a", "b"), EXDEV);
  EXPECT_EQ(ls("a"), (std::vector<std::string>{"r", "w"}));
  EXPECT_TRUE(exists(br(1) + "/a/w"));

  EXPECT_EQ(rename("e", "f"), 0);
  EXPECT_EQ(ls("f"), std::vector<std::string>{"r"});
  std::string rec = read_file(br(0) + "/f" + kRec);
  EXPECT_NE(rec.find(br(2)), std::string::npos) << rec;
  EXPECT_EQ(rec.find(br(1)), std::string::npos) << rec;
  // Writes in the moved directory land on the top branch at the new path;
  // unlinking the read-only part's file whites it out there.
  EXPECT_EQ(create("f/n", "new"), 0);
  EXPECT_EQ(unlink("f/r"), 0);
  EXPECT_EQ(ls("f"), std::vector<std::string>{"n"});
  EXPECT_TRUE(exists(br(0) + "/f/n"));
  EXPECT_TRUE(exists(br(0) + "/f/.wh.r"));
  EXPECT_TRUE(exists(br(2) + "/e/r"));
  EXPECT_TRUE(exists(br(1) + "/e"));
  EXPECT_EQ(walk("e").err(), ENOENT);
  EXPECT_EQ(unlink("f/n"), 0);
  EXPECT_EQ(rmdir("f"), 0);

  EXPECT_EQ(rename("g", "h"), 0);
  EXPECT_EQ(ls("h"), (std::vector<std::string>{"r", "w"}));
  EXPECT_TRUE(exists(br(1) + "/h/w"));
  EXPECT_TRUE(exists(br(1) + "/h" + kRec));
  EXPECT_TRUE(exists(br(1) + "/.wh.g"));
  EXPECT_EQ(unlink("h/w"), 0);  // in place on rw2, at the new path
  EXPECT_FALSE(exists(br(1) + "/h/w"));
  EXPECT_EQ(cat("h/r"), "g on ro");

  EXPECT_EQ(ls(""), (std::vector<std::string>{"a", "h"}));
  fs.reset();
  mount("dirren");
  EXPECT_EQ(ls(""), (std::vector<std::string>{"a", "h"}));
  EXPECT_EQ(ls("a"), (std::vector<std::string>{"r", "w"}));
  EXPECT_EQ(ls("h"), std::vector<std::string>{"r"});
}

TEST_F(UnionTest, DirrenRecordNamingAWritableBranchIsNotFollowed) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/a");
  write_file(br(1) + "/a/x", "x");
  mount("dirren");
  ASSERT_EQ(rename("a", "b"), 0);
  EXPECT_EQ(ls("b"), std::vector<std::string>{"x"});
  fs.reset();
  // The same branches, the lower one now writable: its part would be
  // written at the wrong path, so it is not merged.
  perms_ = {"rw", "rw"};
  mount("dirren");
  EXPECT_EQ(ls("b"), std::vector<std::string>{});
  EXPECT_EQ(create("b/y", "y"), 0);
  EXPECT_TRUE(exists(br(0) + "/b/y"));
  EXPECT_FALSE(exists(br(1) + "/b"));
  EXPECT_EQ(read_file(br(1) + "/a/x"), "x");
}

TEST_F(UnionTest, DirrenRecordAddedLaterIsSeenDespiteTheCache) {
  make_branches({"rw", "ro"});
  mkdirs(br(0) + "/new");
  mkdirs(br(1) + "/old");
  write_file(br(1) + "/old/f", "f");
  ::usleep(100 * 1000);  // the dir's ctime is old enough to be cached
  mount("dirren");
  EXPECT_EQ(ls("new"), std::vector<std::string>{});
  EXPECT_EQ(ls("new"), std::vector<std::string>{});  // "no record" is now cached
  struct stat rs, ds;
  ASSERT_EQ(::stat(br(1).c_str(), &rs), 0);
  ASSERT_EQ(::stat((br(1) + "/old").c_str(), &ds), 0);
  // What a rename by another mount (or a restore) leaves: the ctime moves.
  write_file(br(0) + "/new" + kRec,
             "aufs-fuse-dirren 1\n" + std::to_string(rs.st_dev) + " " + std::to_string(rs.st_ino) +
                 " " + std::to_string(ds.st_ino) + " " + br(1) + " old\n",
             0444);
  EXPECT_EQ(ls("new"), std::vector<std::string>{"f"});
  EXPECT_EQ(cat("new/f"), "f");
}

// The states a crash can leave between the steps of a dirren rename (see
// Union::rename): each shows the old name with its lower contents, or the
// new one.
TEST_F(UnionTest, DirrenInterruptedRenameShowsOldOrNewState) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/a");
  write_file(br(1) + "/a/f", "f");
  mount("dirren");
  EXPECT_EQ(rename("a", "b"), 0);
  std::string rec = read_file(br(0) + "/b" + kRec);
  ASSERT_FALSE(rec.empty());
  fs.reset();
  // Steps 1-2: the rw part at the old name with its record (and a leftover
  // record temporary): the old state.
  ASSERT_EQ(::rename((br(0) + "/b").c_str(), (br(0) + "/a").c_str()), 0);
  ASSERT_EQ(::unlink((br(0) + "/.wh.a").c_str()), 0);
  write_file(br(0) + "/a/.wh..wh..dr.aufs-fuse.0001", rec.substr(0, 5), 0444);
  mount("dirren");
  EXPECT_EQ(ls(""), std::vector<std::string>{"a"});
  EXPECT_EQ(cat("a/f"), "f");
  EXPECT_FALSE(exists(br(0) + "/a/.wh..wh..dr.aufs-fuse.0001"));  // removed by the mount's check
  fs.reset();
  // Step 3: the old name's whiteout too: the rw entry still wins.
  write_file(br(0) + "/.wh.a", "", 0444);
  mount("dirren,nochk");
  EXPECT_EQ(ls(""), std::vector<std::string>{"a"});
  EXPECT_EQ(cat("a/f"), "f");
  fs.reset();
  // The checker removes the whiteout and keeps the record.
  auto check = check_branch(br(0), true);
  ASSERT_TRUE(check.ok());
  EXPECT_EQ(check->issues.size(), 1u);  // the name with its whiteout
  EXPECT_TRUE(exists(br(0) + "/a" + kRec));
  // Step 4 done: the new state.
  ASSERT_EQ(::rename((br(0) + "/a").c_str(), (br(0) + "/b").c_str()), 0);
  write_file(br(0) + "/.wh.a", "", 0444);
  mount("dirren");
  EXPECT_EQ(ls(""), std::vector<std::string>{"b"});
  EXPECT_EQ(cat("b/f"), "f");
}
