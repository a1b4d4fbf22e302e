// SPDX-License-Identifier: GPL-2.0-or-later
// Overlay-style options: lowerdir=a:b,upperdir=u,workdir=w is the union
// br=u=rw:a=ro+wh:b=ro+wh; writes land in upperdir, deletions are AUFS
// whiteouts (.wh.NAME hard links), never overlayfs character devices.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools_support.hpp"

namespace aufs::mt {
namespace {

class Overlay : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("upper"));
    mkdirs(p("work"));
    mkdirs(p("lower1/dir"));
    mkdirs(p("lower2/dir"));
    ASSERT_TRUE(write_file(p("lower1/a.txt"), "a from lower1\n"));
    ASSERT_TRUE(write_file(p("lower2/a.txt"), "a from lower2\n"));
    ASSERT_TRUE(write_file(p("lower2/b.txt"), "b\n"));
    ASSERT_TRUE(write_file(p("lower2/hidden.txt"), "hidden by lower1's whiteout\n"));
    ASSERT_TRUE(write_file(p("lower2/dir/d2.txt"), "d2\n"));
    ASSERT_TRUE(write_file(p("lower1/dir/d1.txt"), "d1\n"));
    // An AUFS whiteout in lower1 (ro+wh honours it).
    ASSERT_TRUE(write_file(p("lower1/.wh.hidden.txt"), ""));
    before_ = snapshot(p("lower1")) + snapshot(p("lower2"));
  }

  // The checks common to both ways of mounting.
  void check_union(const std::string& mnt) {
    auto info = ctl_info(mnt);
    EXPECT_EQ(branch_rows(info),
              (std::vector<std::string>{"0:0:" + p("upper") + "=rw",
                                        "1:1:" + p("lower1") + "=ro+wh+ovl",
                                        "2:2:" + p("lower2") + "=ro+wh+ovl"}));
    EXPECT_EQ(list_dir(mnt), (std::vector<std::string>{"a.txt", "b.txt", "dir"}));
    EXPECT_EQ(list_dir(mnt + "/dir"), (std::vector<std::string>{"d1.txt", "d2.txt"}));
    EXPECT_EQ(read_file(mnt + "/a.txt"), "a from lower1\n");
    // Writes land in upperdir.
    ASSERT_TRUE(write_file(mnt + "/new.txt", "new\n"));
    EXPECT_EQ(read_file(p("upper/new.txt")), "new\n");
    ASSERT_TRUE(append_file(mnt + "/b.txt", "more\n"));
    EXPECT_EQ(read_file(p("upper/b.txt")), "b\nmore\n");
    ASSERT_TRUE(write_file(mnt + "/dir/d3.txt", "d3\n"));
    EXPECT_EQ(read_file(p("upper/dir/d3.txt")), "d3\n");
    // Deletions are AUFS whiteouts in upperdir.
    ASSERT_EQ(::unlink((mnt + "/a.txt").c_str()), 0);
    EXPECT_EQ(lstat_errno(mnt + "/a.txt"), ENOENT);
    auto wh = lstat_of(p("upper/.wh.a.txt"));
    auto base = lstat_of(p("upper/.wh..wh.aufs"));
    ASSERT_TRUE(wh.has_value()) << "no AUFS whiteout .wh.a.txt in upperdir";
    ASSERT_TRUE(base.has_value());
    EXPECT_TRUE(S_ISREG(wh->st_mode)) << "whiteout is not a regular file";
    EXPECT_EQ(wh->st_ino, base->st_ino) << "whiteout is not a hard link to .wh..wh.aufs";
    EXPECT_FALSE(exists(p("upper/a.txt"))) << "overlayfs-style whiteout (char device) made";
    ASSERT_TRUE(sh("rm -r " + q(mnt + "/dir")).ok());
    EXPECT_EQ(lstat_errno(mnt + "/dir"), ENOENT);
    EXPECT_TRUE(exists(p("upper/.wh.dir")));
    EXPECT_EQ(list_dir(mnt), (std::vector<std::string>{"b.txt", "new.txt"}));
    // workdir is not used.
    EXPECT_EQ(list_dir(p("work")), std::vector<std::string>{});
    EXPECT_EQ(snapshot(p("lower1")) + snapshot(p("lower2")), before_) << "a lower dir changed";
  }

  std::string before_;
};

TEST_F(Overlay, DaemonOptions) {
  allow_log("workdir");
  ASSERT_TRUE(mount_args({"-f", "-o",
                          "lowerdir=" + p("lower1") + ":" + p("lower2") + ",upperdir=" +
                              p("upper") + ",workdir=" + p("work") +
                              ",entry_timeout=0,attr_timeout=0,negative_timeout=0",
                          m()}));
  check_union(m());
}

TEST_F(Overlay, LowerOnlyIsReadOnly) {
  ASSERT_TRUE(mount_args({"-f", "-o",
                          "lowerdir=" + p("lower1") + ":" + p("lower2") +
                              ",entry_timeout=0,attr_timeout=0,negative_timeout=0",
                          m()}));
  EXPECT_EQ(list_dir(m()), (std::vector<std::string>{"a.txt", "b.txt", "dir"}));
  // Like overlayfs without an upper layer: read-only.
  std::string x = m("x");
  EXPECT_ERRNO(EROFS, ::open(x.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  EXPECT_EQ(read_file(m("dir/d2.txt")), "d2\n");
  EXPECT_EQ(list_dir(p("upper")), std::vector<std::string>{});
}

TEST_F(Overlay, ThroughMountAsMountProgram) {
  if (auto why = mount_helper_unavailable(); !why.empty()) GTEST_SKIP() << why;
  SysMountGuard guard(m());
  auto r = run({"mount", "-t", "aufs", "-o",
                "lowerdir=./lower1:./lower2,upperdir=./upper,workdir=./work", "none", "./mnt"},
               root());
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_TRUE(in_proc_mounts(m()));
  check_union(m());
  r = run({"umount", m()});
  EXPECT_TRUE(r.ok()) << r;
}

// Layers written by kernel overlayfs itself (character-device whiteouts, a
// directory removed and made again: opaque by trusted.overlay.opaque) as
// lower branches: the merged view equals what overlayfs showed, through
// the ovl attribute and through lowerdir=, and writes stay in AUFS format.
TEST_F(Overlay, LayersWrittenByKernelOverlayfs) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (mount -t overlay)";
  mkdirs(p("kl/d"));
  mkdirs(p("kl/keep"));
  mkdirs(p("ku"));
  mkdirs(p("kw"));
  mkdirs(p("ko"));
  mkdirs(p("krw"));
  ASSERT_TRUE(write_file(p("kl/f1"), "l1\n"));
  ASSERT_TRUE(write_file(p("kl/f2"), "l2\n"));
  ASSERT_TRUE(write_file(p("kl/d/old"), "old\n"));
  ASSERT_TRUE(write_file(p("kl/keep/k"), "k\n"));
  const std::string ovl_opts = "lowerdir=" + p("kl") + ",upperdir=" + p("ku") + ",workdir=" + p("kw");
  std::string ovl_view;
  {
    SysMountGuard guard(p("ko"));
    auto r = run({"mount", "-t", "overlay", "overlay", "-o", ovl_opts, p("ko")});
    if (!r.ok()) GTEST_SKIP() << "kernel overlayfs unavailable: " << r;
    auto s = sh("cd " + q(p("ko")) + " && rm f1 && rm -r d && mkdir d && echo n > d/new && "
                "echo up > f3 && find . -printf '%p %y %s\\n' | sort");
    ASSERT_TRUE(s.ok()) << s;
    ovl_view = s.out;
    ASSERT_TRUE(run({"umount", p("ko")}).ok());
  }
  auto st = lstat_of(p("ku/f1"));
  ASSERT_TRUE(st && S_ISCHR(st->st_mode) && st->st_rdev == 0) << "overlayfs made no 0:0 whiteout";
  auto view = [&](const std::string& mnt) {
    auto s = sh("cd " + q(mnt) + " && find . -printf '%p %y %s\\n' | sort");
    EXPECT_TRUE(s.ok()) << s;
    return s.out;
  };
  ASSERT_TRUE(mount("krw:ku=ro+ovl:kl=ro"));
  EXPECT_EQ(view(m()), ovl_view);
  EXPECT_EQ(lstat_errno(m("d/old")), ENOENT) << "the opaque directory let a lower entry through";
  EXPECT_EQ(ctl_info(m())["branches"][1]["perm"], "ro+ovl");
  // Writes in AUFS format: a whiteout file, no device.
  ASSERT_EQ(::unlink(m("f2").c_str()), 0);
  EXPECT_TRUE(exists(p("krw/.wh.f2")));
  unmount();
  ASSERT_EQ(::unlink(p("krw/.wh.f2").c_str()), 0);
  // lowerdir= reads them by default.
  ASSERT_TRUE(mount_args({"-f", "-o", "lowerdir=" + p("ku") + ":" + p("kl"), m()}));
  EXPECT_EQ(view(m()), ovl_view);
}

}  // namespace
}  // namespace aufs::mt
