// SPDX-License-Identifier: GPL-2.0-or-later
// The pause control request (user.aufs.pause / user.aufs.release): every
// modification waits while writes are held, namespace operations, setattr
// with its copy-up and writes through files opened before; reads go on;
// release or the timeout lets them finish.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "mount_fixture.hpp"
#include "tools_support.hpp"

namespace aufs::mt {
namespace {

using Clock = std::chrono::steady_clock;

class Pause : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw"));
    mkdirs(p("l1"));
    ASSERT_TRUE(write_file(p("l1/lower.txt"), "lower\n"));
    ASSERT_TRUE(write_file(p("rw/open.txt"), "a"));
    // Held creates lock their directory in the kernel (a lookup there waits
    // too): they go to sub/, the reads to the root.
    mkdirs(p("rw/sub"));
    // Threads enough for the held writers and the release. Without
    // passthrough: a writer with a backing file writes past the daemon
    // (PassthroughWriterRefusesThePause).
    ASSERT_TRUE(mount("rw:l1=ro+wh", "threads=8,passthrough=none"));
    if (ctl_info(m())["fuse"]["io_uring"].value("active", false))
      GTEST_SKIP() << "served through io_uring, where pauses are refused (IoUring.PauseIsRefused)";
    open_ctl();
  }
  void open_ctl() {
    // Requests go through an O_PATH descriptor, as aufs-fuse-image does: a
    // create held in the root keeps the root's lock, so looking the control
    // file up again would wait for the pause's end.
    ctl_ = ::open(m(".wh..wh.aufs-fuse").c_str(), O_PATH | O_CLOEXEC);
    ASSERT_GE(ctl_, 0);
  }
  void TearDown() override {
    close_ctl();
    MountTest::TearDown();
  }
  // Before unmounting: the descriptor keeps the mount busy.
  void close_ctl() {
    if (ctl_ >= 0) ::close(ctl_);
    ctl_ = -1;
  }
  int request(const char* key, const std::string& value) {
    std::string ctl = "/proc/self/fd/" + std::to_string(ctl_);
    return ::setxattr(ctl.c_str(), key, value.data(), value.size(), 0) == 0 ? 0 : errno;
  }
  int ctl_ = -1;
};

TEST_F(Pause, WritesWaitWhilePausedAndFinishAfterRelease) {
  int fd = ::open(m("open.txt").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(request("user.aufs.pause", "30"), 0);
  EXPECT_EQ(request("user.aufs.pause", "30"), EBUSY) << "a second pause while paused";

  std::atomic<int> done{0};
  std::vector<std::thread> writers;
  writers.emplace_back([&] { EXPECT_TRUE(write_file(m("sub/new.txt"), "new\n")); done++; });
  writers.emplace_back([&] { EXPECT_EQ(::chmod(m("lower.txt").c_str(), 0600), 0); done++; });
  writers.emplace_back([&] { EXPECT_EQ(::write(fd, "b", 1), 1); done++; });
  writers.emplace_back([&] { EXPECT_EQ(::mkdir(m("sub/dir").c_str(), 0755), 0); done++; });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(done.load(), 0) << "a write went through while paused";
  // The rw branch is as it was, and the union can still be read.
  EXPECT_FALSE(exists(p("rw/sub/new.txt")));
  EXPECT_FALSE(exists(p("rw/lower.txt")));
  EXPECT_FALSE(exists(p("rw/sub/dir")));
  EXPECT_EQ(read_file(p("rw/open.txt")), "a");
  EXPECT_EQ(read_file(m("lower.txt")), "lower\n");

  EXPECT_EQ(request("user.aufs.release", ""), 0);  // (else the timeout lets them go)
  for (auto& t : writers) t.join();
  ::close(fd);
  EXPECT_EQ(done.load(), 4);
  EXPECT_EQ(read_file(p("rw/sub/new.txt")), "new\n");
  EXPECT_EQ(read_file(p("rw/open.txt")), "ab");
  struct stat st;
  ASSERT_EQ(::stat(p("rw/lower.txt").c_str(), &st), 0) << "chmod did not copy up";
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_TRUE(exists(p("rw/sub/dir")));
  EXPECT_EQ(request("user.aufs.release", ""), ENOENT) << "nothing is held any more";
  close_ctl();
  unmount();
}

// A file open for writing through FUSE passthrough writes straight to the
// branch: the pause cannot hold it, so it is refused while one is open.
TEST_F(Pause, PassthroughWriterRefusesThePause) {
  close_ctl();
  unmount();
  ASSERT_TRUE(mount("rw:l1=ro+wh", "threads=8"));
  open_ctl();
  Json info = ctl_info(m());
  if (!info["fuse"]["passthrough"].value("active", false)) {
    close_ctl();
    unmount();
    GTEST_SKIP() << "passthrough is not active here: "
                 << info["fuse"]["passthrough"].value("why", std::string("?"));
  }
  int fd = ::open(m("open.txt").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(request("user.aufs.pause", "5"), ETXTBSY);
  EXPECT_EQ(::write(fd, "b", 1), 1) << "nothing is held after the refusal";
  ::close(fd);
  // Readers through passthrough do not count.
  int rfd = ::open(m("open.txt").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(rfd, 0);
  EXPECT_EQ(request("user.aufs.pause", "5"), 0);
  EXPECT_EQ(request("user.aufs.release", ""), 0);
  ::close(rfd);
  EXPECT_EQ(read_file(p("rw/open.txt")), "ab");
  close_ctl();
  unmount();
}

TEST_F(Pause, TheTimeoutReleases) {
  auto start = Clock::now();
  ASSERT_EQ(request("user.aufs.pause", "1"), 0);
  EXPECT_TRUE(write_file(m("late.txt"), "late\n"));
  auto waited = Clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(900)) << "the write did not wait for the pause";
  EXPECT_LT(waited, std::chrono::seconds(5));
  EXPECT_EQ(read_file(p("rw/late.txt")), "late\n");
  EXPECT_EQ(request("user.aufs.release", ""), ENOENT) << "the pause had run out";
  // Malformed timeouts.
  EXPECT_EQ(request("user.aufs.pause", "0"), EINVAL);
  EXPECT_EQ(request("user.aufs.pause", "abc"), EINVAL);
  EXPECT_EQ(request("user.aufs.pause", "3601"), EINVAL);
  close_ctl();
  unmount();
}

}  // namespace
}  // namespace aufs::mt
