// SPDX-License-Identifier: GPL-2.0-or-later
// Every tool answers --version (and -V) with one line naming the release
// of meson.build and, in a git checkout, the revision it was built from.
#include <algorithm>
#include <cstdlib>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

std::string env(const char* k) {
  const char* v = std::getenv(k);
  return v ? v : "";
}

TEST(Version, EveryToolNamesReleaseAndRevision) {
  std::string release = env("AUFS_VERSION"), src = env("AUFS_SOURCE_DIR");
  if (release.empty() || src.empty()) GTEST_SKIP() << "AUFS_VERSION/AUFS_SOURCE_DIR not set";
  std::string expect = release;
  if (exists(src + "/.git")) {
    auto rev = run({"git", "-C", src, "describe", "--always", "--abbrev=12", "--dirty=+"});
    ASSERT_TRUE(rev.ok()) << rev;
    expect += " (git " + rev.out.substr(0, rev.out.find('\n')) + ")";
  }
  struct Tool {
    const char* name;
    std::string bin;
    std::string tail;  // after the version
  };
  std::vector<Tool> tools = {
      {"aufs-fuse", daemon_binary(), ", libfuse "},
      {"aufsctl", tool_binary("AUFSCTL_BIN", "aufsctl"), "\n"},
      {"aufs-fuse-check", tool_binary("AUFS_FUSE_CHECK_BIN", "aufs-fuse-check"), "\n"},
      {"mount.aufs", tool_binary("AUFS_MOUNT_HELPER_BIN", "mount.aufs"), "\n"}};
  // aufs-fuse-image is built only with its libraries.
  if (const char* img = std::getenv("AUFS_FUSE_IMAGE_BIN"); img && *img)
    tools.push_back({"aufs-fuse-image", img, "\n"});
  for (const Tool& t : tools) {
    for (const char* flag : {"--version", "-V"}) {
      SCOPED_TRACE(std::string(t.name) + " " + flag);
      auto r = run({t.bin, flag});
      EXPECT_EQ(r.exit_code, 0) << r;
      EXPECT_EQ(r.err, "") << r;
      EXPECT_TRUE(r.out.starts_with(std::string(t.name) + " " + expect + t.tail)) << r.out;
      EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    }
  }
}

}  // namespace
}  // namespace aufs::mt
