// SPDX-License-Identifier: GPL-2.0-or-later
// Mount test tier: starts the real aufs-fuse daemon on a private temporary
// mount and drives it with real commands and system calls.
//
// Every test gets a fresh temporary root (mkdtemp) holding its branch
// directories and mount points. The daemon runs in the foreground as a child
// of the test process, its stderr going to <root>/daemon.log. Teardown always
// unmounts, reaps the daemon (SIGKILL to that pid only as a last resort),
// expects exit status 0 and a log free of errors, then removes the root.
#pragma once
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <cerrno>
#include <optional>
#include <string>
#include <vector>

namespace aufs::mt {

// ---------------------------------------------------------------- commands

struct RunResult {
  int exit_code = -1;      // exit status, or -1 if killed / not started
  int term_signal = 0;     // signal that ended it, 0 if none
  bool timed_out = false;  // killed after the deadline
  std::string out, err;
  bool ok() const { return exit_code == 0; }
};
std::ostream& operator<<(std::ostream& os, const RunResult& r);

// Runs argv (PATH searched) with stdin from /dev/null, collecting stdout and
// stderr. cwd empty = inherit. Environment gets LC_ALL=C and TZ=UTC.
RunResult run(const std::vector<std::string>& argv, const std::string& cwd = "",
              int timeout_ms = 20000);
// /bin/sh -c CMD.
RunResult sh(const std::string& cmd, const std::string& cwd = "", int timeout_ms = 20000);
// /bin/sh -c CMD as another user (setpriv, no supplementary groups).
RunResult sh_as(uid_t uid, gid_t gid, const std::string& cmd, const std::string& cwd = "");
// Runs fn in a forked child with the given credentials; returns the errno fn
// reports (fn returns 0 on success or an errno value), or -1 on a crash.
int errno_as(uid_t uid, gid_t gid, const std::function<int()>& fn);
// Shell-quotes one word.
std::string q(const std::string& s);
// "ENOENT (No such file or directory)"; "0" for 0.
std::string errname(int e);

// ---------------------------------------------------------------- files

std::string read_file(const std::string& path);  // "" if unreadable; follows links
bool write_file(const std::string& path, const std::string& content, mode_t mode = 0644);
bool append_file(const std::string& path, const std::string& content);
void mkdirs(const std::string& path, mode_t mode = 0755);
bool exists(const std::string& path);  // lstat
std::optional<struct stat> lstat_of(const std::string& path);
std::optional<struct stat> stat_of(const std::string& path);
// errno of lstat(path) (0 on success).
int lstat_errno(const std::string& path);
// errno after a syscall that returned rc (0 on success).
inline int err_of(long rc) { return rc < 0 ? errno : 0; }
// Sorted names (no "." / ".."); empty if unreadable.
std::vector<std::string> list_dir(const std::string& dir);
// All names below dir, relative, sorted ("a", "a/b", ...). Never follows
// symlinks or crosses mount points.
std::vector<std::string> list_tree(const std::string& dir);
// A dump of everything below dir (names, types, modes, owners, sizes, mtime
// and ctime, nlink, symlink targets, xattrs and a hash of every file's
// content): equal dumps mean the tree was left alone.
std::string snapshot(const std::string& dir);
std::string readlink_of(const std::string& path);
std::optional<std::string> get_xattr(const std::string& path, const std::string& key);
void remove_tree(const std::string& path);
bool is_mount_point(const std::string& path);  // st_dev differs from parent's
bool in_proc_mounts(const std::string& path);  // listed in /proc/self/mountinfo
// AUFS_TEST_MOUNT_OPTIONS as ",OPTS" (or ""): options every mount() and
// mount_cached() of a run gets (io_uring: the suite through the rings);
// a test's own options come after them.
std::string suite_options();

// The README walk-through's branches below dir: container-layer
// (container-layer.txt) over image-layer1..3 (image-layerN.txt,
// subdirN/subdirN.txt). False if a file could not be written.
bool make_walkthrough_layers(const std::string& dir);
// list_tree() of their union.
std::vector<std::string> walkthrough_tree();
// The walk-through's changes through the union mounted at dir/mnt (append
// to image-layer1.txt, rm image-layer2.txt, create container-test.txt),
// checked in the union and in container-layer (gtest failures).
void walkthrough_changes(const std::string& dir);

std::string daemon_binary();  // $AUFS_FUSE_BIN or ../../src/aufs-fuse
// A tool of this build: $env_var if set, else `fallback` (searched in PATH by
// run()).
std::string tool_binary(const char* env_var, const std::string& fallback);

// ---------------------------------------------------------------- mount table

// One line of /proc/self/mountinfo, unescaped.
struct MountEntry {
  std::string mount_point;  // absolute
  std::string fstype;       // "fuse.aufs"
  std::string source;       // "none"
  std::string mount_opts;   // per-mount options: "rw,nosuid,nodev,relatime"
  std::string super_opts;   // per-superblock options
  // True if `opt` is one of the comma-separated per-mount or superblock options.
  bool has_opt(const std::string& opt) const;
};
// The topmost mount on `path`, if any.
std::optional<MountEntry> mount_entry(const std::string& path);
// Every mount whose mount point is `dir` or lies below it.
std::vector<MountEntry> mounts_under(const std::string& dir);

// Guards a mount made through mount(8) (or any helper that daemonizes): the
// destructor runs `umount PATH`, then `umount -l PATH` if it is still
// mounted, so a failing test never leaves a mount behind. The daemon of such
// a mount is not a child of the test; it exits on its own once unmounted.
class SysMountGuard {
 public:
  explicit SysMountGuard(std::string mnt) : mnt_(std::move(mnt)) {}
  ~SysMountGuard();
  SysMountGuard(const SysMountGuard&) = delete;
  SysMountGuard& operator=(const SysMountGuard&) = delete;
  const std::string& path() const { return mnt_; }

 private:
  std::string mnt_;
};

// Pids of running aufs-fuse daemons whose command line names `mnt` (read
// from /proc; for checking that a daemon exited; a test may kill only one it
// started itself on its own temporary mount point).
std::vector<pid_t> daemon_pids_for(const std::string& mnt);
// Waits up to timeout_ms for daemon_pids_for(mnt) to become empty.
bool wait_daemons_gone(const std::string& mnt, int timeout_ms = 5000);

// ---------------------------------------------------------------- daemon

class Daemon {
 public:
  // args excludes argv[0]; cwd is the daemon's working directory; mnt is the
  // absolute mount point to wait for.
  Daemon(std::vector<std::string> args, std::string mnt, std::string log, std::string cwd);
  ~Daemon();  // stops it if still running (never leaves a mount behind)
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  ::testing::AssertionResult start(int timeout_ms = 10000);
  // Unmounts, reaps and checks. Returns the problems found (empty = clean):
  // unmount failure, exit status != 0, forced kill.
  std::vector<std::string> stop();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& mnt() const { return mnt_; }
  const std::string& log() const { return log_; }

 private:
  std::vector<std::string> args_;
  std::string mnt_, log_, cwd_;
  pid_t pid_ = -1;
};

// ---------------------------------------------------------------- fixture

class MountTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  ~MountTest() override;

  const std::string& root() const { return root_; }
  // <root>/rel
  std::string p(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }
  // <root>/mnt/rel
  std::string m(const std::string& rel = "") const { return p(rel.empty() ? "mnt" : "mnt/" + rel); }

  // Starts the daemon: `branches` is "name[=perm]:name..." with names relative
  // to root (absolute paths are kept); `extra` is appended to -o after the
  // test defaults (zero timeouts, 2 threads). mnt_rel is relative to root.
  ::testing::AssertionResult mount(const std::string& branches, const std::string& extra = "",
                                   const std::string& mnt_rel = "mnt");
  // As mount(), but without the zero-timeout test defaults: the daemon's own
  // entry/attr/negative timeouts apply (those that udba= chooses), so the
  // kernel caches names and attributes as in real use.
  ::testing::AssertionResult mount_cached(const std::string& branches,
                                          const std::string& extra = "",
                                          const std::string& mnt_rel = "mnt");
  // "name[=perm]:name..." with names made absolute below root.
  std::string branch_list(const std::string& branches) const;
  // Starts the daemon with raw arguments (cwd = root).
  ::testing::AssertionResult mount_args(const std::vector<std::string>& args,
                                        const std::string& mnt_rel = "mnt");
  // Stops the daemon of mnt_rel (or the only/last one) and checks it.
  void unmount(const std::string& mnt_rel = "");
  // A daemon log line containing `substr` is not an error.
  void allow_log(const std::string& substr) { allowed_.push_back(substr); }

  std::string daemon_log() const;  // all logs, for failure messages

 private:
  void stop_and_check(Daemon& d);
  std::string root_;
  std::vector<std::unique_ptr<Daemon>> daemons_;
  std::vector<std::string> allowed_;
  int log_seq_ = 0;
  bool removed_ = false;
};

}  // namespace aufs::mt

// Asserts a syscall-like expression fails with errno E.
#define EXPECT_ERRNO(E, expr)                                                          \
  do {                                                                                 \
    errno = 0;                                                                         \
    auto _rc = (expr);                                                                 \
    int _e = errno;                                                                    \
    EXPECT_EQ(_rc, -1) << #expr;                                                       \
    EXPECT_EQ(_e, (E)) << #expr << ": got " << ::aufs::mt::errname(_e) << " expected "     \
                       << ::aufs::mt::errname(E);                                          \
  } while (0)

#define EXPECT_SYS_OK(expr)                                                             \
  do {                                                                                  \
    errno = 0;                                                                          \
    auto _rc = (expr);                                                                  \
    int _e = errno;                                                                     \
    EXPECT_NE(_rc, -1) << #expr << ": " << ::aufs::mt::errname(_e);  \
  } while (0)

#define ASSERT_SYS_OK(expr)                                                             \
  do {                                                                                  \
    errno = 0;                                                                          \
    auto _rc = (expr);                                                                  \
    int _e = errno;                                                                     \
    ASSERT_NE(_rc, -1) << #expr << ": " << ::aufs::mt::errname(_e);  \
  } while (0)
