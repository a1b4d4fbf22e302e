// SPDX-License-Identifier: GPL-2.0-or-later
// The newer FUSE features (issue 19): passthrough, KILLPRIV_V2, expire-only
// invalidation and io_uring, each tested where the library and the kernel
// grant it (aufsctl's "fuse" part says) and skipped with that reason if not.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <sys/wait.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <thread>

#include "mount_fixture.hpp"
#include "tools_support.hpp"

namespace aufs::mt {
namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

// The mount's state of one feature: "" if active, else why not.
std::string why_off(const Json& info, const char* feature) {
  if (!info.contains("fuse") || !info["fuse"].contains(feature)) return "aufsctl reports no state for it";
  const Json& f = info["fuse"][feature];
  if (f.value("active", false)) return "";
  return f.value("why", std::string("off"));
}

Json pt_counters(const std::string& mnt) { return ctl_info(mnt)["fuse"]["passthrough"]["counters"]; }

std::string pread_str(int fd, size_t n, off_t off) {
  std::string s(n, '\0');
  ssize_t r = ::pread(fd, s.data(), n, off);
  s.resize(r > 0 ? static_cast<size_t>(r) : 0);
  return s;
}

TEST_F(MountTest, FuseFeaturesAreReportedWithReasons) {
  mkdirs(p("rw"));
  ASSERT_TRUE(mount("rw"));
  Json info = ctl_info(m());
  ASSERT_TRUE(info["fuse"].is_object()) << info.dump();
  auto v = run({daemon_binary(), "--version"});
  ASSERT_TRUE(v.ok()) << v;
  EXPECT_NE(v.out.find("libfuse " + info["fuse"]["libfuse"].get<std::string>()), std::string::npos)
      << v.out;
  for (const char* f : {"passthrough", "handle_killpriv_v2", "expire_only", "io_uring"}) {
    SCOPED_TRACE(f);
    const Json& s = info["fuse"][f];
    ASSERT_TRUE(s.is_object()) << info["fuse"].dump();
    bool built = v.out.find(std::string(" ") + f) != std::string::npos;
    if (!s.value("active", false)) {
      EXPECT_FALSE(s.value("why", std::string()).empty()) << "an inactive feature says why";
    }
    // --version lists what the build can use; "library too old" only for the rest.
    EXPECT_EQ(s.value("why", std::string()).starts_with("library too old"), !built) << v.out;
  }
  // io_uring is off by default.
  if (suite_options().find("io_uring") == std::string::npos) {
    EXPECT_FALSE(info["fuse"]["io_uring"].value("active", true));
  }
  auto human = run({aufsctl_binary(), m()});
  EXPECT_NE(human.out.find("passthrough: "), std::string::npos) << human;
}

TEST_F(MountTest, PassthroughReadWriteMmapCoherentBetweenTwoOpens) {
  mkdirs(p("rw"));
  mkdirs(p("l1"));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  if (auto why = why_off(ctl_info(m()), "passthrough"); !why.empty()) GTEST_SKIP() << why;
  ASSERT_TRUE(write_file(m("f"), std::string(8192, 'a')));
  int w = ::open(m("f").c_str(), O_RDWR);
  int r = ::open(m("f").c_str(), O_RDONLY);
  ASSERT_GE(w, 0);
  ASSERT_GE(r, 0);
  EXPECT_GE(pt_counters(m())["opens"].get<long long>(), 2) << "both opens passed through";
  ASSERT_EQ(::pwrite(w, "BBBB", 4, 100), 4);
  EXPECT_EQ(pread_str(r, 4, 100), "BBBB");
  // A shared mapping of the reader sees the writer's writes, and the
  // writer's mapping is seen by read(2) of the reader.
  void* rm = ::mmap(nullptr, 8192, PROT_READ, MAP_SHARED, r, 0);
  void* wm = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, w, 0);
  ASSERT_NE(rm, MAP_FAILED);
  ASSERT_NE(wm, MAP_FAILED);
  ASSERT_EQ(::pwrite(w, "CC", 2, 4096), 2);
  EXPECT_EQ(std::string(static_cast<char*>(rm) + 4096, 2), "CC");
  std::memcpy(static_cast<char*>(wm) + 5000, "DDD", 3);
  ASSERT_EQ(::msync(wm, 8192, MS_SYNC), 0);
  EXPECT_EQ(pread_str(r, 3, 5000), "DDD");
  ::munmap(rm, 8192);
  ::munmap(wm, 8192);
  // Growing through passthrough: stat and the branch file agree.
  ASSERT_EQ(::pwrite(w, "end", 3, 8192), 3);
  auto st = stat_of(m("f"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_size, 8195);
  ::close(w);
  ::close(r);
  std::string b = read_file(p("rw/f"));
  EXPECT_EQ(b.size(), 8195u);
  EXPECT_EQ(b.substr(100, 4), "BBBB");
  EXPECT_EQ(b.substr(4096, 2), "CC");
  EXPECT_EQ(b.substr(5000, 3), "DDD");
  EXPECT_EQ(b.substr(8192), "end");
  // A cached open after the passthrough writes sees them (no stale pages).
  EXPECT_EQ(read_file(m("f")).substr(8192), "end");
}

// Regression: a second open of an unchanged file asked the kernel to keep
// its page cache (FOPEN_KEEP_CACHE) along with a backing file, and the
// kernel failed that open with EIO.
TEST_F(MountTest, PassthroughReopenOfUnchangedFile) {
  mkdirs(p("rw"));
  ASSERT_TRUE(write_file(p("rw/f"), "same\n"));
  ASSERT_TRUE(mount_cached("rw"));
  if (auto why = why_off(ctl_info(m()), "passthrough"); !why.empty()) GTEST_SKIP() << why;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(read_file(m("f")), "same\n") << "open " << i;
  EXPECT_EQ(pt_counters(m())["opens"].get<long long>(), 3);
}

TEST_F(MountTest, PassthroughLowerFilesOnlyWhereNoCopyUpCanFollow) {
  mkdirs(p("rw"));
  mkdirs(p("l1"));
  ASSERT_TRUE(write_file(p("l1/low"), "low\n"));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  if (auto why = why_off(ctl_info(m()), "passthrough"); !why.empty()) GTEST_SKIP() << why;
  // passthrough=rw: a lower file can still be copied up; its readers stay
  // on the normal path, so they follow the copy-up.
  int r = ::open(m("low").c_str(), O_RDONLY);
  ASSERT_GE(r, 0);
  EXPECT_EQ(pt_counters(m())["opens"].get<long long>(), 0);
  ASSERT_TRUE(append_file(m("low"), "more\n"));
  EXPECT_EQ(pread_str(r, 100, 0), "low\nmore\n") << "the open reader follows the copy-up";
  ::close(r);
  unmount();
  // A read-only mount: no copy-up can follow.
  ASSERT_TRUE(mount("l1=ro", "ro"));
  EXPECT_EQ(read_file(m("low")), "low\n");
  EXPECT_EQ(pt_counters(m())["opens"].get<long long>(), 1);
}

TEST_F(MountTest, CopyUpRacingPassthroughReaders) {
  mkdirs(p("rw"));
  mkdirs(p("l1"));
  std::string body(64 * 1024, 'x');
  ASSERT_TRUE(write_file(p("l1/big"), body));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  if (auto why = why_off(ctl_info(m()), "passthrough"); !why.empty()) GTEST_SKIP() << why;
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::string errs;
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        int fd = ::open(m("big").c_str(), O_RDONLY);
        if (fd < 0) {
          errors++;
          continue;
        }
        char buf[4096];
        while (true) {
          ssize_t n = ::read(fd, buf, sizeof buf);
          if (n < 0) errors++;
          if (n <= 0) break;
        }
        ::close(fd);
      }
    });
  }
  // Copy-ups while readers open and read: every writer's open and every
  // reader's open succeeds; some take the normal path (counted).
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(append_file(m("big"), "y"));
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(read_file(m("big")), body + std::string(20, 'y'));
  EXPECT_EQ(read_file(p("rw/big")), body + std::string(20, 'y'));
  Json c = pt_counters(m());
  EXPECT_EQ(c["conflicts"].get<long long>(), 0) << c.dump();
}

TEST_F(MountTest, PassthroughAllRefusesCopyUpUnderLowerReaders) {
  mkdirs(p("rw"));
  mkdirs(p("l1"));
  ASSERT_TRUE(write_file(p("l1/low"), "low\n"));
  ASSERT_TRUE(mount("rw:l1=ro+wh", "passthrough=all"));
  if (auto why = why_off(ctl_info(m()), "passthrough"); !why.empty()) GTEST_SKIP() << why;
  int r = ::open(m("low").c_str(), O_RDONLY);
  ASSERT_GE(r, 0);
  EXPECT_EQ(pt_counters(m())["opens"].get<long long>(), 1);
  // The kernel cannot move this reader to a copy: the copy-up waits for it
  // (aufs-fuse(8), passthrough=all).
  EXPECT_ERRNO(ETXTBSY, ::open(m("low").c_str(), O_WRONLY | O_APPEND));
  EXPECT_FALSE(exists(p("rw/low")));
  ::close(r);
  ASSERT_TRUE(append_file(m("low"), "more\n"));
  EXPECT_EQ(read_file(m("low")), "low\nmore\n");
  EXPECT_EQ(pt_counters(m())["conflicts"].get<long long>(), 1);
}

TEST_F(MountTest, PassthroughRefusedOnStackedBranchFallsBack) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount overlayfs";
  for (const char* d : {"ol", "ou", "ow", "ovl", "l1"}) mkdirs(p(d));
  if (!run({"mount", "-t", "overlay", "overlay", "-o",
            "lowerdir=" + p("ol") + ",upperdir=" + p("ou") + ",workdir=" + p("ow"), p("ovl")})
           .ok())
    GTEST_SKIP() << "cannot mount overlayfs here";
  struct Unmount {
    std::string path;
    ~Unmount() {
      if (!run({"umount", path}).ok()) run({"umount", "-l", path});
    }
  } guard{p("ovl")};
  allow_log("passthrough: the kernel did not take a branch file");
  ASSERT_TRUE(mount("ovl:l1=ro+wh"));
  if (auto why = why_off(ctl_info(m()), "passthrough"); !why.empty()) {
    unmount();
    GTEST_SKIP() << why;
  }
  // A backing file on a stacked file system is refused: the normal path,
  // counted, with one warning however many opens.
  ASSERT_TRUE(write_file(m("a"), "a\n"));
  EXPECT_EQ(read_file(m("a")), "a\n");
  EXPECT_EQ(read_file(m("a")), "a\n");
  Json c = pt_counters(m());
  EXPECT_EQ(c["opens"].get<long long>(), 0) << c.dump();
  EXPECT_EQ(c["refused"].get<long long>(), 3) << c.dump();
  unmount();
  std::string log = daemon_log();
  EXPECT_EQ(log.find("passthrough: the kernel"), log.rfind("passthrough: the kernel")) << log;
  EXPECT_EQ(log.find("error"), std::string::npos) << log;
}

// Holds for every libfuse: with KILLPRIV_V2 the daemon clears the bits, else
// the kernel does.
TEST_F(MountTest, SetIdBitsClearedByUnprivilegedWriteAndTruncate) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  std::string r0 = root();
  if (errno_as(kNobody, kNogroup, [&] { return ::access(r0.c_str(), X_OK) < 0 ? errno : 0; }) != 0)
    GTEST_SKIP() << "user " << kNobody << " cannot reach " << r0;
  mkdirs(p("rw"));
  mkdirs(p("l1"));
  ASSERT_EQ(::chmod(p("rw").c_str(), 0777), 0);
  for (const char* b : {"rw", "l1"}) {
    for (const char* f : {"w", "t", "o", "root"}) {
      std::string path = p(std::string(b) + "/" + f + "_" + b);
      ASSERT_TRUE(write_file(path, "data\n"));
      ASSERT_EQ(::chmod(path.c_str(), 06777), 0);
    }
  }
  allow_log("owner, group or mode differs");
  ASSERT_TRUE(mount("rw:l1=ro+wh", "allow_other"));
  Json info = ctl_info(m());
  RecordProperty("handle_killpriv_v2", why_off(info, "handle_killpriv_v2").empty() ? "active" : "off");
  for (const char* b : {"rw", "l1"}) {
    std::string s(b);
    auto w = sh_as(kNobody, kNogroup, "echo more >> " + q(m("w_" + s)));
    auto t = sh_as(kNobody, kNogroup, "truncate -s 2 " + q(m("t_" + s)));
    auto o = sh_as(kNobody, kNogroup, ": > " + q(m("o_" + s)));
    ASSERT_TRUE(w.ok() && t.ok() && o.ok()) << w << t << o;
    ASSERT_TRUE(append_file(m("root_" + s), "root\n"));
    for (const char* f : {"w", "t", "o"}) {
      std::string name = std::string(f) + "_" + s;
      SCOPED_TRACE(name);
      auto st = stat_of(m(name));
      auto bst = stat_of(p("rw/" + name));  // copied up if it was lower
      ASSERT_TRUE(st && bst);
      EXPECT_EQ(st->st_mode & 07777, 0777u);
      EXPECT_EQ(bst->st_mode & 07777, 0777u);
    }
    auto rst = stat_of(m("root_" + s));
    ASSERT_TRUE(rst);
    EXPECT_EQ(rst->st_mode & 07777, 06777u) << "a writer with CAP_FSETID keeps the bits";
  }
  EXPECT_EQ(stat_of(p("l1/w_l1"))->st_mode & 07777, 06777u) << "lower branch untouched";
}

TEST_F(MountTest, ExpireOnlyKeepsCwdOfDirectBranchEdit) {
  mkdirs(p("rw"));
  mkdirs(p("l1/dir"));
  ASSERT_TRUE(write_file(p("l1/dir/f"), "f\n"));
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh", "udba=notify"));
  if (auto why = why_off(ctl_info(m()), "expire_only"); !why.empty()) GTEST_SKIP() << why;
  std::string d = m("dir");
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipefd[1]);
    if (::chdir(d.c_str()) != 0) _exit(1);
    char c;
    (void)!::read(pipefd[0], &c, 1);  // until the parent is done
    _exit(0);
  }
  ::close(pipefd[0]);
  std::string cwd_link = "/proc/" + std::to_string(child) + "/cwd";
  ASSERT_TRUE(eventually([&] { return readlink_of(cwd_link) == d; }, 5000));
  // Edits behind the mount, in the directory and of the directory.
  ASSERT_TRUE(write_file(p("l1/dir/new"), "new\n"));
  ASSERT_EQ(::chmod(p("l1/dir").c_str(), 0750), 0);
  EXPECT_TRUE(eventually([&] { return exists(m("dir/new")); }, 5000)) << "the change is seen";
  EXPECT_TRUE(eventually([&] { return (stat_of(d)->st_mode & 0777) == 0750; }, 5000));
  EXPECT_EQ(readlink_of(cwd_link), d) << "the cwd's dentry was not dropped";
  ::close(pipefd[1]);
  int status = 0;
  ::waitpid(child, &status, 0);
}

// FUSE over io_uring: /sys/module/fuse/parameters/enable_uring is set for
// the test (as root) and restored.
class IoUring : public MountTest {
 protected:
  static constexpr const char* kParam = "/sys/module/fuse/parameters/enable_uring";
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::ifstream in(kParam);
    if (!(in >> saved_)) GTEST_SKIP() << "the kernel has no FUSE over io_uring (" << kParam << ")";
    if (geteuid() != 0) GTEST_SKIP() << "needs root to set " << kParam;
  }
  void TearDown() override {
    if (!saved_.empty()) set(saved_);
    MountTest::TearDown();
  }
  static bool set(const std::string& v) {
    std::ofstream out(kParam);
    out << v;
    return static_cast<bool>(out.flush());
  }
  // Fifty lower files f0..f49 and a mount served through the rings; `skip`
  // says why not where the library or the kernel cannot.
  void mount_rings(std::string& skip) {
    ASSERT_TRUE(set("Y"));
    mkdirs(p("rw"));
    mkdirs(p("l1"));
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(write_file(p("l1/f" + std::to_string(i)), "lower\n"));
    ASSERT_TRUE(mount("rw:l1=ro+wh", "io_uring,io_uring_q_depth=16"));
    skip = why_off(ctl_info(m()), "io_uring");
  }
  std::string saved_;
};

TEST_F(IoUring, MountAndUnmountUnderLoad) {
  std::string skip;
  ASSERT_NO_FATAL_FAILURE(mount_rings(skip));
  if (!skip.empty()) GTEST_SKIP() << skip;
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&, t] {
      for (int n = 0; !stop.load(); ++n) {
        std::string f = m("t" + std::to_string(t) + "_" + std::to_string(n % 20));
        if (!write_file(f, "x" + std::to_string(n))) errors++;
        if (read_file(f) != "x" + std::to_string(n)) errors++;
        if (read_file(m("f" + std::to_string(n % 50))).empty()) errors++;
        if (n % 7 == 0 && ::unlink(f.c_str()) != 0) errors++;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(errors.load(), 0);
  unmount();  // the daemon exits 0 with a clean log
  EXPECT_FALSE(in_proc_mounts(m()));
}

// Detached (umount -l) while requests are in flight: an fd held across the
// detach keeps reading through the rings, and once it is closed the daemon
// leaves by itself, exit status 0, with a clean log.
TEST_F(IoUring, LazyUnmountWithRequestsInFlight) {
  std::string skip;
  ASSERT_NO_FATAL_FAILURE(mount_rings(skip));
  if (!skip.empty()) GTEST_SKIP() << skip;
  int held = ::open(m("f0").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0) << errname(errno);
  // detaching: set before the unmount starts, as paths stop naming the mount.
  std::atomic<bool> detaching{false}, detached{false}, stop{false};
  std::atomic<int> errors{0}, held_errors{0}, reads_after{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 3; ++t) {
    load.emplace_back([&, t] {
      for (int n = 0; !stop.load(); ++n) {
        if (detaching.load()) {  // the paths now name the bare mount point
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          continue;
        }
        std::string f = m("t" + std::to_string(t) + "_" + std::to_string(n % 20));
        bool ok = write_file(f, "x" + std::to_string(n)) && read_file(f) == "x" + std::to_string(n) &&
                  read_file(m("f" + std::to_string(n % 50))) == "lower\n";
        if (!ok && !detaching.load()) errors++;
      }
    });
  }
  load.emplace_back([&] {
    char buf[16];
    while (!stop.load()) {
      ssize_t n = ::pread(held, buf, sizeof buf, 0);
      if (n != 6 || std::string(buf, 6) != "lower\n") held_errors++;
      else if (detached.load()) reads_after++;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  detaching = true;
  auto r = run({"fusermount3", "-uz", m()}, "", 15000);
  detached = true;
  EXPECT_TRUE(r.ok()) << r.err;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  for (auto& t : load) t.join();
  ::close(held);
  EXPECT_EQ(errors.load(), 0) << "operations through paths before the detach";
  EXPECT_EQ(held_errors.load(), 0) << "reads of the fd held across the detach";
  EXPECT_GT(reads_after.load(), 0) << "the held fd was not read after the detach";
  EXPECT_FALSE(in_proc_mounts(m()));
  unmount();  // only waits: the daemon exits 0 with a clean log once the fd is closed
}

// A ring's requests are served in turn by one thread, so a write held by a
// pause would hold the release behind it (found running the mount suite
// through the rings: Pause.WritesWaitWhilePausedAndFinishAfterRelease waited
// for its 30 s timeout). The pause is refused instead, and writes go on.
TEST_F(IoUring, PauseIsRefused) {
  ASSERT_TRUE(set("Y"));
  mkdirs(p("rw"));
  ASSERT_TRUE(mount("rw", "io_uring"));
  Json info = ctl_info(m());
  if (auto why = why_off(info, "io_uring"); !why.empty()) GTEST_SKIP() << why;
  std::string ctl = m(".wh..wh.aufs-fuse");
  std::string v = "5";
  ASSERT_EQ(::setxattr(ctl.c_str(), "user.aufs.pause", v.data(), v.size(), 0), -1);
  EXPECT_EQ(errno, EOPNOTSUPP) << errname(errno);
  ASSERT_TRUE(write_file(m("f"), "not held\n"));
  EXPECT_EQ(read_file(m("f")), "not held\n");
  unmount();
}

// The kernel offering rings is not asking for them: libfuse 3.18 wants
// io_uring by default wherever the kernel offers it, and a daemon that took
// that for -o io_uring refused pauses on every mount (found when a
// concurrent test had switched enable_uring on).
TEST_F(IoUring, OffUnlessAsked) {
  if (suite_options().find("io_uring") != std::string::npos)
    GTEST_SKIP() << "every mount of this run asks for io_uring (AUFS_TEST_MOUNT_OPTIONS)";
  ASSERT_TRUE(set("Y"));
  mkdirs(p("rw"));
  ASSERT_TRUE(mount("rw", "passthrough=none"));
  Json info = ctl_info(m());
  EXPECT_FALSE(info["fuse"]["io_uring"].value("active", true)) << info["fuse"].dump();
  std::string why = why_off(info, "io_uring");
  if (why.starts_with("library too old")) GTEST_SKIP() << why;
  EXPECT_NE(why.find("option off"), std::string::npos) << why;
  std::string ctl = m(".wh..wh.aufs-fuse");
  std::string v = "5";
  EXPECT_EQ(::setxattr(ctl.c_str(), "user.aufs.pause", v.data(), v.size(), 0), 0) << errname(errno);
  EXPECT_EQ(::setxattr(ctl.c_str(), "user.aufs.release", "", 0, 0), 0) << errname(errno);
  unmount();
}

TEST_F(IoUring, ParameterOffFallsBackWithOneWarning) {
  ASSERT_TRUE(set("N"));
  mkdirs(p("rw"));
  allow_log("io_uring: ");
  ASSERT_TRUE(mount("rw", "io_uring"));
  Json info = ctl_info(m());
  std::string why = why_off(info, "io_uring");
  if (why.starts_with("library too old")) GTEST_SKIP() << why;
  EXPECT_NE(why.find("enable_uring is N"), std::string::npos) << why;
  ASSERT_TRUE(write_file(m("f"), "works\n"));
  EXPECT_EQ(read_file(m("f")), "works\n");
  unmount();
  std::string log = daemon_log();
  size_t n = 0;
  for (size_t pos = 0; (pos = log.find("io_uring: ", pos)) != std::string::npos; ++pos) ++n;
  EXPECT_EQ(n, 1u) << log;
}

}  // namespace
}  // namespace aufs::mt
