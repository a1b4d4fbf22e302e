// SPDX-License-Identifier: GPL-2.0-or-later
// Per-thread credentials. setfsuid/setfsgid/setgroups through raw syscalls
// change only the calling thread (glibc's wrappers change every thread).
#pragma once
#include <sys/types.h>

#include <sys/stat.h>

#include <functional>
#include <vector>

namespace aufs {

struct Ctx {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  mode_t umask = 0;  // sent by the kernel only when it leaves umask to us (acl)
  std::vector<gid_t> groups;  // supplementary groups of the caller
  bool have_groups = false;
  // Fetches the supplementary groups on demand (FUSE: /proc lookup); unset
  // means `groups` is all there is.
  std::function<std::vector<gid_t>()> fetch_groups;
};

// Would the kernel grant `mask` (R_OK|W_OK|X_OK) on an inode with these
// attributes to ctx? Generic POSIX mode check (no ACLs); root passes except
// for execute on files without any x bit.
bool may_access(const struct stat& st, int mask, const Ctx& ctx);

// While alive, file system calls of this thread act as ctx's user. A no-op
// when the daemon is not root (it then cannot act as anyone else).
class CredsGuard {
 public:
  explicit CredsGuard(const Ctx& ctx);
  ~CredsGuard();
  CredsGuard(const CredsGuard&) = delete;
  CredsGuard& operator=(const CredsGuard&) = delete;

 private:
  bool active_ = false;
};

bool daemon_is_root();

}  // namespace aufs
