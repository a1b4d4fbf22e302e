// SPDX-License-Identifier: GPL-2.0-or-later
// Core tier (requests interleaved by test hooks: stale lookups, removed nodes, reused inodes).
#include "union_fixture.hpp"

using namespace aufs;
using namespace aufs::test;

namespace {

// A lookup that resolves its name now but updates the node only when
// released, as a lookup slowed down by the scheduler would (test hooks).
class PausedLookupTest : public UnionTest {
 protected:
  void TearDown() override {
    if (t_.joinable()) release();
    UnionTest::TearDown();
  }
  // release_at_copy_up: the paused lookup finishes as soon as a change has
  // made sure of its copy-up (before it locates the node), and the change
  // waits for it.
  void pause_lookup(NodeId parent, const std::string& name, bool release_at_copy_up = false) {
    fs->set_test_hook([this, name, release_at_copy_up](std::string_view point, std::string_view n) {
      std::unique_lock<std::mutex> l(mu_);
      if (point == "make_entry" && n == name && stage_ == 0) {
        stage_ = 1;
        cv_.notify_all();
        cv_.wait(l, [this] { return stage_ >= 2; });
      } else if (point == "copied_up" && release_at_copy_up && stage_ == 1) {
        stage_ = 2;
        cv_.notify_all();
        cv_.wait(l, [this] { return stage_ == 3; });
      }
    });
    t_ = std::thread([this, parent, name] {
      auto r = fs->lookup(parent, name);
      paused_err_ = r.ok() ? 0 : r.err();
      paused_id_ = r.ok() ? r->id : 0;
      std::lock_guard<std::mutex> l(mu_);
      stage_ = 3;
      cv_.notify_all();
    });
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return stage_ >= 1; });
  }
  void release() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stage_ < 2) stage_ = 2;
      cv_.notify_all();
    }
    t_.join();
    fs->set_test_hook(nullptr);
  }
  std::mutex mu_;
  std::condition_variable cv_;
  int stage_ = 0;
  int paused_err_ = 0;  // the paused lookup's result
  NodeId paused_id_ = 0;
  std::thread t_;
};
}  // namespace

namespace {

// Found by the long form of Concurrency.DisjointNamesMatchPlainDirectory-
// WithKernelCache: once unlink or rename has removed a branch file, another
// request may create a file that gets the freed inode, hence the same inode
// number; the removal then looked its victim up by number and retired the
// new file's node (its requests failed with ENOENT). The hook runs the
// create in exactly that window.
class ReusedInodeTest : public UnionTest {
 protected:
  // Runs `remove` (which removes "a"); right after the branch file is gone,
  // creates files until one gets a's branch inode. Returns its node id, or 0
  // when the file system did not hand the inode out again.
  NodeId race(const std::function<int()>& remove) {
    struct stat st {};
    EXPECT_EQ(::lstat((br(0) + "/a").c_str(), &st), 0);
    NodeId reused = 0;
    int n = 0;
    fs->set_test_hook([&](std::string_view point, std::string_view name) {
      if (point != "unlinked" || name != "a" || n > 0) return;
      for (n = 1; n <= 64 && !reused; ++n) {
        std::string b = "b" + std::to_string(n);
        EXPECT_EQ(create(b, "new"), 0);
        struct stat bs {};
        if (::lstat((br(0) + "/" + b).c_str(), &bs) == 0 && bs.st_ino == st.st_ino) {
          auto e = walk(b);
          if (e.ok()) reused = e->id;
          reused_name_ = b;
        }
      }
    });
    EXPECT_EQ(remove(), 0);
    fs->set_test_hook(nullptr);
    return reused;
  }
  std::string reused_name_;
};

}  // namespace

// Found by Concurrency.WritesDuringLookupsNeverReachReadOnlyBranch: a lookup
// that resolved the name before a copy-up of its node finished set the
// node's layers back to the lower file afterwards (make_entry trusted the
// stale resolution): reads saw the old data, and an open for writing that
// located the node right then wrote into the read-only branch.
TEST_F(PausedLookupTest, StaleLookupKeepsCopiedUpFile) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "lower");
  mount();
  NodeId f = walk("f")->id;
  pause_lookup(kRootId, "f");  // resolved: on the ro branch
  write_node(f, "X");          // copy-up
  release();                   // the lookup ends after the copy-up
  EXPECT_EQ(read_node(f), "Xower");
  EXPECT_EQ(fs->getattr(f)->st_size, 5);
  write_node(f, "XY");
  EXPECT_EQ(read_file(br(1) + "/f"), "lower");
  EXPECT_EQ(read_file(br(0) + "/f"), "XYwer");
}

TEST_F(PausedLookupTest, OpenForWritingNeverUsesReadOnlyBranch) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "lower");
  mount();
  NodeId f = walk("f")->id;
  pause_lookup(kRootId, "f", true);  // ends between the open's copy-up and its fd
  write_node(f, "X");
  release();
  EXPECT_EQ(read_file(br(1) + "/f"), "lower") << "written through to the read-only branch";
  EXPECT_EQ(read_file(br(0) + "/f"), "Xower");
  EXPECT_EQ(read_node(f), "Xower");
}

TEST_F(PausedLookupTest, ChmodNeverUsesReadOnlyBranch) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "lower", 0644);
  mount();
  NodeId f = walk("f")->id;
  pause_lookup(kRootId, "f", true);
  SetAttrIn in;
  in.valid = SetAttrIn::kMode;
  in.mode = 0600;
  auto r = fs->setattr(f, in, nullptr, Ctx{});
  release();
  ASSERT_TRUE(r.ok()) << r.err();
  EXPECT_EQ(r->st_mode & 07777, 0600u);
  struct stat st;
  ASSERT_EQ(::lstat((br(1) + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u) << "chmod reached the read-only branch";
}

// The same for a directory: the stale lookup dropped the copied-up layer,
// so the directory's own new entries vanished from its listing.
TEST_F(PausedLookupTest, StaleLookupKeepsCopiedUpDirectoryLayer) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/d");
  write_file(br(1) + "/d/old", "x");
  mount();
  NodeId d = walk("d")->id;
  pause_lookup(kRootId, "d");
  EXPECT_EQ(create("d/new", "n"), 0);  // copies d up
  release();
  auto dh = fs->opendir(d);
  ASSERT_TRUE(dh.ok()) << dh.err();
  std::vector<std::string> names;
  for (auto& e : dh.value()->entries) names.push_back(e.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"new", "old"}));
  SetAttrIn in;
  in.valid = SetAttrIn::kMode;
  in.mode = 0700;
  ASSERT_TRUE(fs->setattr(d, in, nullptr, Ctx{}).ok());
  struct stat st;
  ASSERT_EQ(::lstat((br(1) + "/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u) << "chmod reached the read-only branch";
}

// Found by Concurrency.OverlappingNamesKeepInvariants (read ELOOP, write
// and truncate EINVAL): requests by node (open, setattr, readlink, copy-up)
// used the node's remembered name even after the name was removed and
// taken by an object of another type. They must reach the node's own
// removed object (as on a local filesystem) and never the new one.
TEST_F(UnionTest, RemovedNodeNeverReachesTheNewObjectOfItsName) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/low", "lower");
  mount();
  ASSERT_EQ(create("f", "data"), 0);
  ASSERT_EQ(create("g", "data"), 0);
  NodeId f = walk("f")->id, g = walk("g")->id, low = walk("low")->id;
  ASSERT_EQ(unlink("f"), 0);
  ASSERT_TRUE(fs->symlink("target", kRootId, "f", Ctx{}).ok());
  ASSERT_EQ(unlink("g"), 0);
  ASSERT_EQ(mkdir("g"), 0);
  ASSERT_EQ(unlink("low"), 0);
  ASSERT_TRUE(fs->mkdir(kRootId, "low", 0700, Ctx{}).ok());
  for (auto [id, was] : {std::pair{f, "data"}, std::pair{g, "data"}, std::pair{low, "lower"}}) {
    for (int flags : {O_RDONLY, O_RDWR}) {
      auto fh = fs->open(id, flags, Ctx{});
      ASSERT_TRUE(fh.ok()) << "node " << id << ": " << fh.err();
      auto st = sys::fstat_fd(fs->io_fd(*fh.value()).value()->get());
      EXPECT_TRUE(st.ok() && S_ISREG(st->st_mode)) << "node " << id << " opened the new object";
      fs->release(std::move(fh.value()));
    }
    EXPECT_EQ(read_node(id), was);
    SetAttrIn in;
    in.valid = SetAttrIn::kMode;
    in.mode = 0600;
    auto r = fs->setattr(id, in, nullptr, Ctx{});
    ASSERT_TRUE(r.ok()) << r.err();
    EXPECT_TRUE(S_ISREG(r->st_mode));
    EXPECT_EQ(r->st_mode & 07777, 0600u);
  }
  struct stat st;
  ASSERT_EQ(::lstat((br(0) + "/g").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u) << "chmod reached the new directory";
  ASSERT_EQ(::lstat((br(0) + "/low").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(fs->readlink(walk("f")->id).value(), "target");
  EXPECT_EQ(read_file(br(1) + "/low"), "lower");
  ASSERT_EQ(::lstat((br(1) + "/low").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u) << "the lower branch changed";
  EXPECT_TRUE(list(br(0) + "/" + std::string(wh::kOrph)).empty());
}

// A file removed while the kernel still knows its node stays reachable by
// node (an open racing the unlink, /proc/PID/fd, fchmod) until the node is
// forgotten; a change to a removed lower file goes to an unnamed copy on the
// rw branch, never to the lower branch, and brings no name back.
TEST_F(UnionTest, RemovedFileStaysReachableByNodeUntilForgotten) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/low", "lower");
  write_file(br(1) + "/victim", "old");
  mount();
  ASSERT_EQ(create("up", "upper"), 0);
  ASSERT_EQ(create("src", "new"), 0);
  const long before = Orphan::live.load();
  NodeId up = walk("up")->id, low = walk("low")->id, victim = walk("victim")->id;
  auto reader = fs->open(low, O_RDONLY, Ctx{});
  ASSERT_TRUE(reader.ok());
  ASSERT_EQ(unlink("up"), 0);
  ASSERT_EQ(unlink("low"), 0);
  ASSERT_EQ(rename("src", "victim"), 0);  // replaces the lower file
  EXPECT_EQ(Orphan::live.load(), before + 3);
  EXPECT_EQ(read_node(up), "upper");
  EXPECT_EQ(read_node(low), "lower");
  EXPECT_EQ(read_node(victim), "old");
  EXPECT_EQ(cat("victim"), "new");
  write_node(low, "LOW");
  EXPECT_EQ(read_node(low), "LOWer");
  std::string buf(16, '\0');
  ssize_t n = ::pread(fs->io_fd(*reader.value()).value()->get(), buf.data(), buf.size(), 0);
  EXPECT_EQ(buf.substr(0, n > 0 ? static_cast<size_t>(n) : 0), "LOWer") << "the reader was not moved to the copy";
  fs->release(std::move(reader.value()));
  auto st = fs->getattr(low);
  ASSERT_TRUE(st.ok()) << st.err();
  EXPECT_EQ(st->st_size, 5);
  EXPECT_EQ(read_file(br(1) + "/low"), "lower");
  EXPECT_EQ(read_file(br(1) + "/victim"), "old");
  EXPECT_FALSE(exists(br(0) + "/low"));
  EXPECT_FALSE(exists(br(0) + "/up"));
  EXPECT_EQ(walk("low").err(), ENOENT);
  EXPECT_TRUE(list(br(0) + "/" + std::string(wh::kOrph)).empty());
  SetAttrIn in;
  in.valid = SetAttrIn::kSize;
  in.size = 2;
  auto r = fs->setattr(victim, in, nullptr, Ctx{});
  ASSERT_TRUE(r.ok()) << r.err();
  EXPECT_EQ(r->st_size, 2);
  EXPECT_EQ(read_node(victim), "ol");
  EXPECT_EQ(read_file(br(1) + "/victim"), "old");
  fs->forget(up, 2);  // create and walk
  for (NodeId id : {low, victim}) fs->forget(id, 1);
  EXPECT_EQ(Orphan::live.load(), before) << "forget must drop what the node held";
}

// Found in review: removing one name of a hard-linked file kept an orphan
// descriptor for a node that still had a name (until the kernel forgot it,
// using up the orphan budget), and served it where its name should be used.
TEST_F(UnionTest, RemovingOneOfTwoNamesKeepsNoOrphan) {
  make_branches({"rw", "ro"});
  mount();
  ASSERT_EQ(create("a", "data"), 0);
  NodeId a = walk("a")->id;
  ASSERT_TRUE(fs->link(a, kRootId, "b", Ctx{}).ok());
  const long before = Orphan::live.load();
  ASSERT_EQ(unlink("a"), 0);
  EXPECT_EQ(Orphan::live.load(), before) << "an orphan for a node that still has a name";
  EXPECT_EQ(read_node(a), "data");
  write_node(a, "DATA");
  EXPECT_EQ(cat("b"), "DATA");
  ASSERT_EQ(unlink("b"), 0);
  EXPECT_EQ(Orphan::live.load(), before + 1) << "the last name is gone: the node keeps its file";
  EXPECT_EQ(read_node(a), "DATA");
}

// Found by Concurrency.OverlappingNamesKeepInvariants: a lookup that
// resolved a name before the node was renamed moved the node back to the
// old name afterwards (its parent and name), so requests by node went to
// the wrong path.
TEST_F(PausedLookupTest, StaleLookupDoesNotUndoRename) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "A");
  mount();
  NodeId a = walk("a")->id;
  pause_lookup(kRootId, "a");
  ASSERT_EQ(rename("a", "b"), 0);
  release();
  EXPECT_NE(paused_err_, 0) << "the stale lookup succeeded";
  EXPECT_EQ(read_node(a), "A");
  write_node(a, "B");
  EXPECT_EQ(cat("b"), "B");
  EXPECT_EQ(walk("b")->id, a);
  EXPECT_EQ(walk("a").err(), ENOENT);
  EXPECT_EQ(read_file(br(1) + "/a"), "A");
}

// Found by Concurrency.OverlappingNamesKeepInvariants ("name and its
// whiteout both exist" on the rw branch): a lookup that resolved a lower
// file before it was unlinked made the node linked again, and a write
// through it copied the removed file up next to its whiteout: it was back.
TEST_F(PausedLookupTest, StaleLookupDoesNotBringUnlinkedFileBack) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "lower");
  mount();
  NodeId f = walk("f")->id;
  pause_lookup(kRootId, "f");
  ASSERT_EQ(unlink("f"), 0);
  release();
  EXPECT_EQ(paused_err_, ENOENT) << "a node for a removed name";
  // Neither node may write the file back (a write through the removed
  // file's node goes to an unnamed copy).
  for (NodeId id : {f, paused_id_}) {
    if (!id) continue;
    auto fh = fs->open(id, O_WRONLY, Ctx{});
    if (fh.ok()) fs->release(std::move(fh.value()));
  }
  EXPECT_EQ(walk("f").err(), ENOENT) << "the removed file came back";
  EXPECT_FALSE(exists(br(0) + "/f"));
}

// Found by Concurrency.OverlappingNamesKeepInvariants: an open for writing
// copied the file up while an unlink of it was between its lookup and its
// whiteout; the whiteout then sat next to the copy, and the removed file
// was still there.
TEST_F(PausedLookupTest, UnlinkRacingCopyUpRemovesTheCopy) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "lower");
  mount();
  NodeId f = walk("f")->id;
  bool done = false;
  fs->set_test_hook([&](std::string_view point, std::string_view name) {
    if (point != "unlink" || name != "f" || done) return;
    done = true;
    write_node(f, "X");  // copy-up after unlink resolved the lower file
  });
  EXPECT_EQ(unlink("f"), 0);
  fs->set_test_hook(nullptr);
  EXPECT_TRUE(done);
  EXPECT_EQ(walk("f").err(), ENOENT) << "the removed file came back";
  EXPECT_FALSE(exists(br(0) + "/f"));
  EXPECT_EQ(read_file(br(1) + "/f"), "lower");
}

TEST_F(ReusedInodeTest, UnlinkLeavesTheNewOwnerOfTheInodeAlone) {
  make_branches({"rw"});
  mount();
  ASSERT_EQ(create("a", "old"), 0);
  ASSERT_TRUE(walk("a").ok());
  NodeId b = race([&] { return unlink("a"); });
  if (!b) GTEST_SKIP() << "the branch file system did not reuse the inode";
  EXPECT_EQ(read_node(b), "new");
  auto again = walk(reused_name_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id, b) << "the new file's node was retired";
  EXPECT_EQ(walk("a").err(), ENOENT);
}

TEST_F(ReusedInodeTest, RenameOverLeavesTheNewOwnerOfTheInodeAlone) {
  make_branches({"rw"});
  mount();
  ASSERT_EQ(create("a", "old"), 0);
  ASSERT_EQ(create("c", "moved"), 0);
  ASSERT_TRUE(walk("a").ok());
  NodeId c = walk("c")->id;
  NodeId b = race([&] { return rename("c", "a"); });
  if (!b) GTEST_SKIP() << "the branch file system did not reuse the inode";
  EXPECT_EQ(read_node(b), "new");
  auto again = walk(reused_name_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id, b) << "the new file's node was retired";
  EXPECT_EQ(walk("a")->id, c);
  EXPECT_EQ(read_node(c), "moved");
}

namespace {

// KeepTimes put back the parent's times it read before a copy-up even when
// a user's create in that directory came during the copy-up: the create's
// mtime update was lost. The hook runs the create in exactly that window
// (the copy is in place, the parent's times not yet put back).
TEST_F(UnionTest, CreateDuringCopyUpKeepsItsParentMtime) {
  make_branches({"rw", "ro"});
  mkdirs(br(0) + "/d");
  mkdirs(br(1) + "/d");
  write_file(br(1) + "/d/f", "f", 0644);
  write_file(br(1) + "/d/g", "g", 0644);
  const struct timespec old[2] = {{1000000, 0}, {1000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (br(0) + "/d").c_str(), old, 0), 0);
  mount();
  auto chmod = [&](const std::string& path) {
    auto e = walk(path);
    ASSERT_TRUE(e.ok()) << path;
    SetAttrIn in;
    in.valid = SetAttrIn::kMode;
    in.mode = 0600;
    auto st = fs->setattr(e->id, in, nullptr, Ctx{});
    ASSERT_TRUE(st.ok()) << path << ": " << st.err();
  };
  auto mtime = [&](const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mtim.tv_sec;
  };
  // A copy-up alone leaves the parent's times as they were.
  chmod("d/g");
  ASSERT_TRUE(exists(br(0) + "/d/g"));
  EXPECT_EQ(mtime(br(0) + "/d"), 1000000);
  // A create racing the copy-up: its mtime update stays.
  const time_t before = ::time(nullptr);
  bool raced = false;
  fs->set_test_hook([&](std::string_view point, std::string_view name) {
    if (point != "copy_published" || name != "f" || raced) return;
    raced = true;
    EXPECT_EQ(create("d/new", "new"), 0);
  });
  chmod("d/f");
  fs->set_test_hook(nullptr);
  ASSERT_TRUE(raced);
  ASSERT_TRUE(exists(br(0) + "/d/new"));
  EXPECT_GE(mtime(br(0) + "/d"), before);
  auto d = walk("d");
  ASSERT_TRUE(d.ok());
  EXPECT_GE(d->attr.st_mtim.tv_sec, before);
}

}  // namespace
