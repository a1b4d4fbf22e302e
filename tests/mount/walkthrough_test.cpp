// SPDX-License-Identifier: GPL-2.0-or-later
// The classic AUFS walk-through: a container layer (rw) over three image
// layers, then append / rm / create through the union.
#include <sys/stat.h>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

class Walkthrough : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_TRUE(make_walkthrough_layers(root()));
    // The expected merged view, as a plain directory, for tree(1) output.
    mkdirs(p("expected"));
    ASSERT_TRUE(sh("cp -a image-layer3/. image-layer2/. image-layer1/. container-layer/. expected/",
                   root())
                    .ok());
    for (int n = 1; n <= 3; ++n) before_[n] = snapshot(p("image-layer" + std::to_string(n)));
  }

  std::string before_[4];
};

TEST_F(Walkthrough, MergeAppendRemoveCreate) {
  // As in the walk-through: relative branch paths, dirs= alias, default
  // permissions (first rw, the rest ro).
  ASSERT_TRUE(mount_args({"-f", "-o",
                          "dirs=./container-layer:./image-layer1:./image-layer2:./image-layer3,"
                          "entry_timeout=0,attr_timeout=0,negative_timeout=0",
                          "./mnt"}));

  // Merged listing equals the reference tree.
  auto tree_mnt = sh("tree -n .", m());
  auto tree_exp = sh("tree -n .", p("expected"));
  ASSERT_TRUE(tree_mnt.ok()) << tree_mnt;
  ASSERT_TRUE(tree_exp.ok()) << tree_exp;
  EXPECT_EQ(tree_mnt.out, tree_exp.out);
  EXPECT_EQ(list_tree(m()), walkthrough_tree());
  for (int n = 1; n <= 3; ++n) {
    std::string ns = std::to_string(n);
    EXPECT_EQ(read_file(m("image-layer" + ns + ".txt")), "I am image layer " + ns + "\n");
    EXPECT_EQ(read_file(m("subdir" + ns + "/subdir" + ns + ".txt")), "subdir " + ns + "\n");
  }
  EXPECT_EQ(read_file(m("container-layer.txt")), "I am container layer\n");
  // Nothing was copied up by reading.
  EXPECT_FALSE(exists(p("container-layer/image-layer1.txt")));

  // Append to a lower file: copied up, lower untouched.
  auto r = sh("echo more >> mnt/image-layer1.txt", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(read_file(p("container-layer/image-layer1.txt")), "I am image layer 1\nmore\n");
  EXPECT_EQ(read_file(p("image-layer1/image-layer1.txt")), "I am image layer 1\n");
  EXPECT_EQ(read_file(m("image-layer1.txt")), "I am image layer 1\nmore\n");

  // Remove a lower file: whiteout in the container layer.
  r = sh("rm mnt/image-layer2.txt", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(lstat_errno(m("image-layer2.txt")), ENOENT);
  auto names = list_dir(m());
  EXPECT_EQ(std::count(names.begin(), names.end(), "image-layer2.txt"), 0);
  EXPECT_EQ(read_file(p("image-layer2/image-layer2.txt")), "I am image layer 2\n");
  auto wh = lstat_of(p("container-layer/.wh.image-layer2.txt"));
  auto base = lstat_of(p("container-layer/.wh..wh.aufs"));
  ASSERT_TRUE(wh.has_value());
  ASSERT_TRUE(base.has_value());
  EXPECT_TRUE(S_ISREG(wh->st_mode));
  EXPECT_EQ(wh->st_size, 0);
  EXPECT_EQ(wh->st_ino, base->st_ino) << "whiteout is not a hard link to .wh..wh.aufs";
  EXPECT_EQ(wh->st_dev, base->st_dev);
  EXPECT_GE(wh->st_nlink, 2u);
  EXPECT_EQ(base->st_mode & 07777, 0444u);

  // Create a new file: lands in the container layer only.
  r = sh("echo container-01 > mnt/container-test.txt", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(read_file(p("container-layer/container-test.txt")), "container-01\n");
  EXPECT_EQ(read_file(m("container-test.txt")), "container-01\n");
  for (int n = 1; n <= 3; ++n)
    EXPECT_FALSE(exists(p("image-layer" + std::to_string(n) + "/container-test.txt")));

  EXPECT_EQ(list_dir(m()),
            (std::vector<std::string>{"container-layer.txt", "container-test.txt",
                                      "image-layer1.txt", "image-layer3.txt", "subdir1", "subdir2",
                                      "subdir3"}));

  unmount();
  EXPECT_FALSE(in_proc_mounts(m()));
  EXPECT_EQ(list_dir(p("container-layer")),
            (std::vector<std::string>{".wh..wh.aufs", ".wh..wh.orph", ".wh..wh.plnk",
                                      ".wh.image-layer2.txt", "container-layer.txt",
                                      "container-test.txt", "image-layer1.txt"}));
  EXPECT_TRUE(list_dir(p("container-layer/.wh..wh.orph")).empty());
  EXPECT_TRUE(list_dir(p("container-layer/.wh..wh.plnk")).empty());
  for (int n = 1; n <= 3; ++n)
    EXPECT_EQ(snapshot(p("image-layer" + std::to_string(n))), before_[n])
        << "image-layer" << n << " was modified";
}

}  // namespace
}  // namespace aufs::mt
