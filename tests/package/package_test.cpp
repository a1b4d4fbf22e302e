// SPDX-License-Identifier: GPL-2.0-or-later
// Package tier: the aufs-fuse .deb that tools/build-deb.sh made is installed
// with dpkg into this system, the README walk-through is mounted with
// `mount -t aufs` through the installed helper and daemon, and the package
// is purged again: nothing of it may be left. Teardown always unmounts
// before it purges, and the fixture removes its directory only when nothing
// is mounted below it.
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

const char* kPkg = "aufs-fuse";

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

bool pkg_installed() {
  auto r = run({"dpkg-query", "-W", "-f=${db:Status-Status}", kPkg});
  return r.ok() && r.out != "not-installed" && !r.out.empty();
}

// The one .deb in $AUFS_DEB_DIR ("" when there is none).
std::string find_deb(std::string* why) {
  const char* dir = std::getenv("AUFS_DEB_DIR");
  if (!dir || !*dir) {
    *why = "AUFS_DEB_DIR is not set";
    return "";
  }
  std::vector<std::string> debs;
  for (auto& n : list_dir(dir))
    if (n.starts_with(std::string(kPkg) + "_") && n.ends_with(".deb"))
      debs.push_back(std::string(dir) + "/" + n);
  if (debs.size() != 1) {
    *why = std::to_string(debs.size()) + " aufs-fuse .debs in " + dir +
           " (tools/build-deb.sh makes one; tools/run-tests.sh runs it as root)";
    return "";
  }
  return debs[0];
}

// Purges the package on scope exit if this test installed it.
struct PackageGuard {
  bool installed = false;
  ~PackageGuard() {
    if (installed && pkg_installed()) {
      auto r = run({"dpkg", "--purge", kPkg}, "", 120000);
      if (!r.ok()) std::fprintf(stderr, "package test: dpkg --purge failed: %s\n", r.err.c_str());
    }
  }
};

class Package : public MountTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "installing a package needs root";
    std::string why;
    deb_ = find_deb(&why);
    if (deb_.empty()) GTEST_SKIP() << why;
    if (pkg_installed())
      GTEST_SKIP() << "aufs-fuse is already installed here; the test would remove it";
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // The installed helper must run the installed daemon, not this build's.
    ::unsetenv("AUFS_FUSE_BIN");
  }
  std::string deb_;
};

TEST_F(Package, InstallMountWalkthroughPurge) {
  // What the .deb holds; a file of it that already exists belongs to
  // someone else and dpkg would overwrite it.
  auto contents = run({"sh", "-c", "dpkg-deb --fsys-tarfile " + q(deb_) + " | tar -t"});
  ASSERT_TRUE(contents.ok()) << contents;
  std::map<std::string, bool> existed;  // path -> existed before install
  for (auto& l : lines(contents.out)) {
    std::string path = l.substr(1);  // "./usr/sbin/x" -> "/usr/sbin/x"
    if (path.size() > 1 && path.ends_with("/")) path.pop_back();
    if (path.empty()) continue;
    auto st = lstat_of(path);
    if (st && !S_ISDIR(st->st_mode))
      GTEST_SKIP() << path << " exists ("
                   << (S_ISLNK(st->st_mode) ? "-> " + readlink_of(path) : "a file")
                   << "), not from this package: dpkg -i would overwrite it (left by a "
                      "`meson install`? remove it to run this test)";
    existed[path] = st.has_value();
  }
  auto ver = run({"dpkg-deb", "-f", deb_, "Version"});
  ASSERT_TRUE(ver.ok()) << ver;
  EXPECT_EQ(ver.out, std::string(std::getenv("AUFS_VERSION") ?: "") + "\n")
      << "debian/changelog and meson.build disagree on the version";

  PackageGuard pkg;
  auto r = run({"dpkg", "-i", deb_}, "", 180000);
  pkg.installed = true;
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_TRUE(pkg_installed());
  auto listed = run({"dpkg", "-L", kPkg});
  ASSERT_TRUE(listed.ok()) << listed;
  auto files = lines(listed.out);
  for (const char* f :
       {"/usr/sbin/aufs-fuse", "/usr/sbin/mount.aufs", "/usr/sbin/mount.fuse.aufs",
        "/usr/sbin/aufsctl", "/usr/sbin/aufs-fuse-check", "/usr/share/man/man8/aufs-fuse.8.gz",
        "/usr/share/man/man5/aufs-fuse.5.gz", "/usr/share/man/man8/mount.aufs.8.gz",
        "/usr/share/man/man8/aufsctl.8.gz", "/usr/share/man/man8/aufs-fuse-check.8.gz",
        "/usr/share/doc/aufs-fuse/copyright"})
    EXPECT_NE(std::find(files.begin(), files.end(), f), files.end()) << f << " not in the package";
  // mount(8) looks in /sbin: on merged /usr that is the package's /usr/sbin.
  char real[PATH_MAX];
  ASSERT_NE(::realpath("/sbin/mount.aufs", real), nullptr) << "mount(8) cannot find mount.aufs";
  EXPECT_STREQ(real, "/usr/sbin/mount.aufs");
  r = run({"/usr/sbin/aufs-fuse", "--version"});
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_TRUE(r.out.starts_with("aufs-fuse " + std::string(std::getenv("AUFS_VERSION") ?: "")))
      << r;
  EXPECT_TRUE(run({"man", "-w", "aufs-fuse"}).ok()) << "man cannot find aufs-fuse(8)";

  // The README walk-through through the installed helper.
  ASSERT_TRUE(make_walkthrough_layers(root()));
  std::string lower_before = snapshot(p("image-layer1")) + snapshot(p("image-layer2"));
  {
    SysMountGuard guard(m());
    r = run({"mount", "-t", "aufs", "-o",
             "dirs=./container-layer:./image-layer1:./image-layer2:./image-layer3", "none",
             "./mnt"},
            root());
    ASSERT_TRUE(r.ok()) << r;
    auto me = mount_entry(m());
    ASSERT_TRUE(me.has_value()) << "not mounted";
    EXPECT_EQ(me->fstype, "fuse.aufs");
    EXPECT_EQ(me->source, "none");
    auto pids = daemon_pids_for(m());
    ASSERT_EQ(pids.size(), 1u);
    EXPECT_EQ(readlink_of("/proc/" + std::to_string(pids[0]) + "/exe"), "/usr/sbin/aufs-fuse")
        << "the mount is not served by the installed daemon";
    EXPECT_EQ(list_tree(m()), walkthrough_tree());
    walkthrough_changes(root());
    if (HasFatalFailure()) return;
    r = run({"umount", "./mnt"}, root());
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_FALSE(in_proc_mounts(m()));
    EXPECT_TRUE(wait_daemons_gone(m(), 5000)) << "daemon still running after umount";
  }
  EXPECT_EQ(snapshot(p("image-layer1")) + snapshot(p("image-layer2")), lower_before);

  // Purge: every path the package brought is gone, what was there stays.
  r = run({"dpkg", "--purge", kPkg}, "", 180000);
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_FALSE(pkg_installed());
  for (auto& f : files) {
    if (f == "/.") continue;
    auto it = existed.find(f);
    bool before = it != existed.end() && it->second;
    EXPECT_EQ(exists(f), before) << f << (before ? " was removed" : " was left behind");
  }
}

}  // namespace
}  // namespace aufs::mt
