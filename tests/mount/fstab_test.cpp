// SPDX-License-Identifier: GPL-2.0-or-later
// fstab: `mount --fstab FILE -a` and `mount --fstab FILE MNT` with lines of
// type aufs (mount.aufs) and fuse.aufs-fuse (mount.fuse3), nofail, noauto,
// x-systemd.* options, and paths with spaces (\040) and commas (quoted).
#include <unistd.h>

#include <fstream>

#include "tools_support.hpp"

namespace aufs::mt {
namespace {

// fstab escaping of a path: space, tab, newline, backslash as octal.
std::string fstab_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ' ') out += "\\040";
    else if (c == '\t') out += "\\011";
    else if (c == '\n') out += "\\012";
    else if (c == '\\') out += "\\134";
    else out += c;
  }
  return out;
}

class Fstab : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (auto why = mount_helper_unavailable(); !why.empty()) GTEST_SKIP() << why;
    mkdirs(p("rw1"));
    mkdirs(p("l1"));
    mkdirs(p("sp ace/rw"));
    mkdirs(p("sp ace/mnt"));
    mkdirs(p("sp ace/lower layer"));
    mkdirs(p("mnt1"));
    mkdirs(p("mnt3"));
    mkdirs(p("mnt4"));
    ASSERT_TRUE(write_file(p("l1/one.txt"), "one\n"));
    ASSERT_TRUE(write_file(p("sp ace/lower layer/two.txt"), "two\n"));
  }

  std::string write_fstab(const std::string& text) {
    std::string path = p("fstab");
    std::ofstream(path) << text;
    return path;
  }

  bool have_fuse_type() {
    return (::access("/sbin/mount.fuse3", X_OK) == 0 ||
            ::access("/usr/sbin/mount.fuse3", X_OK) == 0) &&
           sh("command -v aufs-fuse").ok();
  }

  std::string spaced_line() {
    // fuse.aufs-fuse, branch list as SOURCE; spaces in every path.
    return fstab_escape(p("sp ace/rw") + ":" + p("sp ace/lower layer") + "=ro+wh") + " " +
           fstab_escape(p("sp ace/mnt")) + " fuse.aufs-fuse defaults,x-systemd.automount 0 0\n";
  }
};

TEST_F(Fstab, MountAllWithBothTypesNofailAndSpaces) {
  if (!have_fuse_type()) GTEST_SKIP() << "mount.fuse3 or aufs-fuse (in PATH) missing";
  SysMountGuard g1(p("mnt1")), g2(p("sp ace/mnt")), g3(p("mnt3"));
  std::string fstab = write_fstab(
      "# aufs-fuse test fstab\n"
      "none " + p("mnt1") + " aufs br=" + p("rw1") + "=rw:" + p("l1") +
      "=ro+wh,nofail,x-systemd.automount,x-systemd.idle-timeout=60 0 0\n" +
      spaced_line() +
      // nofail with a missing branch: reported, nothing mounted, the
      // other lines mounted; mount(8)'s "some mounts failed" status.
      "none " + p("mnt3") + " aufs br=" + p("no-such-dir") + ":" + p("l1") + ",nofail 0 0\n");
  auto r = run({"mount", "--fstab", fstab, "-a"}, root());
  EXPECT_EQ(r.exit_code, 64) << r;

  auto e1 = mount_entry(p("mnt1"));
  ASSERT_TRUE(e1.has_value()) << "aufs line not mounted\n" << r;
  EXPECT_EQ(e1->fstype, "fuse.aufs");
  EXPECT_EQ(e1->source, "none");
  auto e2 = mount_entry(p("sp ace/mnt"));
  ASSERT_TRUE(e2.has_value()) << "fuse.aufs-fuse line not mounted\n" << r;
  EXPECT_EQ(e2->fstype, "fuse.aufs");
  EXPECT_EQ(e2->source, p("sp ace/rw") + ":" + p("sp ace/lower layer") + "=ro+wh");
  EXPECT_FALSE(in_proc_mounts(p("mnt3"))) << "nofail line with a missing branch got mounted";
  EXPECT_NE(r.err.find("no-such-dir"), std::string::npos) << "the failure is not reported\n" << r;

  EXPECT_EQ(read_file(p("mnt1/one.txt")), "one\n");
  EXPECT_EQ(read_file(p("sp ace/mnt/two.txt")), "two\n");
  ASSERT_TRUE(write_file(p("sp ace/mnt/new.txt"), "new\n"));
  EXPECT_EQ(read_file(p("sp ace/rw/new.txt")), "new\n");
  EXPECT_EQ(branch_rows(ctl_info(p("sp ace/mnt"))),
            (std::vector<std::string>{"0:0:" + p("sp ace/rw") + "=rw",
                                      "1:1:" + p("sp ace/lower layer") + "=ro+wh"}));
  EXPECT_EQ(branch_rows(ctl_info(p("mnt1"))),
            (std::vector<std::string>{"0:0:" + p("rw1") + "=rw", "1:1:" + p("l1") + "=ro+wh"}));

  // A second -a skips what is mounted; the nofail line fails again, alone
  // (mount(8)'s "mount failure" status: nothing else was left to mount).
  r = run({"mount", "--fstab", fstab, "-a"}, root());
  EXPECT_EQ(r.exit_code, 32) << r;
  EXPECT_NE(r.err.find("nothing was mounted on " + p("mnt3")), std::string::npos) << r;
  EXPECT_EQ(mounts_under(p("mnt1")).size(), 1u) << "mounted twice";

  r = run({"umount", p("mnt1")});
  EXPECT_TRUE(r.ok()) << r;
  r = run({"umount", p("sp ace/mnt")});
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_TRUE(mounts_under(root()).empty());
}

TEST_F(Fstab, MountOneEntryByMountPoint) {
  if (!have_fuse_type()) GTEST_SKIP() << "mount.fuse3 or aufs-fuse (in PATH) missing";
  SysMountGuard g1(p("mnt1")), g2(p("sp ace/mnt"));
  std::string fstab =
      write_fstab("none " + p("mnt1") + " aufs br=" + p("rw1") + "=rw:" + p("l1") +
                  "=ro+wh,noauto,x-systemd.automount 0 0\n" + spaced_line());
  // noauto: not mounted by -a ...
  auto r = run({"mount", "--fstab", fstab, "-a", "-t", "aufs"}, root());
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_FALSE(in_proc_mounts(p("mnt1"))) << "noauto line mounted by mount -a";
  // ... but by naming its mount point.
  r = run({"mount", "--fstab", fstab, p("mnt1")}, root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_TRUE(in_proc_mounts(p("mnt1")));
  EXPECT_EQ(read_file(p("mnt1/one.txt")), "one\n");
  r = run({"mount", "--fstab", fstab, p("sp ace/mnt")}, root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(read_file(p("sp ace/mnt/two.txt")), "two\n");
  r = run({"umount", p("mnt1")});
  EXPECT_TRUE(r.ok()) << r;
  r = run({"umount", p("sp ace/mnt")});
  EXPECT_TRUE(r.ok()) << r;
}

// nofail does not turn a failed mount into success (mount.fuse3 ignores it
// as well; systemd reads it from fstab): the failure is reported with one
// line saying that nothing was mounted.
TEST_F(Fstab, NofailMissingBranchSaysNothingWasMounted) {
  SysMountGuard g1(p("mnt3")), g2(p("mnt4"));
  std::string line = "none " + p("mnt3") + " aufs br=" + p("missing-rw") + "=rw:" + p("l1") +
                     "=ro+wh,nofail 0 0\n";
  auto r = run({"mount", "--fstab", write_fstab(line), "-a"}, root());
  EXPECT_EQ(r.exit_code, 32) << r;
  EXPECT_TRUE(mounts_under(root()).empty()) << "something got mounted";
  EXPECT_NE(r.err.find("missing-rw"), std::string::npos) << r;
  EXPECT_NE(r.err.find("nothing was mounted on " + p("mnt3")), std::string::npos) << r;

  // The same line without nofail fails the same way, without that line.
  std::string strict = "none " + p("mnt4") + " aufs br=" + p("missing-rw") + "=rw:" + p("l1") +
                       "=ro+wh 0 0\n";
  r = run({"mount", "--fstab", write_fstab(strict), "-a"}, root());
  EXPECT_EQ(r.exit_code, 32) << r;
  EXPECT_NE(r.err.find("missing-rw"), std::string::npos) << r;
  EXPECT_EQ(r.err.find("nothing was mounted"), std::string::npos) << r;
  EXPECT_TRUE(mounts_under(root()).empty()) << "something got mounted";
  // Explicitly by mount point, nofail: the same report.
  r = run({"mount", "--fstab", write_fstab(line), p("mnt3")}, root());
  EXPECT_EQ(r.exit_code, 32) << r;
  EXPECT_NE(r.err.find("nothing was mounted on " + p("mnt3")), std::string::npos) << r;
  EXPECT_FALSE(in_proc_mounts(p("mnt3")));
}

TEST_F(Fstab, QuotedCommaInBranchPath) {
  mkdirs(p("co,mma"));
  ASSERT_TRUE(write_file(p("co,mma/c.txt"), "comma\n"));
  SysMountGuard g(p("mnt1"));
  // libmount and the helper keep a double-quoted value with commas whole.
  std::string fstab = write_fstab("none " + p("mnt1") + " aufs br=\"" + p("co,mma") + "=rw:" +
                                  p("l1") + "=ro+wh\",nofail 0 0\n");
  auto r = run({"mount", "--fstab", fstab, "-a"}, root());
  EXPECT_EQ(r.exit_code, 0) << r;
  ASSERT_TRUE(in_proc_mounts(p("mnt1"))) << r;
  EXPECT_EQ(list_dir(p("mnt1")), (std::vector<std::string>{"c.txt", "one.txt"}));
  EXPECT_EQ(branch_rows(ctl_info(p("mnt1"))),
            (std::vector<std::string>{"0:0:" + p("co,mma") + "=rw", "1:1:" + p("l1") + "=ro+wh"}));
  ASSERT_TRUE(write_file(p("mnt1/w.txt"), "w\n"));
  EXPECT_EQ(read_file(p("co,mma/w.txt")), "w\n");
  r = run({"umount", p("mnt1")});
  EXPECT_TRUE(r.ok()) << r;
}

// The live-system setup: a union mounted over one of its own branches
// ("make /etc writable for a while"), through mount -t aufs and fstab.
// Writes land in the rw branch, the old content stays visible, and umount
// gives the original directory back unchanged.
TEST_F(Fstab, MountOverItsOwnBranch) {
  mkdirs(p("etc/sub"));
  ASSERT_TRUE(write_file(p("etc/passwd"), "root\n"));
  ASSERT_TRUE(write_file(p("etc/sub/conf"), "conf\n"));
  std::string before = snapshot(p("etc"));
  std::string fstab = write_fstab("none " + p("etc") + " aufs br=" + p("rw1") + "=rw:" + p("etc") +
                                  "=ro,noauto 0 0\n");
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "mount -t aufs" : "fstab");
    SysMountGuard g(p("etc"));
    auto r = round == 0 ? run({"mount", "-t", "aufs", "-o",
                               "br=" + p("rw1") + "=rw:" + p("etc") + "=ro", "none", p("etc")})
                        : run({"mount", "--fstab", fstab, p("etc")}, root());
    ASSERT_TRUE(r.ok()) << r;
    ASSERT_TRUE(in_proc_mounts(p("etc")));
    EXPECT_EQ(read_file(p("etc/passwd")), "root\n");
    EXPECT_EQ(read_file(p("etc/sub/conf")), "conf\n");
    ASSERT_TRUE(write_file(p("etc/passwd"), "root\nuser" + std::to_string(round) + "\n"));
    ASSERT_TRUE(write_file(p("etc/new"), "new\n"));
    EXPECT_EQ(read_file(p("rw1/passwd")), "root\nuser" + std::to_string(round) + "\n");
    EXPECT_EQ(read_file(p("rw1/new")), "new\n");
    EXPECT_EQ(::unlink(p("etc/sub/conf").c_str()), 0);
    EXPECT_TRUE(exists(p("rw1/sub/.wh.conf")));
    // A live change may not name it: the path now leads to the union.
    r = run({aufsctl_binary(), p("etc"), "append", p("etc")});
    EXPECT_NE(r.exit_code, 0) << r;
    r = run({"umount", p("etc")});
    ASSERT_TRUE(r.ok()) << r;
    EXPECT_FALSE(in_proc_mounts(p("etc")));
    EXPECT_EQ(snapshot(p("etc")), before) << "the directory under the mount was changed";
    ASSERT_TRUE(sh("rm -rf --one-file-system " + q(p("rw1")) + " && mkdir " + q(p("rw1"))).ok());
  }
}

}  // namespace
}  // namespace aufs::mt
