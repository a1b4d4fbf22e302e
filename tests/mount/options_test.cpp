// SPDX-License-Identifier: GPL-2.0-or-later
// Command line errors: one line on stderr, exit status 1, nothing mounted,
// the branches untouched.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

class BadOptions : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw/sub"));
    mkdirs(p("l1/inner"));
    write_file(p("l1/file"), "f\n");
    write_file(p("afile"), "not a dir\n");
  }

  // Runs the daemon (foreground, so a wrong success cannot daemonize) and
  // checks it refused: exit 1, exactly one "aufs-fuse: ..." line on stderr
  // mentioning `mention`, no mount, no branch changes.
  void expect_rejected(std::vector<std::string> args, const std::string& mention,
                       const std::string& mnt = "") {
    std::string mp = mnt.empty() ? m() : mnt;
    std::string rw_before = snapshot(p("rw"));
    std::string l1_before = snapshot(p("l1"));
    std::vector<std::string> argv = {daemon_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string cmdline;
    for (auto& a : args) cmdline += " " + a;
    SCOPED_TRACE("aufs-fuse" + cmdline);
    auto r = run(argv, root(), 5000);
    if (r.timed_out || in_proc_mounts(mp)) {
      run({"fusermount3", "-uz", mp});
      ADD_FAILURE() << "the daemon mounted " << mp << " instead of refusing";
    }
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_EQ(r.out, "") << r;
    EXPECT_TRUE(r.err.starts_with("aufs-fuse: ")) << r;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r;
    EXPECT_TRUE(r.err.ends_with("\n")) << r;
    if (!mention.empty()) {
      EXPECT_NE(r.err.find(mention), std::string::npos) << r;
    }
    EXPECT_FALSE(in_proc_mounts(mp));
    EXPECT_EQ(snapshot(p("rw")), rw_before);
    EXPECT_EQ(snapshot(p("l1")), l1_before);
  }
};

TEST_F(BadOptions, UnknownOption) {
  expect_rejected({"-f", "-o", "br=" + p("rw") + ",bogus_option", m()}, "bogus_option");
  expect_rejected({"-f", "-o", "br=" + p("rw") + ",bogus=1", m()}, "bogus");
  expect_rejected({"-f", "--no-such-flag", "-o", "br=" + p("rw"), m()}, "--no-such-flag");
  expect_rejected({"-f", "-o", "br=" + p("rw") + ",threads=0", m()}, "threads");
  expect_rejected({"-f", "-o", "br=" + p("rw") + ",entry_timeout=abc", m()}, "entry_timeout");
  expect_rejected({"-f", "-o", "br=" + p("rw") + ",udba=bogus", m()}, "udba");
}

// libfuse refuses the session: the line is ours with libfuse's reason, and
// nothing was written to the branches (they are prepared once mounted).
TEST_F(BadOptions, FailedMountLeavesNothingBehind) {
  expect_rejected({"-f", "-o", "br=" + p("rw") + ":" + p("l1") + ",max_read=abc", m()},
                  "cannot create the FUSE session: invalid parameter in option `max_read=abc'");
  EXPECT_FALSE(exists(p("rw/.wh..wh.aufs")));
  EXPECT_FALSE(exists(p("rw/.wh..wh.plnk")));
  EXPECT_FALSE(exists(p("rw/.wh..wh.orph")));
  // What was there before stays.
  mkdirs(p("rw/.wh..wh.plnk"));
  expect_rejected({"-f", "-o", "br=" + p("rw") + ":" + p("l1") + ",max_read=abc", m()}, "max_read");
  EXPECT_TRUE(exists(p("rw/.wh..wh.plnk")));
  EXPECT_FALSE(exists(p("rw/.wh..wh.aufs")));
}

// FUSE's -o debug is -d; its generic options are taken with a notice.
TEST_F(BadOptions, GenericFuseOptionsMount) {
  ASSERT_TRUE(mount_args({"-o", "br=" + p("rw") + ":" + p("l1") + ",debug,nonempty,kernel_cache", m()}));
  EXPECT_EQ(read_file(m("file")), "f\n");
  unmount();
  std::string log = read_file(p("daemon.log"));
  EXPECT_NE(log.find("FUSE option 'nonempty' ignored"), std::string::npos) << log;
  EXPECT_NE(log.find("debug: "), std::string::npos) << "no debug output\n" << log;
}

TEST_F(BadOptions, MissingBranch) {
  expect_rejected({"-f", "-o", "br=" + p("rw") + ":" + p("missing"), m()}, "missing");
  expect_rejected({"-f", "-o", "br=" + p("missing"), m()}, "missing");
}

TEST_F(BadOptions, BranchIsAFile) {
  expect_rejected({"-f", "-o", "br=" + p("rw") + ":" + p("afile"), m()}, "afile");
}

TEST_F(BadOptions, DuplicatedBranch) {
  expect_rejected({"-f", "-o", "br=" + p("rw") + ":" + p("l1") + ":" + p("l1"), m()}, "l1");
  expect_rejected({"-f", "-o", "br=" + p("rw") + ":" + p("l1") + "=ro:" + p("rw/../l1") + "=ro+wh", m()},
                  "l1");
  expect_rejected({"-f", "-o", "br=" + p("rw") + ":" + p("rw"), m()}, "rw");
}

TEST_F(BadOptions, NestedBranches) {
  expect_rejected({"-f", "-o", "br=" + p("rw") + ":" + p("rw/sub"), m()}, "sub");
  expect_rejected({"-f", "-o", "br=" + p("rw/sub") + ":" + p("rw"), m()}, "rw");
}

// Allowed (kernel AUFS, overlayfs): the daemon opens its branches before
// it mounts over one of them. Fstab.MountOverItsOwnBranch has more.
TEST_F(BadOptions, BranchMayBeTheMountPoint) {
  ASSERT_TRUE(write_file(m("old.txt"), "old\n"));
  ASSERT_TRUE(mount("rw:mnt=ro"));
  EXPECT_EQ(read_file(m("old.txt")), "old\n");
  ASSERT_TRUE(write_file(m("old.txt"), "new\n"));
  EXPECT_EQ(read_file(p("rw/old.txt")), "new\n");
  unmount();
  EXPECT_EQ(read_file(m("old.txt")), "old\n");
  EXPECT_EQ(list_dir(m()), std::vector<std::string>{"old.txt"});
}

TEST_F(BadOptions, BranchUnderTheMountPoint) {
  mkdirs(m("sub"));
  expect_rejected({"-f", "-o", "br=" + p("rw") + ":" + m("sub"), m()}, "sub");
}

TEST_F(BadOptions, BranchContainsTheMountPoint) {
  expect_rejected({"-f", "-o", "br=" + p("rw") + ":" + p("l1"), p("l1/inner")}, "l1",
                  p("l1/inner"));
  expect_rejected({"-f", "-o", "br=" + p("rw") + ":" + p("l1"), p("rw/sub")}, "rw", p("rw/sub"));
}

TEST_F(BadOptions, NoBranches) {
  expect_rejected({"-f", m()}, "branch");
  expect_rejected({"-f", "-o", "entry_timeout=0", m()}, "branch");
  expect_rejected({"-f", "-o", "br=", m()}, "branch");
  expect_rejected({"-f", "-o", "br=:", m()}, "branch");
}

TEST_F(BadOptions, UnknownPermission) {
  expect_rejected({"-f", "-o", "br=" + p("rw") + "=xx", m()}, "xx");
  expect_rejected({"-f", "-o", "br=" + p("rw") + ":" + p("l1") + "=xx", m()}, "xx");
  expect_rejected({"-f", "-o", "br=" + p("rw") + ":" + p("l1") + "=ro+bogusattr", m()},
                  "bogusattr");
}

TEST_F(BadOptions, BadMountPoint) {
  expect_rejected({"-f", "-o", "br=" + p("rw")}, "mount point");
  expect_rejected({"-f", "-o", "br=" + p("rw"), p("nomnt")}, "nomnt", p("nomnt"));
  expect_rejected({"-f", "-o", "br=" + p("rw"), p("afile")}, "afile", p("afile"));
  expect_rejected({"-f", "-o", "br=" + p("rw"), m(), p("extra")}, "extra");
}

TEST_F(BadOptions, HelpAndVersion) {
  auto r = run({daemon_binary(), "--help"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_NE(r.out.find("usage:"), std::string::npos) << r;
  EXPECT_NE(r.out.find("br="), std::string::npos) << r;
  EXPECT_EQ(r.err, "") << r;
  r = run({daemon_binary(), "--version"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_TRUE(r.out.starts_with("aufs-fuse ")) << r;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r;
  EXPECT_EQ(r.err, "") << r;
  r = run({daemon_binary(), "-h"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_NE(r.out.find("usage:"), std::string::npos) << r;
  EXPECT_FALSE(in_proc_mounts(m()));
}

TEST_F(BadOptions, AcceptedSpellingsMount) {
  // The same branches through br:, dirs= and ro+wh/rr attributes mount fine.
  write_file(p("l1/hello"), "hi\n");
  for (std::string o : {"br:" + p("rw") + "=rw:" + p("l1") + "=ro+wh",
                        "dirs=" + p("rw") + ":" + p("l1"),
                        "br=" + p("rw") + "=rw:" + p("l1") + "=rr+wh,udba=reval,nowarn_perm"}) {
    SCOPED_TRACE(o);
    ASSERT_TRUE(mount_args({"-f", "-o", o + ",entry_timeout=0,attr_timeout=0", m()}));
    EXPECT_EQ(read_file(m("hello")), "hi\n");
    unmount();
    EXPECT_FALSE(in_proc_mounts(m()));
  }
}

}  // namespace
}  // namespace aufs::mt
