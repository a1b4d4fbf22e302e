// SPDX-License-Identifier: GPL-2.0-or-later
// Minimal reproductions of product bugs found by the reliability tests,
// kept as regression tests (each names the test that found it).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "rel_support.hpp"

namespace aufs::rel {
namespace {

class Regressions : public RelTest {
 protected:
  void SetUp() override {
    RelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw"));
    mkdirs(p("l1/d/sub"));
    ASSERT_TRUE(write_file(p("l1/d/f"), "old lower file\n"));
    ASSERT_TRUE(write_file(p("l1/d/sub/g"), "old lower file in sub\n"));
    lower_ = digest_tree(p("l1"));
  }
  void TearDown() override {
    if (!IsSkipped() && !lower_.empty()) {
      auto now = digest_tree(p("l1"));
      EXPECT_TRUE(now == lower_) << "lower branch modified:\n" << digest_diff(lower_, now);
    }
    RelTest::TearDown();
  }
  std::vector<std::string> lower_;
};

// Found by Concurrency.DisjointNamesMatchPlainDirectory: a directory made
// over a whiteout is opaque; removing it must leave a whiteout, or the old
// lower directory (with its files) comes back.
TEST_F(Regressions, RmdirOfDirectoryRecreatedOverWhiteoutKeepsLowerHidden) {
  OwnDaemon* d = start_own("rw:l1=ro+wh");
  ASSERT_NE(d, nullptr);
  auto r = run({"rm", "-rf", m("d")});
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_EQ(err_of(::mkdir(m("d").c_str(), 0755)), 0);
  EXPECT_EQ(list_dir(m("d")), std::vector<std::string>{});
  ASSERT_EQ(err_of(::rmdir(m("d").c_str())), 0);
  EXPECT_EQ(lstat_errno(m("d")), ENOENT) << "the deleted lower directory came back";
  EXPECT_EQ(lstat_errno(m("d/f")), ENOENT);
  EXPECT_TRUE(exists(p("rw/.wh.d")));
  stop_own(d);
}

TEST_F(Regressions, RenameOfDirectoryRecreatedOverWhiteoutKeepsLowerHidden) {
  OwnDaemon* d = start_own("rw:l1=ro+wh");
  ASSERT_NE(d, nullptr);
  auto r = run({"rm", "-rf", m("d")});
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_EQ(err_of(::mkdir(m("d").c_str(), 0755)), 0);
  ASSERT_EQ(err_of(::rename(m("d").c_str(), m("e").c_str())), 0);
  EXPECT_EQ(lstat_errno(m("d")), ENOENT) << "the deleted lower directory came back";
  EXPECT_EQ(list_dir(m("e")), std::vector<std::string>{});
  stop_own(d);
}

// Found by Concurrency.DisjointNamesMatchPlainDirectory (long form, seed
// 8841350462757380217): a directory renamed over a directory that was made
// over a whiteout (opaque) must become opaque itself, or the deleted lower
// entries show through it (at the latest after a remount).
TEST_F(Regressions, RenameOverDirectoryRecreatedOverWhiteoutKeepsLowerHidden) {
  OwnDaemon* d = start_own("rw:l1=ro+wh");
  ASSERT_NE(d, nullptr);
  auto r = run({"rm", "-rf", m("d")});
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_EQ(err_of(::mkdir(m("d").c_str(), 0755)), 0);
  ASSERT_EQ(err_of(::mkdir(m("e").c_str(), 0755)), 0);
  ASSERT_TRUE(write_file(m("e/x"), "x\n"));
  ASSERT_EQ(err_of(::rename(m("e").c_str(), m("d").c_str())), 0);
  EXPECT_EQ(list_dir(m("d")), std::vector<std::string>{"x"});
  stop_own(d);
  d = start_own("rw:l1=ro+wh");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(list_dir(m("d")), std::vector<std::string>{"x"}) << "deleted lower entries came back";
  EXPECT_EQ(lstat_errno(m("d/f")), ENOENT);
  stop_own(d);
}

// Found by Callers.SecurityCapabilityIsNotCopiedUp: chown(2) of a lower file
// carrying security.capability. The kernel first removes the capability
// (killpriv); the copy-up already dropped it, which must not fail the call.
TEST_F(Regressions, ChownOfLowerFileWithFileCapability) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (setcap)";
  ASSERT_TRUE(write_file(p("l1/capfile"), read_file("/bin/true"), 0755));
  auto sc = run({"setcap", "cap_net_raw+ep", p("l1/capfile")});
  if (!sc.ok()) GTEST_SKIP() << "setcap: " << sc;
  lower_ = digest_tree(p("l1"));
  OwnDaemon* d = start_own("rw:l1=ro+wh");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(err_of(::chown(m("capfile").c_str(), 0, 0)), 0);
  EXPECT_TRUE(exists(p("rw/capfile")));
  EXPECT_FALSE(get_xattr(p("rw/capfile"), "security.capability").has_value());
  stop_own(d);
}

// Found by Concurrency.WritesDuringLookupsNeverReachReadOnlyBranch and
// OverlappingNamesKeepInvariants (daemon aborted: "free(): corrupted
// unsorted chunks"; ThreadSanitizer: heap-use-after-free of a mutex in
// do_readdir): readdir replied while holding the directory handle's lock,
// and a closedir right after the reply freed the handle (releasedir, on
// another worker) before that lock was released. Not deterministic: a
// sanitizer build reports it reliably, a plain build crashes now and then.
TEST_F(Regressions, ClosedirRightAfterReaddirReply) {
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(write_file(p("l1/d/e" + std::to_string(i)), "e"));
  lower_ = digest_tree(p("l1"));
  OwnDaemon* d = start_own("rw:l1=ro+wh", "threads=4");
  ASSERT_NE(d, nullptr);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  std::atomic<long> listed{0};
  std::vector<std::thread> th;
  for (int t = 0; t < 4; ++t)
    th.emplace_back([&] {
      while (std::chrono::steady_clock::now() < until)
        if (list_dir(m("d")).size() == 42) listed++;
    });
  for (auto& t : th) t.join();
  EXPECT_GT(listed.load(), 0);
  stop_own(d);  // fails if the daemon died
}

// Found by Concurrency.DisjointNamesMatchPlainDirectoryWithKernelCache:
// with the kernel cache on (the default timeouts), every name of a hard-
// linked file must keep reading that file after another of its names is
// removed or replaced. The node remembered the removed name and requests
// by node failed (ENOENT) or reached the object that replaced it; now another
// remembered name takes over, or requests answer ESTALE and the kernel looks
// the name it holds up again.
TEST_F(Regressions, HardLinkKeepsItsDataWhenAnotherNameIsReplaced) {
  OwnDaemon* d = start_own("rw:l1=ro+wh", "", false);
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(write_file(m("a"), "file a\n"));
  ASSERT_EQ(err_of(::link(m("a").c_str(), m("b").c_str())), 0);
  ASSERT_TRUE(write_file(m("c"), "another file\n"));
  ASSERT_EQ(err_of(::rename(m("c").c_str(), m("b").c_str())), 0);
  EXPECT_EQ(read_file(m("a")), "file a\n");
  EXPECT_EQ(read_file(m("b")), "another file\n");
  // The same with a lower file (copied up by link).
  ASSERT_EQ(err_of(::link(m("d/f").c_str(), m("d/f2").c_str())), 0);
  ASSERT_EQ(err_of(::symlink("/etc/hostname", m("d/s").c_str())), 0);
  ASSERT_EQ(err_of(::rename(m("d/s").c_str(), m("d/f2").c_str())), 0);
  EXPECT_EQ(read_file(m("d/f")), "old lower file\n");
  stop_own(d);
}

TEST_F(Regressions, HardLinkKeepsItsDataWhenAnotherNameIsRemoved) {
  OwnDaemon* d = start_own("rw:l1=ro+wh", "", false);
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(write_file(m("a"), "file a\n"));
  ASSERT_EQ(err_of(::link(m("a").c_str(), m("b").c_str())), 0);
  ASSERT_EQ(err_of(::unlink(m("a").c_str())), 0);
  EXPECT_EQ(lstat_errno(m("b")), 0);
  EXPECT_EQ(read_file(m("b")), "file a\n");
  stop_own(d);
}

}  // namespace
}  // namespace aufs::rel
