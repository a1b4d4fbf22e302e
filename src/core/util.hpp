// SPDX-License-Identifier: GPL-2.0-or-later
// Small helpers of the core's modules, with no mount state (overlayfs's
// util.c).
#pragma once
#include <sys/stat.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "aufs_fuse/result.hpp"
#include "aufs_fuse/unique_fd.hpp"

namespace aufs::core {

// A name that does not lead anywhere (as opposed to an I/O error).
bool absent(int e);

// lstat of an entry the request has just made or linked, for its reply: the
// change is done, so a failed read (ENOMEM, a transient EIO) is tried again
// another way (O_PATH open and fstat) before the request has to fail.
Result<struct stat> stat_made(int dirfd, const std::string& name);

// File times advance in clock ticks: a change made within the same tick as
// the stamp would leave it equal. A stamp that recent is not trusted (the
// "racy git" rule).
bool recent(const struct timespec& t);

// The daemon's descriptor limit (RLIMIT_NOFILE, soft), or `otherwise` when
// unlimited or unknown: the budget the fd caches share.
long fd_limit(long otherwise);

// The user's changes of directories (creates, removals, renames, links, a
// directory's setattr) in flight and done, mount-wide: KeepTimes must not
// put back times such a change has set. A thread's own changes (an internal
// step inside the user's unlink, say) do not count.
class DirChanges {
 public:
  struct Seen {
    uint64_t gen;
    bool others_busy;
  };
  Seen seen() const;
  // Whether a change of another request began or ended since `s`, or is
  // still in flight.
  bool changed_since(const Seen& s) const;

 private:
  friend class DirChange;
  std::atomic<uint64_t> gen_{0}, busy_{0};
};

// RAII: one user change of a directory in progress (see DirChanges).
class DirChange {
 public:
  explicit DirChange(DirChanges& c);
  ~DirChange();
  DirChange(const DirChange&) = delete;
  DirChange& operator=(const DirChange&) = delete;

 private:
  DirChanges& c_;
};

// Restores a directory's atime/mtime when it goes out of scope, so internal
// steps (copy-up, temporary names) do not change the visible parent
// timestamps. Never around the user's own change (unlink's whiteout too):
// POSIX has that update the parent's mtime. ctime cannot be restored.
// A user's change racing the step (in the same directory, or any: the
// count is mount-wide) wins: the times are then left as they are, or set
// to now when it came between the check and the restore.
class KeepTimes {
 public:
  KeepTimes(int dirfd, const DirChanges& changes);
  ~KeepTimes();
  KeepTimes(const KeepTimes&) = delete;
  KeepTimes& operator=(const KeepTimes&) = delete;

 private:
  int fd_;
  const DirChanges& changes_;
  DirChanges::Seen seen_;
  bool ok_ = false;
  struct timespec ts_[2] {};
};

// The parent directory of `rel` under `root` (O_PATH), and the last name.
struct ParentFd {
  UniqueFd fd;
  std::string leaf;
  int get() const { return fd.get(); }
};
Result<ParentFd> open_parent_of(int root, const std::string& rel);

// Creates an empty mode-0444 file (whiteouts, the whiteout base); EEXIST
// if the name is taken.
Status create_readonly_file(int dirfd, const std::string& name);

// Deletes a directory that holds only AUFS metadata (whiteouts, opaque
// marker, leftover temporaries). Refuses (ENOTEMPTY) if it finds anything
// else, which means the directory gained an entry meanwhile.
Status remove_dir_tree_meta(int parentfd, const std::string& name);

}  // namespace aufs::core
