// SPDX-License-Identifier: GPL-2.0-or-later
// Many containers, one image: N daemons share the same read-only image
// branch, each with its own rw branch, and run a write-heavy workload at the
// same time (untar a few thousand small files, append to image files, delete
// and rename image files and directories, churn the untarred tree). No
// container may see another's changes, all must finish, the image must be
// byte-identical afterwards. Each daemon's peak RSS (VmHWM) and open file
// descriptors are sampled while the workloads run and printed.
//
// 16 containers (about 25 s here); AUFS_LONG=1 triples each container's
// untarred tree (9000 files instead of 3000).
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include "container_support.hpp"

namespace aufs::ct {
namespace {

using namespace aufs::mt;
using Clock = std::chrono::steady_clock;

constexpr int kImageDirs = 20;      // data/d00 .. d19
constexpr int kImageFiles = 50;     // f000 .. f049 in each
int payload_dirs() { return long_tests() ? 90 : 30; }  // p00 .. in the tarball
constexpr int kPayloadFiles = 100;  // file000 .. file099 in each
constexpr int kRenamed = 25;        // data/d18/f000 .. f024 renamed

std::string two(int i) {
  char b[8];
  std::snprintf(b, sizeof b, "%02d", i);
  return b;
}
std::string three(int i) {
  char b[8];
  std::snprintf(b, sizeof b, "%03d", i);
  return b;
}

class ManyContainers : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (busybox image with device nodes)";
    if (!which("busybox")) GTEST_SKIP() << "busybox not installed (Debian package busybox-static)";
    if (!which("tar")) GTEST_SKIP() << "tar not installed";
  }
};

std::string image_file_content(int d, int f) {
  return "image file d" + two(d) + "/f" + three(f) + "\n" + std::string(static_cast<size_t>(f * 7 % 300), 'x') + "\n";
}
std::string payload_content(int d, int f) {
  return "payload p" + two(d) + "/file" + three(f) + "\n" + std::string(static_cast<size_t>((d * 31 + f) % 500), 'y') + "\n";
}

// The workload of container i (cwd = its mount point), as a shell script.
std::string workload(int i, const std::string& payload) {
  std::ostringstream s;
  s << "set -e\n"
    << "mkdir work\n"
    << "tar -xf " << q(payload) << " -C work\n"
    // Copy-up: every container appends to the same image files.
    << "for f in data/d00/f*; do echo c" << i << " >> \"$f\"; done\n"
    // Whiteouts: a directory of the image that only this container deletes,
    // and some files of a shared directory.
    << "rm -r data/d" << two(2 + i) << "\n"
    << "rm data/d01/f0" << i % 5 << "*\n"
    // Renames of image files.
    << "for k in $(seq -w 0 " << kRenamed - 1 << "); do mv data/d18/f0$k data/d18/f0$k.c" << i
    << "; done\n"
    // Churn in the new tree: delete half, append to the rest of some dirs,
    // rename directories, rewrite files.
    << "find work -type f -name '*[02468]' -delete\n"
    << "for f in work/p0*/file*; do echo more >> \"$f\"; done\n"
    << "mv work/p00 work/p00-renamed\n"
    << "mv work/p" << payload_dirs() - 1 << " data/d19/moved-in\n"
    << "for f in work/p1*/file*1; do echo rewritten" << i << " > \"$f\"; done\n"
    << "echo container " << i << " > mine-" << i << "\n"
    << "find work data -type f | wc -l\n"
    << "tar -cf - work data | wc -c > /dev/null\n";
  return s.str();
}

TEST_F(ManyContainers, ParallelWriteHeavyWorkloadsStayIsolated) {
  const int n = 16;
  ASSERT_EQ(make_busybox_root(p("image")), "");
  for (int d = 0; d < kImageDirs; ++d) {
    mkdirs(p("image/data/d" + two(d)));
    for (int f = 0; f < kImageFiles; ++f)
      ASSERT_TRUE(write_file(p("image/data/d" + two(d) + "/f" + three(f)), image_file_content(d, f)));
  }
  for (int d = 0; d < payload_dirs(); ++d) {
    mkdirs(p("payload/p" + two(d)));
    for (int f = 0; f < kPayloadFiles; ++f)
      ASSERT_TRUE(write_file(p("payload/p" + two(d) + "/file" + three(f)), payload_content(d, f)));
  }
  auto r = run({"tar", "-cf", p("payload.tar"), "-C", p("payload"), "."});
  ASSERT_TRUE(r.ok()) << r;
  remove_tree(p("payload"));
  const std::string image_before = snapshot(p("image"));

  std::vector<pid_t> pids(static_cast<size_t>(n));
  std::vector<ProcUsage> idle(static_cast<size_t>(n));
  auto t_mount = Clock::now();
  for (int i = 0; i < n; ++i) {
    std::string c = "c" + two(i);
    mkdirs(p(c + "/rw"));
    mkdirs(p(c + "/mnt"));
    ASSERT_TRUE(mount_cached(c + "/rw=rw:image=ro+wh", "", c + "/mnt"));
    auto found = daemon_pids_for(p(c + "/mnt"));
    ASSERT_EQ(found.size(), 1u);
    pids[static_cast<size_t>(i)] = found[0];
    idle[static_cast<size_t>(i)] = proc_usage(found[0]);
  }
  double mount_s = std::chrono::duration<double>(Clock::now() - t_mount).count();

  // Sample every daemon while the workloads run.
  std::atomic<bool> done{false};
  std::vector<long> peak_fds(static_cast<size_t>(n), 0), peak_rss(static_cast<size_t>(n), 0);
  std::mutex mu;
  std::thread sampler([&] {
    while (!done.load()) {
      for (int i = 0; i < n; ++i) {
        auto u = proc_usage(pids[static_cast<size_t>(i)]);
        std::lock_guard<std::mutex> g(mu);
        peak_fds[static_cast<size_t>(i)] = std::max(peak_fds[static_cast<size_t>(i)], u.fds);
        peak_rss[static_cast<size_t>(i)] = std::max(peak_rss[static_cast<size_t>(i)], u.rss_kb);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::vector<RunResult> results(static_cast<size_t>(n));
  std::vector<double> secs(static_cast<size_t>(n));
  auto t0 = Clock::now();
  {
    std::vector<std::thread> workers;
    for (int i = 0; i < n; ++i) {
      workers.emplace_back([&, i] {
        auto start = Clock::now();
        results[static_cast<size_t>(i)] =
            sh(workload(i, p("payload.tar")), p("c" + two(i) + "/mnt"), 900000);
        secs[static_cast<size_t>(i)] = std::chrono::duration<double>(Clock::now() - start).count();
      });
    }
    for (auto& w : workers) w.join();
  }
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  done = true;
  sampler.join();

  std::vector<ProcUsage> end(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) end[static_cast<size_t>(i)] = proc_usage(pids[static_cast<size_t>(i)]);
  std::printf("\n%d containers over one image (%d image files, %d payload files each); "
              "mounting all: %.2f s, workloads: %.2f s wall\n",
              n, kImageDirs * kImageFiles, payload_dirs() * kPayloadFiles, mount_s, wall);
  std::printf("%-4s %7s %11s %11s %11s %9s %9s %9s\n", "ctr", "secs", "idleRSS_kB", "VmHWM_kB",
              "endRSS_kB", "idle_fds", "peak_fds", "end_fds");
  long max_hwm = 0, max_fds = 0;
  for (int i = 0; i < n; ++i) {
    size_t k = static_cast<size_t>(i);
    std::printf("c%02d  %7.2f %11ld %11ld %11ld %9ld %9ld %9ld\n", i, secs[k], idle[k].rss_kb,
                end[k].hwm_kb, end[k].rss_kb, idle[k].fds, peak_fds[k], end[k].fds);
    max_hwm = std::max(max_hwm, end[k].hwm_kb);
    max_fds = std::max(max_fds, peak_fds[k]);
  }
  std::fflush(stdout);
  RecordProperty("containers", n);
  RecordProperty("max_vmhwm_kb", static_cast<int>(max_hwm));
  RecordProperty("max_fds", static_cast<int>(max_fds));
  RecordProperty("wall_ms", static_cast<int>(wall * 1000));

  // Every workload finished, with the same file count.
  const int expected_files = kImageDirs * kImageFiles   // image data
                             - kImageFiles              // the deleted directory
                             - 10                       // data/d01/f0<i%5>*
                             + payload_dirs() * kPayloadFiles / 2;  // untarred, half deleted
  for (int i = 0; i < n; ++i) {
    auto& res = results[static_cast<size_t>(i)];
    EXPECT_TRUE(res.ok()) << "container " << i << ": " << res;
    EXPECT_EQ(res.out, std::to_string(expected_files) + "\n") << "container " << i;
  }

  // Isolation: each container sees its own changes and none of the others'.
  for (int i = 0; i < n; ++i) {
    std::string c = "c" + two(i);
    auto mm = [&](const std::string& rel) { return p(c + "/mnt/" + rel); };
    SCOPED_TRACE("container " + std::to_string(i));
    EXPECT_EQ(read_file(mm("mine-" + std::to_string(i))), "container " + std::to_string(i) + "\n");
    for (int j = 0; j < n; ++j) {
      if (j == i) continue;
      EXPECT_FALSE(exists(mm("mine-" + std::to_string(j)))) << "sees container " << j;
      EXPECT_TRUE(exists(mm("data/d" + two(2 + j)))) << "sees the deletion of container " << j;
      EXPECT_FALSE(exists(mm("data/d18/f000.c" + std::to_string(j))));
    }
    EXPECT_FALSE(exists(mm("data/d" + two(2 + i))));
    for (int f = 0; f < kImageFiles; ++f)
      ASSERT_EQ(read_file(mm("data/d00/f" + three(f))),
                image_file_content(0, f) + "c" + std::to_string(i) + "\n");
    std::vector<std::string> d18;
    for (int f = 0; f < kImageFiles; ++f)
      d18.push_back("f" + three(f) + (f < kRenamed ? ".c" + std::to_string(i) : ""));
    std::sort(d18.begin(), d18.end());
    EXPECT_EQ(list_dir(mm("data/d18")), d18);
    std::vector<std::string> d01;
    for (int f = 0; f < kImageFiles; ++f)
      if (f / 10 != i % 5) d01.push_back("f" + three(f));
    EXPECT_EQ(list_dir(mm("data/d01")), d01);
    EXPECT_EQ(read_file(mm("work/p00-renamed/file001")), payload_content(0, 1) + "more\n");
    EXPECT_EQ(read_file(mm("work/p15/file011")), "rewritten" + std::to_string(i) + "\n");
    EXPECT_EQ(read_file(mm("work/p15/file013")), payload_content(15, 13));
    int last = payload_dirs() - 1;
    EXPECT_EQ(read_file(mm("data/d19/moved-in/file099")), payload_content(last, 99));
    EXPECT_FALSE(exists(mm("work/p" + std::to_string(last))));
    EXPECT_FALSE(exists(mm("work/p15/file012")));
    // The rw branch holds this container's whiteouts and nothing of the others.
    std::string rw = p(c + "/rw");
    EXPECT_TRUE(exists(rw + "/data/.wh.d" + two(2 + i)));
    EXPECT_TRUE(exists(rw + "/data/d18/.wh.f000"));
    EXPECT_TRUE(exists(rw + "/data/d18/f000.c" + std::to_string(i)));
    EXPECT_EQ(read_file(rw + "/mine-" + std::to_string(i)), "container " + std::to_string(i) + "\n");
    for (int j = 0; j < n; ++j) {
      if (j == i) continue;
      EXPECT_FALSE(exists(rw + "/data/.wh.d" + two(2 + j)));
    }
  }

  // Unmount each (the fixture then reaps and checks the daemon). A mount
  // still busy once every workload has ended is a failure; the report names
  // what held it.
  for (int i = 0; i < n; ++i) {
    bool still = false;
    std::string report = umount_retrying(p("c" + two(i) + "/mnt"), still);
    EXPECT_EQ(report, "") << "container " << i << " mount busy after its workload ended";
    unmount("c" + two(i) + "/mnt");
  }
  EXPECT_EQ(snapshot(p("image")), image_before) << "image layer modified";
}

}  // namespace
}  // namespace aufs::ct
