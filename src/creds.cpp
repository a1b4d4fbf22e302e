#include "aufs_fuse/creds.hpp"

#include <sys/syscall.h>
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

}  // namespace aufs
