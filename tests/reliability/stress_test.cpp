// SPDX-License-Identifier: GPL-2.0-or-later
// stress-ng filesystem stressors against the mount, and lookup/forget
// accounting (the daemon's node count after a big walk and drop_caches).
#include <fstream>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "rel_support.hpp"

namespace aufs::rel {
namespace {

using Clock = std::chrono::steady_clock;

// Filesystem stressors that apply to a FUSE file system. Left out: fiemap
// and inode-flags (FS_IOC_FIEMAP / FS_IOC_GETFLAGS do not exist on FUSE;
// stress-ng skips them), lease (needs a local fs), io/iomix (machine-wide
// sync), bind-mount/binderfs/procfs/verity/fanotify/dnotify/inotify/chattr
// (not about this file system or need features FUSE lacks).
const char* const kStressors[] = {
    "access", "chdir", "chmod", "chown", "copy-file", "dentry", "dir", "dirdeep", "dirmany",
    "fallocate", "fcntl", "file-ioctl", "filename", "flock", "fpunch", "fsize", "fstat",
    "getdent", "handle", "hdd", "link", "lockf", "lockofd", "mknod", "open", "rename",
    "symlink", "sync-file", "touch", "utime", "xattr",
};

class Stress : public RelTest {};

TEST_F(Stress, StressNgFilesystemStressors) {
  auto have = run({"stress-ng", "--version"});
  if (!have.ok()) GTEST_SKIP() << "stress-ng not installed (apt-get install stress-ng)";
  const long secs = env_long("AUFS_STRESS_SECONDS", long_mode() ? 600 : 30);
  mkdirs(p("rw"));
  mkdirs(p("l1/work/sub"));
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(write_file(p("l1/work/f" + std::to_string(i)), std::string(1000 + i, 'x')));
  ASSERT_TRUE(write_file(p("l1/work/sub/deep"), "lower\n"));
  auto before = digest_tree(p("l1"));
  // The daemon's own cache timeouts (the default udba), as in real use.
  OwnDaemon* d = start_own("rw:l1=ro+wh", "threads=4", false);
  ASSERT_NE(d, nullptr);
  pid_t pid = d->pid();

  std::vector<std::string> argv = {"stress-ng", "--temp-path", m("work"), "--timeout",
                                   std::to_string(secs) + "s", "--metrics-brief", "--verify"};
  for (auto s : kStressors) {
    argv.push_back(std::string("--") + s);
    argv.push_back(long_mode() ? "2" : "1");
  }
  argv.push_back("--hdd-bytes");
  argv.push_back("16M");
  auto t0 = Clock::now();
  auto r = run(argv, root(), static_cast<int>((secs + 180) * 1000));
  double took = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(r.exit_code, 0) << "stress-ng failed: " << r;
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.err.find("successful run completed"), std::string::npos) << r.err;
  // Failures stress-ng reports per stressor ("fail:" lines, "failed" counts).
  std::istringstream in(r.err + r.out);
  std::string line;
  long bogo = 0;
  std::ostringstream per;
  bool misc = false;
  while (std::getline(in, line)) {
    EXPECT_EQ(line.find("fail:"), std::string::npos) << line;
    EXPECT_EQ(line.find("verify failure"), std::string::npos) << line;
    if (line.find("miscellaneous metrics") != std::string::npos) misc = true;
    auto pos = line.find("] ");
    if (misc || line.find("metrc:") == std::string::npos || pos == std::string::npos) continue;
    std::istringstream ls(line.substr(pos + 2));
    std::string name;
    long ops = -1;
    ls >> name >> ops;
    for (auto s : kStressors)
      if (name == s && ops >= 0) {
        bogo += ops;
        per << " " << name << "=" << ops;
      }
  }
  // The same daemon still serves the mount.
  EXPECT_TRUE(d->alive()) << "daemon died during stress-ng";
  EXPECT_EQ(d->pid(), pid);
  EXPECT_TRUE(in_proc_mounts(m()));
  EXPECT_EQ(lstat_errno(m("work/sub/deep")), 0);
  EXPECT_EQ(read_file(m("work/f3")), std::string(1003, 'x'));
  auto info = mount_info(m());
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->open_files, 0) << info->json;
  report("stress-ng", "stress-ng: " + std::to_string(std::size(kStressors)) + " stressors for " +
                          std::to_string(secs) + " s (took " + std::to_string(took) + " s), " +
                          std::to_string(bogo) + " bogo ops:" + per.str());
  auto rm = run({"rm", "-rf", m("work")}, "", 300000);
  EXPECT_TRUE(rm.ok()) << rm;
  EXPECT_EQ(list_dir(m()), std::vector<std::string>{});
  stop_own(d);
  auto chk = run_checker({p("rw")});
  EXPECT_EQ(chk.run.exit_code, 0) << chk.run;
  EXPECT_EQ(chk.issues, 0) << chk.run.out;
  auto l1_now = digest_tree(p("l1"));
  EXPECT_TRUE(l1_now == before) << "lower branch modified:\n" << digest_diff(before, l1_now);
}

// ---------------------------------------------------------------- forget

class Forget : public RelTest {};

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

bool drop_caches() {
  ::sync();
  int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, "2", 1) == 1;
  ::close(fd);
  return ok;
}

TEST_F(Forget, NodeCountReturnsNearZeroAfterWalkAndDropCaches) {
  {
    int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd < 0) GTEST_SKIP() << "/proc/sys/vm/drop_caches not writable: " << errname(errno);
    ::close(fd);
  }
  const int ndirs = long_mode() ? 200 : 40, per_dir = long_mode() ? 250 : 100;
  mkdirs(p("rw/top"));
  for (int d = 0; d < ndirs; ++d) {
    std::string dir = "d" + std::to_string(d);
    mkdirs(p("l1/top/" + dir + "/sub"));
    for (int f = 0; f < per_dir; ++f) {
      int fd = ::open(p("l1/top/" + dir + "/f" + std::to_string(f)).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      ASSERT_GE(fd, 0);
      ::close(fd);
    }
    ASSERT_TRUE(write_file(p("l1/top/" + dir + "/sub/x"), "x"));
    if (d % 4 == 0) {
      ASSERT_TRUE(write_file(p("rw/top/r" + std::to_string(d)), "upper"));
    }
  }
  const long total = ndirs * (per_dir + 3) + ndirs / 4 + 1;
  OwnDaemon* d = start_own("rw:l1=ro+wh", "threads=4", false);
  ASSERT_NE(d, nullptr);
  const long rss_mounted = rss_kib(d->pid());
  const int rounds = long_mode() ? 5 : 2;
  std::ostringstream os;
  for (int round = 0; round < rounds; ++round) {
    long seen = 0;
    Walker w;
    w.visit = [&](int, const std::string&, const std::string&, const struct stat&, int) { ++seen; };
    walk(m(), w);
    EXPECT_EQ(seen, total);
    // Some files opened and closed, some copied up.
    for (int i = 0; i < 20; ++i) EXPECT_EQ(read_file(m("top/d" + std::to_string(i) + "/sub/x")), "x");
    if (round == 0) {
      for (int i = 0; i < 10; ++i) ASSERT_EQ(::chmod(m("top/d" + std::to_string(i) + "/f1").c_str(), 0600), 0);
    }
    // The kernel sends RELEASE after close(2) has returned: the last
    // read's may still be on its way.
    auto full = mount_info(m());
    ASSERT_TRUE(full.has_value());
    for (auto until = Clock::now() + std::chrono::seconds(5); full->open_files != 0 && Clock::now() < until;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      full = mount_info(m());
      ASSERT_TRUE(full.has_value());
    }
    const long rss_walked = rss_kib(d->pid());
    EXPECT_GE(full->inodes, total * 9 / 10) << "the walk should hold (almost) every node: " << full->json;
    EXPECT_EQ(full->open_files, 0);
    ASSERT_TRUE(drop_caches());
    const long limit = total * 3 / 100 + 16;
    long now = -1;
    auto deadline = Clock::now() + std::chrono::seconds(5);
    for (;;) {
      auto i = mount_info(m());
      ASSERT_TRUE(i.has_value());
      now = i->inodes;
      if (now <= limit || Clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      drop_caches();
    }
    EXPECT_LE(now, limit) << "nodes still cached after drop_caches (walked " << total << ")";
    // The memory goes back too, not only the nodes (malloc_trim after the
    // wave): much of what the walk added is returned. Only the long walk
    // (50,000 entries) is large enough for the nodes to dominate RSS.
    const long rss_after = rss_kib(d->pid());
    os << (round ? "; " : "") << "round " << round << ": " << full->inodes << " nodes after walking "
       << total << " entries, " << now << " after drop_caches; RSS " << rss_mounted << " kB mounted, "
       << rss_walked << " kB walked, " << rss_after << " kB after";
    if (long_mode()) {
      // Without the trim nothing came back; with it 40-60% (fragmentation).
      EXPECT_LE(rss_after - rss_mounted, (rss_walked - rss_mounted) * 3 / 4) << os.str();
    }
  }
  report("forget", "lookup/forget: " + os.str());
  stop_own(d);
}

}  // namespace
}  // namespace aufs::rel
