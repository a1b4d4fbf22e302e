// SPDX-License-Identifier: GPL-2.0-or-later
// Reliability tier support: a wrapper around the mount fixture
// (tests/mount/mount_fixture.*, used as is) with what the reliability and
// security tests need on top of it:
//  * seeds (AUFS_FUSE_SEED, always printed) and the long form (AUFS_LONG=1);
//  * OwnDaemon: a daemon this test started and may kill -9 (only that pid),
//    optionally with a small RLIMIT_NOFILE; the dead mount is detached;
//  * RelTest: MountTest plus own daemons, tmpfs mounts and deep trees, all
//    undone in TearDown before the fixture removes the temporary root;
//  * fd-based tree digests (no PATH_MAX limit, never follow symlinks),
//    the checker tool, and the daemon's counters (user.aufs.info).
#pragma once
#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "../mount/mount_fixture.hpp"

namespace aufs::rel {

using namespace aufs::mt;  // NOLINT: the fixture's helpers are the vocabulary

// ---------------------------------------------------------------- run modes

// AUFS_LONG=1 (or any value but 0/empty): the long forms.
bool long_mode();
// Integer from the environment, `def` if unset or unparsable.
long env_long(const char* name, long def);
// The seed of the running test: AUFS_FUSE_SEED if set, else random. Always
// printed ("seed: AUFS_FUSE_SEED=N ...") and recorded as a test property.
uint64_t test_seed();
// Prints one line of test statistics to stdout (and records it as a test
// property under `key`).
void report(const std::string& key, const std::string& line);

// ---------------------------------------------------------------- hashing

uint64_t hash_bytes(const void* data, size_t n);
uint64_t hash_str(const std::string& s);
// XXH3 of a file's content, read through an fd; nullopt if unreadable.
std::optional<uint64_t> hash_file(const std::string& path);
// Deterministic pseudo-random bytes.
std::string random_bytes(std::mt19937_64& rng, size_t n);

// ---------------------------------------------------------------- trees

struct DigestOptions {
  bool times = true;   // mtime and ctime (ctime catches any metadata change)
  bool inodes = false; // st_ino
  bool owner = true;
  bool xattrs = true;
  bool dir_nlink = true;
  bool dir_size = true;
};
// One line per entry below `dir` (and "." for dir itself): type, mode,
// owner, size, link count, times, content hash, link target, rdev, xattrs.
// Walks with openat (any depth), never follows symlinks, never crosses
// mount points. Entries deeper than 64 levels are named "<deep N>/name".
std::vector<std::string> digest_tree(const std::string& dir, const DigestOptions& o = {});
// Depth-first walk holding one directory fd: descends with openat(name) and
// climbs back with openat(".."), so the depth is unlimited. Never follows
// symlinks, never crosses mount points; names sorted in each directory.
// visit(dirfd, parent_rel, name, st, depth) for every entry (parent_rel is
// "" for the root's children and for entries deeper than 64 levels);
// post(dirfd, name) after a directory's children (dirfd = its parent).
struct Walker {
  std::function<void(int, const std::string&, const std::string&, const struct stat&, int)> visit;
  std::function<void(int, const std::string&)> post;
};
void walk(const std::string& root, const Walker& w);
// Names in a directory fd, sorted, without "." and "..".
std::vector<std::string> names_of(int dirfd);
// First differing lines of two digests ("" if equal).
std::string digest_diff(const std::vector<std::string>& a, const std::vector<std::string>& b,
                        size_t max_lines = 20);
// Removes a tree of any depth with unlinkat (never follows symlinks, never
// crosses mount points). Returns false if something was left.
bool remove_tree_any_depth(const std::string& path);
// Makes `depth` nested directories named `name` below dir (mkdirat loop).
bool make_deep_chain(const std::string& dir, const std::string& name, int depth);

// ---------------------------------------------------------------- product

// The checker of this build ($AUFS_FUSE_CHECK_BIN or next to the daemon).
std::string checker_binary();
struct CheckerRun {
  RunResult run;
  long issues = -1, left = -1;  // parsed from the summary line(s)
};
CheckerRun run_checker(const std::vector<std::string>& branches, bool fix = false);

// The daemon's counters, from getxattr user.aufs.info on MNT/.wh..wh.aufs-fuse.
struct Info {
  std::string json;
  long inodes = -1, open_files = -1;
};
std::optional<Info> mount_info(const std::string& mnt);
// Value of "key":N in a JSON text, -1 if missing.
long json_number(const std::string& json, const std::string& key);

// ---------------------------------------------------------------- daemon

// A daemon started and owned by one test: it may be killed with SIGKILL
// (this pid only). The destructor never leaves a mount or a process behind.
// How many SIGKILLed daemons of this process were still alive 1 s later
// and needed their FUSE connection aborted (OwnDaemon::kill9).
int kill9_aborts();

class OwnDaemon {
 public:
  struct Config {
    std::vector<std::string> args;  // without argv[0]; must contain -f
    std::string mnt;                // absolute mount point
    std::string log;                // stderr+stdout of the daemon (appended)
    std::string cwd;
    rlim_t nofile = 0;              // RLIMIT_NOFILE soft=hard, 0 = inherit
  };
  explicit OwnDaemon(Config c) : c_(std::move(c)) {}
  ~OwnDaemon();
  OwnDaemon(const OwnDaemon&) = delete;
  OwnDaemon& operator=(const OwnDaemon&) = delete;

  ::testing::AssertionResult start(int timeout_ms = 15000);
  // SIGKILL to this daemon, reap it, then detach the dead mount
  // (fusermount3 -uz, else umount -l). Returns problems (empty = fine).
  std::vector<std::string> kill9();
  // Clean stop: fusermount3 -u (umount -l if busy and `lazy_ok`), wait for
  // exit status 0. Returns problems.
  std::vector<std::string> stop(bool lazy_ok = false);
  // Waits for the daemon to exit on its own (after a lazy unmount).
  // Returns problems (timeout, status != 0).
  std::vector<std::string> wait_exit(int timeout_ms);
  // Still running (reaps it if it died).
  bool alive();
  pid_t pid() const { return pid_; }
  int last_status() const { return status_; }
  const std::string& mnt() const { return c_.mnt; }
  const std::string& log() const { return c_.log; }

 private:
  Config c_;
  pid_t pid_ = -1;
  int status_ = 0;
};

// Error lines of a daemon log (lines containing "error" in any case or a
// sanitizer report), except those containing one of `allowed`.
std::vector<std::string> log_errors(const std::string& log_path,
                                    const std::vector<std::string>& allowed = {});

// ---------------------------------------------------------------- fixture

class RelTest : public MountTest {
 protected:
  void TearDown() override;

  // Starts an own daemon on mnt_rel with the fixture's branch syntax
  // ("rw:l1=ro+wh", names relative to root). `extra` is appended to -o.
  // With `test_defaults`, the fixture's zero cache timeouts are used.
  // Returns nullptr (after adding a failure) if it did not mount.
  OwnDaemon* start_own(const std::string& branches, const std::string& extra = "",
                       bool test_defaults = true, rlim_t nofile = 0,
                       const std::string& mnt_rel = "mnt");
  // Stops it cleanly and checks exit status and log (failures added).
  void stop_own(OwnDaemon* d, bool lazy_ok = false);
  // Log lines with these substrings are not errors.
  void allow_own_log(const std::string& s) { own_allowed_.push_back(s); }
  // Checks the log of `d` now (failures added for error lines).
  void check_own_log(const OwnDaemon& d);

  // mount -t tmpfs -o opts tmpfs <root>/rel; unmounted in TearDown.
  ::testing::AssertionResult mount_tmpfs(const std::string& rel, const std::string& opts);
  void umount_tmpfs(const std::string& rel);
  // Runs at TearDown (before anything is unmounted/removed), LIFO.
  void on_teardown(std::function<void()> f) { cleanups_.push_back(std::move(f)); }

  std::vector<std::unique_ptr<OwnDaemon>> own_;
  std::vector<std::string> own_allowed_;
  std::vector<std::string> tmpfs_;
  std::vector<std::function<void()>> cleanups_;
  int own_seq_ = 0;
};

}  // namespace aufs::rel
