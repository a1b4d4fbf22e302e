// SPDX-License-Identifier: GPL-2.0-or-later
// aufs-fuse-image diff and commit (docker diff / docker commit): a busybox
// container's rw branch with created, changed, deleted and renamed files
// and directories (one renamed through a dirren record), a pseudo-linked
// file, a new hard link, a fifo, a device node and xattrs becomes an OCI
// image whose unpacked tree (umoci) and whose aufs-fuse-image mount are
// exactly what the container showed; skopeo copies it; `diff` lists the
// changes path for path; the same branch gives the same digests.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>

#include "container_support.hpp"

namespace aufs::ct {
namespace {

using namespace aufs::mt;

// name -> "key=value;..." of every entry's xattrs (sorted), for those that
// have any.
std::map<std::string, std::string> xattrs_of_tree(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (auto& rel : list_tree(dir)) {
    std::string p = dir + "/" + rel;
    char names[4096];
    ssize_t n = ::llistxattr(p.c_str(), names, sizeof names);
    if (n <= 0) continue;
    std::vector<std::string> keys;
    for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(std::strlen(names + i)) + 1)
      keys.push_back(names + i);
    std::sort(keys.begin(), keys.end());
    std::string all;
    for (auto& k : keys) {
      char v[4096];
      ssize_t m = ::lgetxattr(p.c_str(), k.c_str(), v, sizeof v);
      all += k + "=" + (m >= 0 ? std::string(v, static_cast<size_t>(m)) : "<" + errname(errno) + ">") + ";";
    }
    out[rel] = all;
  }
  return out;
}

// The whole view of a root: types, modes, owners, sizes, contents, targets,
// device numbers (diff_trees), hard-link groups and xattrs.
struct View {
  std::map<std::string, Entry> tree;
  std::vector<std::vector<std::string>> links;
  std::map<std::string, std::string> xattrs;
};
View view_of(const std::string& dir) {
  View v;
  v.tree = scan_tree(dir);
  v.links = link_groups(v.tree);
  v.xattrs = xattrs_of_tree(dir);
  return v;
}
std::string links_str(const std::vector<std::vector<std::string>>& g) {
  std::string s;
  for (auto& group : g) {
    for (auto& n : group) s += n + " ";
    s += "| ";
  }
  return s;
}
void expect_same_view(const View& want, const View& got, const std::string& what) {
  EXPECT_EQ(diff_trees(want.tree, got.tree), "") << what;
  EXPECT_EQ(links_str(want.links), links_str(got.links)) << what << ": hard-link groups";
  EXPECT_EQ(want.xattrs, got.xattrs) << what << ": xattrs";
}

// Runs argv and reports its wall time and peak RSS (wait4 of this child).
struct Measured {
  int status = -1;
  double seconds = 0;
  long maxrss_kb = 0;
};
Measured measure(const std::vector<std::string>& argv, const std::string& cwd) {
  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::chdir(cwd.c_str()) < 0) ::_exit(126);
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  Measured m;
  struct rusage ru {};
  int st = 0;
  if (pid > 0 && ::wait4(pid, &st, 0, &ru) == pid) {
    m.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    m.maxrss_kb = ru.ru_maxrss;
  }
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return m;
}

class ImageCommit : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (device nodes, owners, trusted xattrs)";
    if (image_tool().empty() || ::access(image_tool().c_str(), X_OK) != 0)
      GTEST_SKIP() << "aufs-fuse-image not built; AUFS_FUSE_IMAGE_BIN unset";
    if (!which("umoci")) GTEST_SKIP() << "umoci not installed (Debian package umoci)";
    if (!which("skopeo")) GTEST_SKIP() << "skopeo not installed (Debian package skopeo)";
    if (!which("busybox")) GTEST_SKIP() << "busybox not installed (Debian package busybox-static)";
  }
  void TearDown() override {
    // Unmount before the root is removed; each guard lazily unmounts too.
    if (!root().empty())
      for (auto& e : mounts_under(root())) {
        ADD_FAILURE() << "mount left behind on " << e.mount_point;
        SysMountGuard g(e.mount_point);
      }
    MountTest::TearDown();
  }

  RunResult tool(const std::vector<std::string>& args, const std::string& env = "") {
    std::string cmd = env + " " + q(image_tool());
    for (auto& a : args) cmd += " " + q(a);
    return sh(cmd, root(), 300000);
  }
  void must_sh(const std::string& cmd) {
    auto r = sh(cmd, root(), 300000);
    ASSERT_TRUE(r.ok()) << cmd << "\n" << r;
  }
  void umount_tool_mount(const std::string& mnt) {
    auto r = run({"umount", mnt});
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_TRUE(wait_daemons_gone(mnt, 10000)) << "daemon of " << mnt << " still running";
  }

  // img:v1: a busybox root plus a hard-linked pair, a directory tree to
  // rename and one to delete.
  void build_image() {
    must_sh("umoci init --layout img && umoci new --image img:base && "
            "umoci unpack --image img:base bundle >/dev/null");
    if (HasFatalFailure()) return;
    ASSERT_EQ(make_busybox_root(p("bundle/rootfs")), "");
    must_sh(R"(set -e; cd bundle/rootfs
mkdir -p srv/app data/sub olddir
echo app > srv/app/conf; ln srv/app/conf srv/app/conf.hard
echo d1 > data/f1; echo d2 > data/sub/f2; echo a > olddir/a; echo b > olddir/b
cd ../.. && umoci repack --refresh-bundle --image img:v1 bundle)");
  }
};

TEST_F(ImageCommit, CommitsAContainerAsAnImageThatUnpacksToTheSameTree) {
  build_image();
  if (HasFatalFailure()) return;
  std::string store = p("store"), rw = p("rw");
  auto r = tool({"--store", store, "--rw", rw, "-o", "dirren,threads=2", "img:v1", m()});
  SysMountGuard guard(m());
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_TRUE(in_proc_mounts(m()));
  // The container's changes, made through the mount.
  must_sh(R"(set -e; cd mnt
echo new > etc/new; ln etc/new etc/new.link
echo 'app:x:100:100::/srv/app:/bin/sh' >> etc/passwd
rm etc/motd; rm -r olddir; mv etc/shadow etc/shadow.bak
echo more >> srv/app/conf
mv data data2; echo f3 > data2/sub/f3
mkfifo srv/fifo; mknod srv/null2 c 1 3; ln -s app/conf srv/conf.link
mkdir srv/new; echo n > srv/new/file; chown 1:1 srv/new/file; chmod 0640 srv/new/file)");
  if (HasFatalFailure()) return;
  ASSERT_EQ(::setxattr(m("etc/new").c_str(), "user.test", "hello", 5, 0), 0) << errname(errno);
  ASSERT_EQ(::setxattr(m("srv/new").c_str(), "trusted.test", "t", 1, 0), 0) << errname(errno);
  // The premise: the rename went through a dirren record and the changed
  // hard-linked file through a pseudo-link.
  ASSERT_TRUE(exists(rw + "/data2/.wh..wh..dr.aufs-fuse"));
  ASSERT_EQ(list_dir(rw + "/.wh..wh.plnk").size(), 1u);
  EXPECT_EQ(read_file(m("srv/app/conf.hard")), "app\nmore\n");
  View container = view_of(m());
  // What the comparisons below must carry over.
  EXPECT_EQ(links_str(container.links), "etc/new etc/new.link | srv/app/conf srv/app/conf.hard | ");
  EXPECT_EQ(container.xattrs["etc/new"], "user.test=hello;");
  EXPECT_EQ(container.xattrs["srv/new"], "trusted.test=t;");
  EXPECT_EQ(container.tree["srv/null2"].type, 'c');
  EXPECT_EQ(container.tree["srv/fifo"].type, 'p');

  const std::string expected_diff =
      "D /data\nA /data2\nA /data2/f1\nA /data2/sub\nA /data2/sub/f2\nA /data2/sub/f3\n"
      "C /etc\nD /etc/motd\nA /etc/new\nA /etc/new.link\nC /etc/passwd\nD /etc/shadow\n"
      "A /etc/shadow.bak\nD /olddir\nC /srv\nC /srv/app\nC /srv/app/conf\n"
      "C /srv/app/conf.hard\nA /srv/conf.link\nA /srv/fifo\nA /srv/new\nA /srv/new/file\n"
      "A /srv/null2\n";
  r = tool({"diff", m()});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, expected_diff);
  // A live container is not committed.
  r = tool({"commit", m(), "--layout", p("out"), "--tag", "c1"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("live mount"), std::string::npos) << r.err;
  EXPECT_FALSE(exists(p("out")));
  // With --pause the daemon holds writes while the branch is read.
  const std::string epoch = "SOURCE_DATE_EPOCH=1700000000";
  r = tool({"diff", "--pause", m()});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, expected_diff);
  r = tool({"commit", "--pause", m(), "--layout", p("out-live"), "--tag", "c1", "-m",
            "container c1"},
           epoch);
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.err.find("writes to " + m() + " held"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("writes to " + m() + " released"), std::string::npos) << r.err;
  std::string live_digest = r.out;
  // etc's times on the branch are put back: the layer keeps directory
  // mtimes (to the second), which the write below would change.
  struct stat etc_st;
  ASSERT_EQ(::stat((rw + "/etc").c_str(), &etc_st), 0);
  EXPECT_TRUE(write_file(m("etc/after-commit"), "x\n")) << "writes go on after the commit";
  ASSERT_EQ(::unlink(m("etc/after-commit").c_str()), 0);
  const struct timespec etc_times[2] = {etc_st.st_atim, etc_st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, (rw + "/etc").c_str(), etc_times, 0), 0);
  umount_tool_mount(m());

  // The unmounted branch: the image below comes from the mount's record.
  r = tool({"diff", rw});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, expected_diff);
  r = tool({"commit", rw, "--layout", p("out"), "--tag", "c1", "-m", "container c1"}, epoch);
  ASSERT_TRUE(r.ok()) << r;
  std::string digest1 = r.out;
  EXPECT_EQ(live_digest, digest1) << "the paused live commit differs from the branch's";
  EXPECT_NE(r.err.find("1 renamed directories, 1 pseudo-linked names"), std::string::npos)
      << r.err;
  r = tool({"commit", rw, "--layout", p("out"), "--tag", "c2", "-m", "container c1"}, epoch);
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, digest1) << "the same branch gave another image";
  auto layer_line = [](const std::string& err) {
    auto at = err.find(": layer sha256:");
    return at == std::string::npos ? std::string("<none>") : err.substr(at, 80);
  };
  std::string first_layer = layer_line(r.err);
  r = tool({"commit", rw, "--layout", p("out"), "--tag", "c3"});  // another time: same layer
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(layer_line(r.err), first_layer);
  std::cout << "[ INFO     ] committed layer" << first_layer.substr(7) << "\n";

  // umoci reads it back to exactly the container's tree.
  must_sh("umoci unpack --image out:c1 unpacked >/dev/null");
  if (HasFatalFailure()) return;
  expect_same_view(container, view_of(p("unpacked/rootfs")), "umoci unpack");
  // The config: parent's plus one diff_id and a history entry.
  r = sh("umoci stat --image out:c1 --json", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.out.find("container c1"), std::string::npos) << r.out;
  // skopeo copies it to another layout (its own digest checks).
  r = run({"skopeo", "--insecure-policy", "copy", "oci:out:c1", "oci:copy:c1"}, root(), 120000);
  EXPECT_TRUE(r.ok()) << r;
  // aufs-fuse-image mounts it, reusing the parent's layer.
  mkdirs(p("mnt2"));
  r = tool({"--store", store, "-o", "threads=2", "out:c1", p("mnt2")});
  SysMountGuard guard2(p("mnt2"));
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.err.find("layers: 1 extracted, 1 reused"), std::string::npos) << r.err;
  expect_same_view(container, view_of(p("mnt2")), "aufs-fuse-image mount of the commit");
  umount_tool_mount(p("mnt2"));
}

TEST_F(ImageCommit, RefusesWhatItCannotCommit) {
  build_image();
  if (HasFatalFailure()) return;
  mkdirs(p("rw"));
  // No record and no --from: the image below is unknown.
  auto r = tool({"commit", p("rw"), "--layout", p("out"), "--tag", "x"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("give --from LAYOUT[:TAG]"), std::string::npos) << r.err;
  // A whiteout OCI cannot express (a directory) refuses the commit.
  mkdirs(p("rw/etc/.wh.motd"));
  r = tool({"commit", p("rw"), "--from", "img:v1", "--store", p("store"), "--layout", p("out"),
            "--tag", "x"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
  // A name with both its whiteout and an entry (an interrupted unlink):
  // the entry wins, as aufs-fuse-check --fix decides.
  ASSERT_EQ(::rmdir(p("rw/etc/.wh.motd").c_str()), 0);
  ASSERT_TRUE(write_file(p("rw/etc/.wh.motd"), ""));
  ASSERT_TRUE(write_file(p("rw/etc/motd"), "kept\n"));
  r = tool({"diff", p("rw"), "--from", "img:v1", "--store", p("store")});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "C /etc\nC /etc/motd\n");
  r = tool({"commit", p("rw"), "--from", "img:v1", "--store", p("store"), "--layout", p("out"),
            "--tag", "x"});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.err.find("1 name-and-whiteout pairs resolved"), std::string::npos) << r.err;
  must_sh("umoci unpack --image out:x unpacked >/dev/null");
  EXPECT_EQ(read_file(p("unpacked/rootfs/etc/motd")), "kept\n");
}

// AUFS_LONG=1: a 500 MiB container layer streams (peak RSS stays small).
TEST_F(ImageCommit, LongCommitsA500MiBLayerInFlatMemory) {
  if (!long_tests()) GTEST_SKIP() << "long test: set AUFS_LONG=1";
  build_image();
  if (HasFatalFailure()) return;
  // Written straight into the branch (it is a directory like any other):
  // 5 files of 100 MiB, incompressible.
  must_sh("mkdir -p rw/big && for i in 1 2 3 4 5; do "
          "head -c 104857600 /dev/urandom > rw/big/f$i; done");
  if (HasFatalFailure()) return;
  Measured m = measure({image_tool(), "commit", p("rw"), "--from", "img:v1", "--store",
                        p("store"), "--layout", p("out"), "--tag", "big", "-q"},
                       root());
  ASSERT_EQ(m.status, 0);
  std::cout << "[ INFO     ] commit of a 500 MiB layer: " << m.seconds << " s, peak RSS "
            << m.maxrss_kb / 1024 << " MiB\n";
  EXPECT_LT(m.maxrss_kb, 64 * 1024) << "memory grew with the layer";
  Measured again = measure({image_tool(), "commit", p("rw"), "--from", "img:v1", "--store",
                            p("store"), "--layout", p("out"), "--tag", "big2", "-q"},
                           root());
  ASSERT_EQ(again.status, 0);
  std::cout << "[ INFO     ] second commit: " << again.seconds << " s\n";
  // Same content, same layer: one big blob in the layout.
  auto r = sh("find out/blobs/sha256 -size +100M | wc -l", root());
  EXPECT_EQ(r.out, "1\n") << r;
}

}  // namespace
}  // namespace aufs::ct
