// SPDX-License-Identifier: GPL-2.0-or-later
// Helpers without mount state (see util.hpp).
#include "core/util.hpp"

#include <sys/resource.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aufs_fuse/sys.hpp"
#include "aufs_fuse/whiteout.hpp"

namespace aufs::core {

bool absent(int e) { return e == ENOENT || e == ENOTDIR || e == ELOOP || e == ENAMETOOLONG; }

Result<struct stat> stat_made(int dirfd, const std::string& name) {
  auto st = sys::lstat_at(dirfd, name);
  if (st.ok() || absent(st.err())) return st;
  auto fd = sys::open_at(dirfd, name, O_PATH | O_NOFOLLOW);
  if (!fd.ok()) return st;
  return sys::fstat_fd(fd->get());
}

bool recent(const struct timespec& t) {
  struct timespec now;
  ::clock_gettime(CLOCK_REALTIME, &now);
  int64_t age_ns = (now.tv_sec - t.tv_sec) * 1000000000LL + (now.tv_nsec - t.tv_nsec);
  return age_ns < 50'000'000;
}

long fd_limit(long otherwise) {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    return static_cast<long>(rl.rlim_cur);
  return otherwise;
}

namespace {
// DirChange scopes of this thread (a request runs on one thread).
thread_local uint64_t own_dir_changes = 0;
}  // namespace

DirChanges::Seen DirChanges::seen() const {
  // gen first: a change ending between the two reads shows in busy_ or gen_.
  uint64_t g = gen_.load();
  return {g, busy_.load() > own_dir_changes};
}

bool DirChanges::changed_since(const Seen& s) const {
  return s.others_busy || busy_.load() > own_dir_changes || gen_.load() != s.gen;
}

DirChange::DirChange(DirChanges& c) : c_(c) {
  c_.busy_++;
  own_dir_changes++;
}

DirChange::~DirChange() {
  c_.gen_++;
  c_.busy_--;
  own_dir_changes--;
}

KeepTimes::KeepTimes(int dirfd, const DirChanges& changes) : fd_(dirfd), changes_(changes) {
  seen_ = changes_.seen();
  if (auto st = sys::fstat_fd(fd_); st.ok()) {
    ts_[0] = st->st_atim;
    ts_[1] = st->st_mtim;
    ok_ = true;
  }
}

KeepTimes::~KeepTimes() {
  // A user's change since the times were read may have set them: keep its.
  if (!ok_ || changes_.changed_since(seen_)) return;
  (void)sys::utimens_at(fd_, "", ts_);
  // One that began meanwhile may have changed the directory before the
  // restore took its times back: it changed it now.
  if (changes_.changed_since(seen_)) {
    struct timespec now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    (void)sys::utimens_at(fd_, "", now);
  }
}

Result<ParentFd> open_parent_of(int root, const std::string& rel) {
  auto [prel, leaf] = sys::split_parent(rel);
  AUFS_ASSIGN_OR_RETURN(auto fd, sys::open_beneath(root, prel, O_PATH | O_DIRECTORY));
  return ParentFd{std::move(fd), std::move(leaf)};
}

Status create_readonly_file(int dirfd, const std::string& name) {
  AUFS_ASSIGN_OR_RETURN(auto fd, sys::open_at(dirfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, 0444));
  (void)sys::chmod_fd(fd.get(), 0444);  // whatever the umask took away
  return {};
}

Status remove_dir_tree_meta(int parentfd, const std::string& name) {
  AUFS_ASSIGN_OR_RETURN(auto dfd, sys::open_beneath(parentfd, name, O_PATH | O_DIRECTORY));
  AUFS_ASSIGN_OR_RETURN(auto ents, sys::read_dir(dfd.get()));
  for (auto& e : ents)
    if (!wh::is_whiteout_name(e.name)) return Errno{ENOTEMPTY};
  for (auto& e : ents) {
    auto s = sys::unlink_at(dfd.get(), e.name, 0);
    if (s.ok()) continue;
    if (s.err() == EISDIR || s.err() == EPERM) {
      AUFS_TRY(remove_dir_tree_meta(dfd.get(), e.name));
      continue;
    }
    if (s.err() != ENOENT) return s;
  }
  return sys::unlink_at(parentfd, name, AT_REMOVEDIR);
}

}  // namespace aufs::core
