// SPDX-License-Identifier: GPL-2.0-or-later
// The fixture of the aufs-fuse-image tests: an OCI layout built with
// Debian's umoci (img:l1, img:v2), the tool run in the test's directory,
// and no mount left behind.
#pragma once
#include <string>
#include <vector>

#include "container_support.hpp"

namespace aufs::ct {

using namespace aufs::mt;

// Commands a container test cannot go on without, run in its directory.
class CommandTest : public MountTest {
 protected:
  void must(const std::vector<std::string>& argv) {
    auto r = run(argv, root(), 120000);
    ASSERT_TRUE(r.ok()) << r;
  }
  void must_sh(const std::string& cmd) {
    auto r = sh(cmd, root(), 120000);
    ASSERT_TRUE(r.ok()) << cmd << "\n" << r;
  }
};

class ImageTool : public CommandTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (layers hold files of other owners)";
    if (image_tool().empty() || ::access(image_tool().c_str(), X_OK) != 0)
      GTEST_SKIP() << "aufs-fuse-image not built (needs libarchive-dev, libssl-dev, "
                      "nlohmann-json3-dev); AUFS_FUSE_IMAGE_BIN unset";
    if (!which("umoci")) GTEST_SKIP() << "umoci not installed (Debian package umoci)";
    if (!which("busybox")) GTEST_SKIP() << "busybox not installed (Debian package busybox-static)";
  }
  void TearDown() override {
    // Mounts made by the tool are daemonized: unmount any left below root.
    if (!root().empty()) {
      for (auto& e : mounts_under(root())) {
        ADD_FAILURE() << "mount left behind on " << e.mount_point;
        SysMountGuard g(e.mount_point);
      }
    }
    MountTest::TearDown();
  }


  // img:l1 = busybox root; img:v2 = l1 + a layer with a deletion, a new
  // directory, a hard link and a symlink.
  void build_image() {
    must({"umoci", "init", "--layout", "img"});
    must({"umoci", "new", "--image", "img:base"});
    must({"umoci", "unpack", "--image", "img:base", "bundle"});
    ASSERT_EQ(make_busybox_root(p("bundle/rootfs")), "");
    must({"umoci", "repack", "--refresh-bundle", "--image", "img:l1", "bundle"});
    must_sh(R"(set -e; cd bundle/rootfs
rm bin/vi etc/motd
mkdir -p srv/app; echo app > srv/app/conf; ln srv/app/conf srv/app/conf.hard
ln -s app/conf srv/conf.link
echo 'app:x:100:100::/srv/app:/bin/sh' >> etc/passwd
)");
    must({"umoci", "repack", "--refresh-bundle", "--image", "img:v2", "bundle"});
  }

  RunResult tool(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {image_tool()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, root(), 120000);
  }

  void umount_tool_mount(const std::string& mnt) {
    auto r = run({"umount", mnt});
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_TRUE(wait_daemons_gone(mnt, 10000)) << "daemon of " << mnt << " still running";
  }

  std::vector<std::string> store_entries(const std::string& store) {
    return list_dir(store + "/sha256");
  }
};

}  // namespace aufs::ct
