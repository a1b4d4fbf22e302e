// SPDX-License-Identifier: GPL-2.0-or-later
// Two unions over the same lower branch, each with its own rw branch.
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

TEST_F(MountTest, TwoMountsShareLowerBranchesIndependently) {
  mkdirs(p("rw1"));
  mkdirs(p("rw2"));
  mkdirs(p("lower/dir"));
  mkdirs(p("mnt2"));
  write_file(p("lower/shared"), "shared\n");
  write_file(p("lower/gone"), "gone\n");
  write_file(p("lower/dir/f"), "f\n");
  std::string before = snapshot(p("lower"));
  ASSERT_TRUE(mount("rw1:lower=ro+wh", "", "mnt"));
  ASSERT_TRUE(mount("rw2:lower=ro+wh", "", "mnt2"));
  auto m2 = [&](const std::string& rel) { return p("mnt2/" + rel); };

  // Changes through the first mount.
  ASSERT_TRUE(write_file(m("new1"), "new1\n"));
  ASSERT_TRUE(append_file(m("shared"), "from 1\n"));
  ASSERT_SYS_OK(::unlink(m("gone").c_str()));
  ASSERT_SYS_OK(::mkdir(m("dir/sub1").c_str(), 0755));
  // ... are not seen through the second.
  EXPECT_EQ(lstat_errno(m2("new1")), ENOENT);
  EXPECT_EQ(read_file(m2("shared")), "shared\n");
  EXPECT_EQ(read_file(m2("gone")), "gone\n");
  EXPECT_EQ(list_dir(m2("dir")), (std::vector<std::string>{"f"}));

  // Changes through the second mount.
  ASSERT_TRUE(write_file(m2("new2"), "new2\n"));
  ASSERT_TRUE(append_file(m2("shared"), "from 2\n"));
  EXPECT_EQ(lstat_errno(m("new2")), ENOENT);
  EXPECT_EQ(read_file(m("shared")), "shared\nfrom 1\n");
  EXPECT_EQ(read_file(m2("shared")), "shared\nfrom 2\n");

  EXPECT_EQ(list_dir(m()), (std::vector<std::string>{"dir", "new1", "shared"}));
  EXPECT_EQ(list_dir(p("mnt2")), (std::vector<std::string>{"dir", "gone", "new2", "shared"}));
  EXPECT_EQ(read_file(p("rw1/shared")), "shared\nfrom 1\n");
  EXPECT_EQ(read_file(p("rw2/shared")), "shared\nfrom 2\n");
  EXPECT_TRUE(exists(p("rw1/.wh.gone")));
  EXPECT_FALSE(exists(p("rw2/.wh.gone")));

  // Concurrent writers, one per mount.
  auto writer = [&](const std::string& dir) {
    for (int i = 0; i < 50; ++i) write_file(dir + "/w" + std::to_string(i), std::to_string(i));
  };
  std::thread t1(writer, m());
  std::thread t2(writer, p("mnt2"));
  t1.join();
  t2.join();
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(read_file(p("rw1/w" + std::to_string(i))), std::to_string(i));
    EXPECT_EQ(read_file(p("rw2/w" + std::to_string(i))), std::to_string(i));
  }
  unmount("mnt2");
  EXPECT_EQ(read_file(m("shared")), "shared\nfrom 1\n") << "first mount survives the second";
  unmount("mnt");
  EXPECT_EQ(snapshot(p("lower")), before);
}

}  // namespace
}  // namespace aufs::mt
