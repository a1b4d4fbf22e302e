// SPDX-License-Identifier: GPL-2.0-or-later
// Without root: an ordinary user (nobody, uid 65534) mounts a union of
// directories it owns through fusermount3 (the daemon started as that user
// with setpriv), uses it, and unmounts with `fusermount3 -u`. Files land in
// the rw branch owned by that user; the lower branch is unchanged; other
// users (root included) cannot enter the mount, since it has no allow_other.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "container_support.hpp"

namespace aufs::ct {
namespace {

using namespace aufs::mt;
using Clock = std::chrono::steady_clock;

constexpr uid_t kUser = 65534;
constexpr gid_t kGroup = 65534;

class Rootless : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to prepare the user's directories";
    auto fm = which("fusermount3");
    if (!fm) GTEST_SKIP() << "fusermount3 not installed (Debian package fuse3)";
    auto st = stat_of(*fm);
    if (!st || !(st->st_mode & S_ISUID) || st->st_uid != 0)
      GTEST_SKIP() << *fm << " is not set-user-ID root";
    if (!which("setpriv")) GTEST_SKIP() << "setpriv not installed (util-linux)";
    std::string r = root();
    if (errno_as(kUser, kGroup, [&] { return ::access(r.c_str(), X_OK) < 0 ? errno : 0; }) != 0)
      GTEST_SKIP() << "user " << kUser << " cannot reach " << r;
    // libfuse opens /dev/fuse itself and uses fusermount3 only when mount(2)
    // is refused; Debian's udev rules make /dev/fuse 0666 for that. Where
    // the device node is 0600 (some containers and VMs), make it what a
    // stock Debian system has for the test's duration.
    if (errno_as(kUser, kGroup, [] {
          int fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
          if (fd < 0) return errno;
          ::close(fd);
          return 0;
        }) != 0) {
      auto dev = stat_of("/dev/fuse");
      ASSERT_TRUE(dev.has_value());
      ASSERT_EQ(::chmod("/dev/fuse", 0666), 0) << errname(errno);
      fuse_mode_ = dev->st_mode & 07777;
      std::fprintf(stderr, "note: /dev/fuse was mode %04o; 0666 (Debian's udev default) during "
                   "this test\n", static_cast<unsigned>(*fuse_mode_));
    }
    home_ = p("home");
    for (const char* d : {"", "/rw", "/lower", "/lower/dir", "/mnt"}) {
      mkdirs(home_ + d, 0755);
      ASSERT_EQ(::chown((home_ + d).c_str(), kUser, kGroup), 0);
    }
    ASSERT_TRUE(write_file(home_ + "/lower/base", "base\n"));
    ASSERT_TRUE(write_file(home_ + "/lower/dir/f", "f\n"));
    ASSERT_TRUE(write_file(home_ + "/lower/dir/g", "g\n"));
    for (const char* f : {"/lower/base", "/lower/dir/f", "/lower/dir/g"})
      ASSERT_EQ(::chown((home_ + f).c_str(), kUser, kGroup), 0);
    lower_before_ = snapshot(home_ + "/lower");
  }

  void TearDown() override {
    // Defensive: never leave the user's mount or daemon behind.
    if (!home_.empty() && in_proc_mounts(home_ + "/mnt")) {
      ADD_FAILURE() << "user mount left behind on " << home_ << "/mnt";
      run({"fusermount3", "-u", "-z", home_ + "/mnt"});
      if (in_proc_mounts(home_ + "/mnt")) run({"umount", "-l", home_ + "/mnt"});
    }
    if (pid_ > 0) {
      if (!wait_exit(5000)) {
        ADD_FAILURE() << "user daemon " << pid_ << " still running; killing it";
        ::kill(pid_, SIGKILL);  // the daemon this test started, nothing else
        wait_exit(5000);
      }
    }
    if (fuse_mode_) ::chmod("/dev/fuse", *fuse_mode_);
    if (!home_.empty() && !IsSkipped()) {
      EXPECT_EQ(snapshot(home_ + "/lower"), lower_before_) << "lower branch modified";
    }
    MountTest::TearDown();
  }

  // Starts `aufs-fuse -f` as the user through setpriv; the mount goes
  // through fusermount3 (set-user-ID root), as for any unprivileged user.
  ::testing::AssertionResult start_as_user(const std::string& opts) {
    std::string log = p("user-daemon.log");
    int logfd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (logfd < 0) return ::testing::AssertionFailure() << "open log";
    std::vector<std::string> argv = {"setpriv",
                                     "--reuid=" + std::to_string(kUser),
                                     "--regid=" + std::to_string(kGroup),
                                     "--clear-groups",
                                     "--",
                                     daemon_binary(),
                                     "-f",
                                     "-o",
                                     opts,
                                     home_ + "/mnt"};
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) _exit(125);
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
      ::dup2(logfd, 1);
      ::dup2(logfd, 2);
      if (::chdir(home_.c_str()) < 0) _exit(126);
      ::close_range(3, ~0U, 0);
      ::execvp(cargv[0], cargv.data());
      _exit(127);
    }
    ::close(logfd);
    if (pid < 0) return ::testing::AssertionFailure() << "fork";
    pid_ = pid;
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      // Root cannot stat a mount without allow_other: use the mount table.
      if (in_proc_mounts(home_ + "/mnt")) return ::testing::AssertionSuccess();
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return ::testing::AssertionFailure() << "daemon exited before mounting:\n" << read_file(log);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return ::testing::AssertionFailure() << "no mount within 10 s:\n" << read_file(log);
  }

  // Waits for the user daemon; status_ gets its wait status.
  bool wait_exit(int ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      pid_t w = ::waitpid(pid_, &status_, WNOHANG);
      if (w == pid_ || (w < 0 && errno == ECHILD)) {
        pid_ = -1;
        return true;
      }
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  std::string home_, lower_before_;
  std::optional<mode_t> fuse_mode_;
  pid_t pid_ = -1;
  int status_ = 0;
};

TEST_F(Rootless, UserMountsUsesAndUnmountsThroughFusermount3) {
  ASSERT_TRUE(start_as_user("br=" + home_ + "/rw=rw:" + home_ + "/lower=ro+wh"));
  auto e = mount_entry(home_ + "/mnt");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->fstype, "fuse.aufs");
  EXPECT_TRUE(e->has_opt("user_id=" + std::to_string(kUser))) << e->super_opts;
  EXPECT_TRUE(e->has_opt("nosuid"));
  EXPECT_TRUE(e->has_opt("nodev"));
  EXPECT_FALSE(e->has_opt("allow_other"));

  auto r = sh_as(kUser, kGroup,
                 "set -e\n"
                 "cd mnt\n"
                 "ls\n"
                 "echo new > new\n"
                 "echo more >> base\n"
                 "rm dir/f\n"
                 "mv dir/g dir/g2\n"
                 "mkdir made\n"
                 "echo inside > made/file\n"
                 "ln -s base base.link\n"
                 "ls . dir\n"
                 "cat base base.link made/file\n",
                 home_);
  ASSERT_TRUE(r.ok()) << r << read_file(p("user-daemon.log"));
  EXPECT_EQ(r.out,
            "base\ndir\n"
            ".:\nbase\nbase.link\ndir\nmade\nnew\n\ndir:\ng2\n"
            "base\nmore\nbase\nmore\ninside\n");
  // Another user, even root, cannot enter the mount.
  EXPECT_EQ(lstat_errno(home_ + "/mnt/base"), EACCES);

  r = sh_as(kUser, kGroup, "fusermount3 -u mnt", home_);
  EXPECT_TRUE(r.ok()) << r;
  ASSERT_TRUE(wait_exit(10000)) << "daemon did not exit after fusermount3 -u";
  EXPECT_TRUE(WIFEXITED(status_) && WEXITSTATUS(status_) == 0) << "wait status " << status_;
  EXPECT_FALSE(in_proc_mounts(home_ + "/mnt"));
  EXPECT_EQ(log_errors(p("user-daemon.log")), std::vector<std::string>{});

  // Everything landed in the rw branch, owned by the user.
  std::string rw = home_ + "/rw";
  EXPECT_EQ(list_tree(rw), (std::vector<std::string>{
                               ".wh..wh.aufs", ".wh..wh.orph", ".wh..wh.plnk", "base",
                               "base.link", "dir", "dir/.wh.f", "dir/.wh.g", "dir/g2", "made",
                               "made/file", "new"}));
  for (auto& name : list_tree(rw)) {
    auto st = lstat_of(rw + "/" + name);
    ASSERT_TRUE(st.has_value()) << name;
    EXPECT_EQ(st->st_uid, kUser) << name;
    EXPECT_EQ(st->st_gid, kGroup) << name;
  }
  EXPECT_EQ(read_file(rw + "/base"), "base\nmore\n");
  EXPECT_EQ(read_file(rw + "/new"), "new\n");
  EXPECT_EQ(read_file(rw + "/dir/g2"), "g\n");
}

}  // namespace
}  // namespace aufs::ct
