// SPDX-License-Identifier: GPL-2.0-or-later
// Branch-path primitives on real directories.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "aufs_fuse/sys.hpp"
#include "support/tempdir.hpp"

using namespace aufs;
using namespace aufs::test;

namespace {

// "dd/dd/..." `depth` levels below `root`; returns fds of every level.
std::vector<int> make_chain(int root, int depth) {
  std::vector<int> fds{::dup(root)};
  for (int i = 0; i < depth; ++i) {
    ::mkdirat(fds.back(), "dd", 0755);
    fds.push_back(::openat(fds.back(), "dd", O_PATH | O_DIRECTORY | O_CLOEXEC));
  }
  return fds;
}

void remove_chain(std::vector<int>& fds) {
  for (size_t i = fds.size() - 1; i > 0; --i) {
    ::close(fds[i]);
    ::unlinkat(fds[i - 1], "dd", AT_REMOVEDIR);
  }
  ::close(fds[0]);
}

TEST(Sys, OpenBeneathWalksPathsLongerThanPathMax) {
  TempDir t;
  int root = ::open(t.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(root, 0);
  const int depth = 1600;  // 4,800 bytes: over PATH_MAX
  auto fds = make_chain(root, depth);
  std::string rel;
  for (int i = 0; i < depth; ++i) rel += (i ? "/dd" : "dd");
  ASSERT_GT(rel.size(), static_cast<size_t>(PATH_MAX));
  auto fd = sys::open_beneath(root, rel, O_PATH | O_DIRECTORY);
  ASSERT_TRUE(fd.ok()) << strerror(fd.err());
  struct stat a, b;
  ASSERT_EQ(::fstat(fd->get(), &a), 0);
  ASSERT_EQ(::fstat(fds.back(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  // Creating at the bottom works too.
  auto f = sys::open_beneath(root, rel + "/file", O_CREAT | O_WRONLY | O_EXCL, 0644);
  ASSERT_TRUE(f.ok()) << strerror(f.err());
  EXPECT_TRUE(sys::exists_at(fds.back(), "file").value());
  ::unlinkat(fds.back(), "file", 0);
  // A ".." run in a later piece still cannot leave the root.
  std::string up = rel;
  for (int i = 0; i < depth + 1; ++i) up += "/..";
  auto esc = sys::open_beneath(root, up, O_PATH | O_DIRECTORY);
  EXPECT_FALSE(esc.ok());
  remove_chain(fds);
  ::close(root);
}

}  // namespace
