// SPDX-License-Identifier: GPL-2.0-or-later
// Helpers for the container test tier: root file systems made from Debian
// packages, running scripts inside a fresh mount + PID namespace, and tree
// scans that compare two views of a root file system.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mount_fixture.hpp"

namespace aufs::ct {

using mt::RunResult;

// Full path of `prog` found in PATH (or /usr/sbin, /sbin), or nullopt.
std::optional<std::string> which(const std::string& prog);

// Fills `dir` with a busybox root file system: /bin/busybox from Debian's
// busybox-static and the links of `busybox --install -s` (run chrooted, so
// they point to /bin/busybox), plus /etc/{passwd,group,shadow,motd}, /tmp
// (1777), /proc (empty mount point), /dev/null and /dev/zero. Returns "" or
// what went wrong.
std::string make_busybox_root(const std::string& dir);

// Runs `script` with /bin/sh inside `unshare --mount --pid --fork
// --kill-child`: mounts made by the script live in a private mount namespace
// that dies with it, as do all processes it started (PID namespace).
RunResult in_namespace(const std::string& script, int timeout_ms = 120000);

// Shell text that starts the daemon `bin` in the foreground (in the
// background of the script) on `mnt` with `opts`, logging to `log`, and
// waits for the mount; sets $DPID. Exits the script with 90 if no mount.
std::string sh_start_daemon(const std::string& bin, const std::string& opts,
                            const std::string& mnt, const std::string& log);
// Shell text that unmounts `mnt` and waits for $DPID; sets $DRC to its exit
// status.
std::string sh_stop_daemon(const std::string& mnt);

// Lines of a daemon log that report an error (case-insensitive "error").
std::vector<std::string> log_errors(const std::string& log_path);

// One entry of a scanned tree.
struct Entry {
  char type = '?';  // f d l c b p s
  mode_t mode = 0;  // permission bits incl. suid/sgid/sticky
  uid_t uid = 0;
  gid_t gid = 0;
  off_t size = 0;         // not for directories
  std::string content;    // sha-like digest of a regular file's bytes
  std::string target;     // symlink target
  dev_t rdev = 0;         // device nodes
  std::pair<dev_t, ino_t> id{};  // (st_dev, st_ino)
  nlink_t nlink = 0;
};
// Every name below dir (relative, no "."), never following symlinks or
// crossing mount points. Names in `skip` (relative, with everything below)
// are left out.
std::map<std::string, Entry> scan_tree(const std::string& dir,
                                       const std::vector<std::string>& skip = {});
// Hard-link groups of a scan: sorted lists of the names (of non-directories)
// that share one (st_dev, st_ino), only groups of two or more.
std::vector<std::vector<std::string>> link_groups(const std::map<std::string, Entry>& tree);
// Differences between two scans, one line each ("" = equal). Compares names,
// types, modes, owners, sizes, contents, symlink targets and device numbers.
std::string diff_trees(const std::map<std::string, Entry>& expected,
                       const std::map<std::string, Entry>& actual);

// Peak RSS (VmHWM, kB), current RSS (VmRSS, kB) and open fds of a process;
// -1 when unreadable.
struct ProcUsage {
  long hwm_kb = -1, rss_kb = -1, fds = -1;
};
ProcUsage proc_usage(pid_t pid);

// Processes (pid, what) whose cwd, root, open fds or mapped files lie below
// `dir`: what keeps a mount busy.
std::vector<std::string> holders_of(const std::string& dir);
// `umount dir`, retried for up to `timeout_ms` while it fails with EBUSY.
// Returns "" at once on success; otherwise a report of every failed try and
// the processes that held the mount (empty `still_mounted` = it went away).
std::string umount_retrying(const std::string& dir, bool& still_mounted, int timeout_ms = 10000);

// The aufs-fuse-image of this build ($AUFS_FUSE_IMAGE_BIN), "" if unset.
std::string image_tool();

// True when the environment asks for the long variants (AUFS_LONG=1).
bool long_tests();

}  // namespace aufs::ct
