// SPDX-License-Identifier: GPL-2.0-or-later
// One writer per branch: a second mount that would write a branch another
// mount writes is refused with a line naming that mount, before anything is
// written; read-only use stays allowed; aufs-fuse-check --fix refuses a live
// branch; a killed daemon's lock goes with it.
#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "tools_support.hpp"

namespace aufs::mt {
namespace {

class BranchLockTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw"));
    mkdirs(p("l1"));
    mkdirs(p("other"));
    mkdirs(p("mnt2"));
    ASSERT_TRUE(write_file(p("l1/lower.txt"), "lower\n"));
  }
  // The daemon, daemonized (not a child of the fixture: a test may kill it).
  RunResult start(const std::string& br, const std::string& mnt) {
    return run({daemon_binary(), "-o", "br=" + br, mnt}, root());
  }
  static bool one_line(const RunResult& r, const std::string& prefix) {
    return r.err.starts_with(prefix) && std::count(r.err.begin(), r.err.end(), '\n') == 1;
  }
};

TEST_F(BranchLockTest, SecondWriterIsRefusedUntilTheFirstIsGone) {
  SysMountGuard g1(m()), g2(p("mnt2"));
  auto r = start(p("rw") + ":" + p("l1") + "=ro", m());
  ASSERT_TRUE(r.ok()) << r;
  auto pids = daemon_pids_for(m());
  ASSERT_EQ(pids.size(), 1u);
  std::string holder = "is written by the aufs-fuse mount on " + m() + " (pid " +
                       std::to_string(pids[0]) + ")";

  std::string rw_before = snapshot(p("rw")), other_before = snapshot(p("other"));
  // "other" comes first and is writable: still nothing is written to it.
  r = run({daemon_binary(), "-f", "-o", "br=" + p("other") + "=rw:" + p("rw") + "=rw", p("mnt2")},
          root(), 5000);
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(one_line(r, "aufs-fuse: branch '" + p("rw") + "' ")) << r;
  EXPECT_NE(r.err.find(holder), std::string::npos) << r;
  EXPECT_FALSE(in_proc_mounts(p("mnt2")));
  EXPECT_EQ(snapshot(p("rw")), rw_before);
  EXPECT_EQ(snapshot(p("other")), other_before) << "a refused mount wrote to a branch";

  // Read-only in another mount is allowed; making it writable there is not.
  r = start(p("other") + "=rw:" + p("rw") + "=ro+wh", p("mnt2"));
  ASSERT_TRUE(r.ok()) << r;
  r = run({tool_binary("AUFSCTL_BIN", "aufsctl"), p("mnt2"), "mod", p("rw") + "=rw"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(one_line(r, "aufsctl: ")) << r;
  EXPECT_NE(r.err.find(holder), std::string::npos) << r;
  r = run({"umount", p("mnt2")});
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_TRUE(wait_daemons_gone(p("mnt2")));

  // aufs-fuse-check: reading is fine, --fix of a live branch is refused.
  std::string check = tool_binary("AUFS_FUSE_CHECK_BIN", "aufs-fuse-check");
  r = run({check, p("rw")});
  EXPECT_EQ(r.exit_code, 0) << r;
  r = run({check, "--fix", p("rw")});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_TRUE(one_line(r, "aufs-fuse-check: branch '" + p("rw") + "' ")) << r;
  EXPECT_NE(r.err.find(holder), std::string::npos) << r;
  EXPECT_NE(r.err.find("unmount it before --fix"), std::string::npos) << r;

  // kill -9: the lock goes with the daemon's descriptors.
  ASSERT_EQ(::kill(pids[0], SIGKILL), 0);  // the daemon this test started
  ASSERT_TRUE(wait_daemons_gone(m()));
  r = run({"umount", m()});
  ASSERT_TRUE(r.ok()) << r;
  r = run({check, "--fix", p("rw")});
  EXPECT_EQ(r.exit_code, 0) << r;
  r = start(p("rw") + ":" + p("other") + "=ro", p("mnt2"));
  ASSERT_TRUE(r.ok()) << r;
  r = run({"umount", p("mnt2")});
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_TRUE(wait_daemons_gone(p("mnt2")));
}

// A clean stop marks the writable branch released cleanly, and the next
// mount trusts that instead of walking the whole branch; the mark is gone
// while the branch is written, so a daemon killed then leaves it unmarked
// and the next mount walks the branch and repairs what the run left.
TEST_F(BranchLockTest, CleanStopMarksTheBranchAndAKillLeavesItForTheCheck) {
  const std::string key = ::geteuid() == 0 ? "trusted.aufs-fuse.clean" : "user.aufs-fuse.clean";
  auto marked = [&] {
    char v[8];
    return ::getxattr(p("rw").c_str(), key.c_str(), v, sizeof v) >= 0;
  };
  SysMountGuard g(m());
  EXPECT_FALSE(marked());
  auto r = start(p("rw") + ":" + p("l1") + "=ro", m());
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_TRUE(write_file(m("made.txt"), "made\n"));
  r = run({"umount", m()});
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_TRUE(wait_daemons_gone(m()));
  EXPECT_TRUE(marked()) << "a clean stop left no mark";
  // SIGTERM stops the daemon cleanly too (it unmounts and finishes).
  r = start(p("rw") + ":" + p("l1") + "=ro", m());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_FALSE(marked());
  auto term = daemon_pids_for(m());
  ASSERT_EQ(term.size(), 1u);
  ASSERT_EQ(::kill(term[0], SIGTERM), 0);  // the daemon this test started
  ASSERT_TRUE(wait_daemons_gone(m()));
  EXPECT_FALSE(in_proc_mounts(m()));
  EXPECT_TRUE(marked()) << "SIGTERM left no mark";
  // The mark is the daemon's own: not listed through the union.
  r = start(p("rw") + ":" + p("l1") + "=ro", m());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_FALSE(marked()) << "the mark stayed while the branch is written";
  std::vector<char> names(4096);
  ssize_t n = ::listxattr(m().c_str(), names.data(), names.size());
  ASSERT_GE(n, 0) << std::strerror(errno);
  EXPECT_EQ(std::string(names.data(), static_cast<size_t>(n)).find("aufs-fuse.clean"),
            std::string::npos);
  // Killed while mounted: what an interrupted run leaves (a temporary of
  // a copy-up) is repaired by the next mount, which walks the branch.
  auto pids = daemon_pids_for(m());
  ASSERT_EQ(pids.size(), 1u);
  ASSERT_EQ(::kill(pids[0], SIGKILL), 0);  // the daemon this test started
  ASSERT_TRUE(wait_daemons_gone(m()));
  r = run({"umount", m()});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_FALSE(marked());
  ASSERT_TRUE(write_file(p("rw/.wh..wh.lower.txt.1a2b"), "half a copy"));
  r = start(p("rw") + ":" + p("l1") + "=ro", m());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(::access(p("rw/.wh..wh.lower.txt.1a2b").c_str(), F_OK), 0) << "leftover kept";
  EXPECT_EQ(read_file(m("made.txt")), "made\n");
  EXPECT_EQ(read_file(m("lower.txt")), "lower\n");
  r = run({"umount", m()});
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_TRUE(wait_daemons_gone(m()));
  EXPECT_TRUE(marked());
  // Marked: the next mount does not walk the branch (what the mark saves
  // on a large one), so a name planted behind its back is not looked at.
  ASSERT_TRUE(write_file(p("rw/.wh..wh.planted.0001"), "x"));
  r = start(p("rw") + ":" + p("l1") + "=ro", m());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(::access(p("rw/.wh..wh.planted.0001").c_str(), F_OK), 0);
  r = run({"umount", m()});
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_TRUE(wait_daemons_gone(m()));
  ::unlink(p("rw/.wh..wh.planted.0001").c_str());
  EXPECT_TRUE(marked());
  // Made writable by a branch change: the mark goes before it is written,
  // and a branch nobody checked at mount is not marked at the stop.
  r = start(p("other") + "=rw:" + p("rw") + "=ro", m());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_TRUE(marked());
  r = run({tool_binary("AUFSCTL_BIN", "aufsctl"), m(), "mod", p("rw") + "=rw"});
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_FALSE(marked());
  r = run({"umount", m()});
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_TRUE(wait_daemons_gone(m()));
  EXPECT_FALSE(marked());
}

// rw+shared: mounts that all ask for it write one branch together; a plain
// rw mount of it is still refused, either way round, and so is --fix.
TEST_F(BranchLockTest, SharedBranchIsWrittenByMountsThatAllAskForIt) {
  SysMountGuard g1(m()), g2(p("mnt2"));
  mkdirs(p("mnt3"));
  SysMountGuard g3(p("mnt3"));
  // A plain rw holder refuses a shared one.
  auto r = start(p("rw") + ":" + p("l1") + "=ro", m());
  ASSERT_TRUE(r.ok()) << r;
  r = start(p("rw") + "=rw+shared:" + p("l1") + "=ro", p("mnt2"));
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("unless each of them gives it as rw+shared"), std::string::npos) << r;
  EXPECT_FALSE(in_proc_mounts(p("mnt2")));
  ASSERT_TRUE(run({"umount", m()}).ok());
  ASSERT_TRUE(wait_daemons_gone(m()));

  // Two shared mounts: both write, each sees the other's files.
  r = start(p("rw") + "=rw+shared:" + p("l1") + "=ro", m());
  ASSERT_TRUE(r.ok()) << r;
  r = start(p("rw") + "=rw+shared:" + p("other") + "=ro", p("mnt2"));
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_TRUE(write_file(m("from1.txt"), "one\n"));
  ASSERT_TRUE(write_file(p("mnt2/from2.txt"), "two\n"));
  EXPECT_EQ(read_file(p("rw/from1.txt")), "one\n");
  EXPECT_EQ(read_file(p("rw/from2.txt")), "two\n");
  EXPECT_EQ(read_file(p("mnt2/from1.txt")), "one\n");
  EXPECT_EQ(read_file(m("from2.txt")), "two\n");
  EXPECT_EQ(ctl_info(m())["branches"][0]["perm"], "rw+shared");
  // A plain rw third mount, and --fix, are refused while they write it.
  r = start(p("rw") + ":" + p("l1") + "=ro", p("mnt3"));
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(one_line(r, "aufs-fuse: branch '" + p("rw") + "' is written by ")) << r;
  EXPECT_FALSE(in_proc_mounts(p("mnt3")));
  r = run({tool_binary("AUFS_FUSE_CHECK_BIN", "aufs-fuse-check"), "--fix", p("rw")});
  EXPECT_EQ(r.exit_code, 2) << r;
  // The kind of lock does not change under a writable branch.
  r = run({tool_binary("AUFSCTL_BIN", "aufsctl"), m(), "mod", p("rw") + "=rw"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("'shared' cannot change while it is writable"), std::string::npos) << r;
  for (const std::string& mnt : {m(), p("mnt2")}) {
    r = run({"umount", mnt});
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_TRUE(wait_daemons_gone(mnt));
  }
  // Alone again: a plain rw mount takes it.
  r = start(p("rw") + ":" + p("l1") + "=ro", p("mnt3"));
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(read_file(p("mnt3/from2.txt")), "two\n");
  r = run({"umount", p("mnt3")});
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_TRUE(wait_daemons_gone(p("mnt3")));
}

}  // namespace
}  // namespace aufs::mt
