// Helpers without mount state (see util.hpp).
#include "core/util.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aufs_fuse/sys.hpp"
#include "aufs_fuse/whiteout.hpp"

namespace aufs::core {

bool absent(int e) { return e == ENOENT || e == ENOTDIR || e == ELOOP || e == ENAMETOOLONG; }

bool recent(const struct timespec& t) {
  struct timespec now;
  ::clock_gettime(CLOCK_REALTIME, &now);
  int64_t age_ns = (now.tv_sec - t.tv_sec) * 1000000000LL + (now.tv_nsec - t.tv_nsec);
  return age_ns < 50'000'000;
}

KeepTimes::KeepTimes(int dirfd) : fd_(dirfd) {
  struct stat st;
  if (::fstatat(fd_, "", &st, AT_EMPTY_PATH) == 0) {
    ts_[0] = st.st_atim;
    ts_[1] = st.st_mtim;
    ok_ = true;
  }
}

KeepTimes::~KeepTimes() {
  if (ok_) ::utimensat(AT_FDCWD, sys::proc_fd_path(fd_).c_str(), ts_, 0);
}

Result<ParentFd> open_parent_of(int root, const std::string& rel) {
  auto [prel, leaf] = sys::split_parent(rel);
  AUFS_ASSIGN_OR_RETURN(auto fd, sys::open_beneath(root, prel, O_PATH | O_DIRECTORY));
  return ParentFd{std::move(fd), std::move(leaf)};
}

Status create_readonly_file(int dirfd, const std::string& name) {
  int fd = ::openat(dirfd, name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0444);
  if (fd < 0) return last_errno();
  ::fchmod(fd, 0444);  // whatever the umask took away
  ::close(fd);
  return {};
}

Status remove_dir_tree_meta(int parentfd, const std::string& name) {
  AUFS_ASSIGN_OR_RETURN(auto dfd, sys::open_beneath(parentfd, name, O_PATH | O_DIRECTORY));
  AUFS_ASSIGN_OR_RETURN(auto ents, sys::read_dir(dfd.get()));
  for (auto& e : ents)
    if (!wh::is_whiteout_name(e.name)) return Errno{ENOTEMPTY};
  for (auto& e : ents) {
    if (::unlinkat(dfd.get(), e.name.c_str(), 0) == 0) continue;
    if (errno == EISDIR || errno == EPERM) {
      AUFS_TRY(remove_dir_tree_meta(dfd.get(), e.name));
      continue;
    }
    if (errno != ENOENT) return last_errno();
  }
  if (::unlinkat(parentfd, name.c_str(), AT_REMOVEDIR) < 0) return last_errno();
  return {};
}

}  // namespace aufs::core
