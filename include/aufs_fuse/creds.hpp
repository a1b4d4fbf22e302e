// Per-thread credentials. setfsuid/setfsgid/setgroups through raw syscalls
// change only the calling thread (glibc's wrappers change every thread).
#pragma once
#include <sys/types.h>

#include <vector>

namespace aufs {

struct Ctx {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  std::vector<gid_t> groups;  // supplementary groups of the caller
  bool have_groups = false;
};

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
