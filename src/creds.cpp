// SPDX-License-Identifier: GPL-2.0-or-later
#include "aufs_fuse/creds.hpp"

#include <sys/syscall.h>
#include <fcntl.h>
#include <unistd.h>

namespace aufs {

bool daemon_is_root() {
  static const bool root = ::geteuid() == 0;
  return root;
}

CredsGuard::CredsGuard(const Ctx& ctx) {
  if (!daemon_is_root() || (ctx.uid == 0 && ctx.gid == 0)) return;
  active_ = true;
  if (ctx.have_groups)
    ::syscall(SYS_setgroups, ctx.groups.size(), ctx.groups.data());
  else
    ::syscall(SYS_setgroups, 0, nullptr);
  ::syscall(SYS_setfsgid, ctx.gid);
  ::syscall(SYS_setfsuid, ctx.uid);
}

CredsGuard::~CredsGuard() {
  if (!active_) return;
  ::syscall(SYS_setfsuid, 0);
  ::syscall(SYS_setfsgid, 0);
  ::syscall(SYS_setgroups, 0, nullptr);
}

bool may_access(const struct stat& st, int mask, const Ctx& ctx) {
  mode_t m = st.st_mode;
  if (ctx.uid == 0) return !(mask & X_OK) || S_ISDIR(m) || (m & 0111);
  mode_t bits;
  if (st.st_uid == ctx.uid) {
    bits = (m >> 6) & 7;
  } else {
    bool in_group = st.st_gid == ctx.gid;
    if (!in_group) {
      // Other bits may already settle it without asking for the groups.
      mode_t grp = (m >> 3) & 7, oth = m & 7;
      if ((grp & mask) == (oth & mask)) return (oth & mask) == static_cast<mode_t>(mask);
      std::vector<gid_t> g = ctx.have_groups ? ctx.groups
                             : ctx.fetch_groups ? ctx.fetch_groups() : std::vector<gid_t>{};
      for (gid_t x : g)
        if (x == st.st_gid) in_group = true;
    }
    bits = in_group ? (m >> 3) & 7 : m & 7;
  }
  return (bits & mask) == static_cast<mode_t>(mask);
}

}  // namespace aufs
