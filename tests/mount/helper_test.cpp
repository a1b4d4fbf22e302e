// SPDX-License-Identifier: GPL-2.0-or-later
// mount(8) integration: `mount -t aufs` through the installed mount.aufs
// helper, `-t fuse.aufs-fuse` through Debian's mount.fuse3, flags, and the
// helper's refusals (one clear line, non-zero exit, nothing left mounted).
// Every mount made here is guarded by SysMountGuard (umount, then umount -l).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "tools_support.hpp"

namespace aufs::mt {
namespace {

class Helper : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (auto why = mount_helper_unavailable(); !why.empty()) GTEST_SKIP() << why;
  }

  // The seed's layout: a container layer over three image layers.
  void make_seed_layers() { ASSERT_TRUE(make_walkthrough_layers(root())); }

  void make_small_layers() {
    mkdirs(p("rw"));
    mkdirs(p("l1/dir"));
    ASSERT_TRUE(write_file(p("l1/lower.txt"), "lower\n"));
    ASSERT_TRUE(write_file(p("l1/dir/inner.txt"), "inner\n"));
    ASSERT_TRUE(write_file(p("l1/run.sh"), "#!/bin/sh\necho ran\n", 0755));
  }

  // Expects mount(8)/the helper to have refused: exit 32 ("mount failure"),
  // one line on stderr naming `mention`, nothing mounted below the root.
  void expect_refused(const RunResult& r, const std::string& mention) {
    EXPECT_EQ(r.exit_code, 32) << r;
    EXPECT_TRUE(one_error_line(r, {"mount.aufs: ", "aufs-fuse: "}));
    EXPECT_NE(r.err.find(mention), std::string::npos) << "stderr does not mention '" << mention
                                                      << "'\n"
                                                      << r;
    EXPECT_EQ(r.out, "") << r;
    EXPECT_TRUE(mounts_under(root()).empty()) << "a mount was left behind";
  }
};

TEST_F(Helper, SeedCommandMountsWalkthroughAndUmounts) {
  make_seed_layers();
  std::string before[4];
  for (int n = 1; n <= 3; ++n) before[n] = snapshot(p("image-layer" + std::to_string(n)));
  SysMountGuard guard(m());
  // The seed's exact command, relative paths, cwd = the temporary root.
  auto r = run({"mount", "-t", "aufs", "-o",
                "dirs=./container-layer:./image-layer1:./image-layer2:./image-layer3", "none",
                "./mnt"},
               root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.err, "") << r;
  auto me = mount_entry(m());
  ASSERT_TRUE(me.has_value()) << "not in /proc/self/mountinfo: " << m();
  EXPECT_EQ(me->fstype, "fuse.aufs");
  EXPECT_EQ(me->source, "none");
  EXPECT_EQ(daemon_pids_for(m()).size(), 1u) << "one daemon serves the mount";

  // Branches resolved to absolute paths; dirs= defaults: first rw, rest ro.
  auto info = ctl_info(m());
  EXPECT_EQ(branch_rows(info),
            (std::vector<std::string>{"0:0:" + p("container-layer") + "=rw",
                                      "1:1:" + p("image-layer1") + "=ro",
                                      "2:2:" + p("image-layer2") + "=ro",
                                      "3:3:" + p("image-layer3") + "=ro"}));
  EXPECT_EQ(info["mountpoint"].get<std::string>(), m());

  // The walk-through.
  EXPECT_EQ(list_tree(m()), walkthrough_tree());
  EXPECT_EQ(read_file(m("image-layer2.txt")), "I am image layer 2\n");
  EXPECT_EQ(read_file(m("subdir3/subdir3.txt")), "subdir 3\n");
  walkthrough_changes(root());
  if (HasFatalFailure()) return;
  EXPECT_EQ(list_dir(m()),
            (std::vector<std::string>{"container-layer.txt", "container-test.txt",
                                      "image-layer1.txt", "image-layer3.txt", "subdir1", "subdir2",
                                      "subdir3"}));

  // `umount ./mnt` unmounts and the daemon goes away.
  r = run({"umount", "./mnt"}, root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.err, "") << r;
  EXPECT_FALSE(in_proc_mounts(m()));
  EXPECT_TRUE(wait_daemons_gone(m(), 5000)) << "daemon still running after umount";
  for (int n = 1; n <= 3; ++n)
    EXPECT_EQ(snapshot(p("image-layer" + std::to_string(n))), before[n])
        << "image-layer" << n << " was modified";
}

TEST_F(Helper, FuseAufsFuseTypeThroughMountFuse3) {
  if (::access("/sbin/mount.fuse3", X_OK) != 0 && ::access("/usr/sbin/mount.fuse3", X_OK) != 0)
    GTEST_SKIP() << "mount.fuse3 is not installed";
  if (!sh("command -v aufs-fuse").ok())
    GTEST_SKIP() << "aufs-fuse is not in PATH (mount.fuse3 runs it from PATH; meson install)";
  make_small_layers();
  mkdirs(p("mnt2"));
  {
    SysMountGuard guard(m());
    auto r = run({"mount", "-t", "fuse.aufs-fuse", "-o", "br=./rw:./l1=ro+wh", "none", "./mnt"},
                 root());
    ASSERT_TRUE(r.ok()) << r;
    auto me = mount_entry(m());
    ASSERT_TRUE(me.has_value());
    EXPECT_EQ(me->fstype, "fuse.aufs");
    EXPECT_EQ(me->source, "none");
    EXPECT_EQ(read_file(m("lower.txt")), "lower\n");
    EXPECT_EQ(read_file(m("dir/inner.txt")), "inner\n");
    ASSERT_TRUE(sh("echo new > mnt/new.txt && rm mnt/lower.txt", root()).ok());
    EXPECT_EQ(read_file(p("rw/new.txt")), "new\n");
    EXPECT_TRUE(exists(p("rw/.wh.lower.txt")));
    EXPECT_EQ(read_file(p("l1/lower.txt")), "lower\n");
    EXPECT_EQ(branch_rows(ctl_info(m())),
              (std::vector<std::string>{"0:0:" + p("rw") + "=rw", "1:1:" + p("l1") + "=ro+wh"}));
    r = run({"umount", m()});
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_FALSE(in_proc_mounts(m()));
    // The daemon exits after umount returns; until then it holds rw's lock.
    EXPECT_TRUE(wait_daemons_gone(m()));
  }
  {
    // The SOURCE field as the branch list (handy in fstab).
    SysMountGuard guard(p("mnt2"));
    std::string src = p("rw") + ":" + p("l1") + "=ro+wh";
    auto r = run({"mount", "-t", "fuse.aufs-fuse", src, p("mnt2")});
    ASSERT_TRUE(r.ok()) << r;
    auto me = mount_entry(p("mnt2"));
    ASSERT_TRUE(me.has_value());
    EXPECT_EQ(me->fstype, "fuse.aufs");
    EXPECT_EQ(me->source, src);
    EXPECT_EQ(list_dir(p("mnt2")), (std::vector<std::string>{"dir", "new.txt", "run.sh"}));
    r = run({"umount", p("mnt2")});
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_FALSE(in_proc_mounts(p("mnt2")));
  }
}

TEST_F(Helper, StandardFlagsPassThrough) {
  make_small_layers();
  SysMountGuard guard(m());
  auto r = run({"mount", "-t", "aufs", "-o", "ro,nosuid,nodev,noexec,noatime,br=./rw:./l1=ro+wh",
                "none", "./mnt"},
               root());
  ASSERT_TRUE(r.ok()) << r;
  auto me = mount_entry(m());
  ASSERT_TRUE(me.has_value());
  for (const char* f : {"ro", "nosuid", "nodev", "noexec", "noatime"})
    EXPECT_TRUE(me->has_opt(f)) << f << " missing from " << me->mount_opts;
  EXPECT_EQ(read_file(m("lower.txt")), "lower\n");
  std::string nf = m("new.txt");
  EXPECT_ERRNO(EROFS, ::open(nf.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  std::string lf = m("lower.txt");
  EXPECT_ERRNO(EROFS, ::open(lf.c_str(), O_WRONLY | O_CLOEXEC));
  // noexec: the executable lower script cannot be run from the mount.
  std::string script = m("run.sh");
  EXPECT_EQ(::access(script.c_str(), X_OK), -1);
  r = run({script});
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "") << r;
  EXPECT_EQ(list_dir(p("rw")), std::vector<std::string>{}) << "a read-only mount wrote";
  r = run({"umount", m()});
  EXPECT_TRUE(r.ok()) << r;
}

TEST_F(Helper, HelperOnlyOptionsAreAccepted) {
  make_small_layers();
  SysMountGuard guard(m());
  // noauto/_netdev/users/nofail/x-*/comment= are for mount(8) and systemd;
  // the helper must not hand them to the daemon (which would refuse them).
  auto r = run({"mount", "-t", "aufs", "-o",
                "noauto,_netdev,users,nofail,x-systemd.automount,x-systemd.idle-timeout=30,"
                "comment=test,br=./rw:./l1=ro+wh",
                "none", "./mnt"},
               root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.err, "") << r;
  ASSERT_TRUE(in_proc_mounts(m()));
  EXPECT_EQ(read_file(m("lower.txt")), "lower\n");
  auto info = ctl_info(m());
  EXPECT_EQ(info["branches"].size(), 2u);
  r = run({"umount", m()});
  EXPECT_TRUE(r.ok()) << r;
}

TEST_F(Helper, UnknownOptionIsOneLineAndNoMount) {
  make_small_layers();
  std::string before = snapshot(p("rw")) + snapshot(p("l1"));
  SysMountGuard guard(m());
  auto r = run({"mount", "-t", "aufs", "-o", "br=./rw:./l1=ro+wh,frobnicate", "none", "./mnt"},
               root());
  expect_refused(r, "frobnicate");
  // The helper itself, as mount(8) calls it.
  r = run({kMountHelper, "none", m(), "-o", "br=" + p("rw") + ":" + p("l1") + ",frobnicate=3"},
          root());
  expect_refused(r, "frobnicate");
  r = run({kMountHelper, "--frobnicate", "none", m(), "-o", "br=" + p("rw")}, root());
  expect_refused(r, "--frobnicate");
  EXPECT_TRUE(r.err.starts_with("mount.aufs: ")) << r;
  EXPECT_EQ(snapshot(p("rw")) + snapshot(p("l1")), before) << "a refused mount changed a branch";
}

TEST_F(Helper, MissingBranchIsOneLineAndNoMount) {
  make_small_layers();
  std::string before = snapshot(p("rw")) + snapshot(p("l1"));
  SysMountGuard guard(m());
  auto r = run({"mount", "-t", "aufs", "-o", "br=./rw:./no-such-layer=ro+wh:./l1", "none",
                "./mnt"},
               root());
  expect_refused(r, "no-such-layer");
  r = run({"mount", "-t", "aufs", "-o", "dirs=./no-such-top", "none", "./mnt"}, root());
  expect_refused(r, "no-such-top");
  EXPECT_EQ(snapshot(p("rw")) + snapshot(p("l1")), before);
}

// nofail in an explicit command: the failure is still reported with
// mount(8)'s failure status (mount.fuse3 ignores nofail too), and one line
// says that nothing was mounted.
TEST_F(Helper, NofailSaysNothingWasMountedAndFails) {
  make_small_layers();
  std::string before = snapshot(p("rw")) + snapshot(p("l1"));
  SysMountGuard guard(m());
  auto r = run({"mount", "-t", "aufs", "-o", "nofail,br=./rw:./no-such-layer=ro+wh:./l1", "none",
                "./mnt"},
               root());
  EXPECT_EQ(r.exit_code, 32) << r;
  EXPECT_NE(r.err.find("no-such-layer"), std::string::npos) << r;
  EXPECT_NE(r.err.find("mount.aufs: nothing was mounted on "), std::string::npos) << r;
  EXPECT_FALSE(in_proc_mounts(m()));
  EXPECT_EQ(snapshot(p("rw")) + snapshot(p("l1")), before);
  // Without nofail the same failure has no such line.
  r = run({"mount", "-t", "aufs", "-o", "br=./rw:./no-such-layer=ro+wh:./l1", "none", "./mnt"},
          root());
  EXPECT_EQ(r.exit_code, 32) << r;
  EXPECT_EQ(r.err.find("nothing was mounted"), std::string::npos) << r;
}

TEST_F(Helper, BadRemountAddIndexIsOneLineAndChangesNothing) {
  make_small_layers();
  mkdirs(p("extra"));
  SysMountGuard guard(m());
  auto r = run({"mount", "-t", "aufs", "-o", "br=./rw:./l1=ro+wh", "none", "./mnt"}, root());
  ASSERT_TRUE(r.ok()) << r;
  auto before = ctl_info(m());
  ASSERT_EQ(before["branches"].size(), 2u);

  r = run({"mount", "-o", "remount,add:99:" + p("extra"), m()});
  EXPECT_EQ(r.exit_code, 32) << r;
  EXPECT_TRUE(one_error_line(r, {"mount.aufs: ", "aufs-fuse: "}));
  EXPECT_TRUE(r.err.find("out of") != std::string::npos || r.err.find("99") != std::string::npos)
      << "the line does not say the index is out of range\n"
      << r;
  // A malformed index is caught before the daemon is asked.
  r = run({"mount", "-o", "remount,add:x1:" + p("extra"), m()});
  EXPECT_EQ(r.exit_code, 32) << r;
  EXPECT_TRUE(one_error_line(r, {"mount.aufs: ", "aufs-fuse: "}));
  EXPECT_NE(r.err.find("x1"), std::string::npos) << r;
  // The same through aufsctl.
  r = run({aufsctl_binary(), m(), "add", "99", p("extra")});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(one_error_line(r, {"aufsctl: "}));

  ASSERT_TRUE(in_proc_mounts(m())) << "a refused remount must leave the mount alone";
  auto after = ctl_info(m());
  EXPECT_EQ(branch_rows(after), branch_rows(before));
  EXPECT_EQ(after["generation"].get<long long>(), before["generation"].get<long long>());
  EXPECT_EQ(after["counters"]["branch_changes"].get<long long>(), 0);
  EXPECT_EQ(read_file(m("lower.txt")), "lower\n");
  r = run({"umount", m()});
  EXPECT_TRUE(r.ok()) << r;
}

TEST_F(Helper, RemountAddOfMissingBranchNamesIt) {
  make_small_layers();
  SysMountGuard guard(m());
  auto r = run({"mount", "-t", "aufs", "-o", "br=./rw:./l1=ro+wh", "none", "./mnt"}, root());
  ASSERT_TRUE(r.ok()) << r;
  auto before = ctl_info(m());
  r = run({"mount", "-o", "remount,append:" + p("no-such-branch") + "=ro", m()});
  EXPECT_EQ(r.exit_code, 32) << r;
  EXPECT_TRUE(one_error_line(r, {"mount.aufs: ", "aufs-fuse: "}));
  // The line must be about the missing directory, not about the mount.
  EXPECT_NE(r.err.find("no-such-branch"), std::string::npos)
      << "stderr does not name the missing branch\n"
      << r;
  EXPECT_EQ(r.err.find("not an aufs-fuse mount"), std::string::npos)
      << "a missing branch is reported as a wrong mount point\n"
      << r;
  EXPECT_EQ(branch_rows(ctl_info(m())), branch_rows(before));
  r = run({"umount", m()});
  EXPECT_TRUE(r.ok()) << r;
}

}  // namespace
}  // namespace aufs::mt
