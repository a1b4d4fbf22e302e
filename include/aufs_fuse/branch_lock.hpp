// SPDX-License-Identifier: GPL-2.0-or-later
// One writer per branch: a mount holds an exclusive flock on the root of each
// branch it writes, for as long as it writes it. Two daemons writing one
// branch (each running its repair pass on the other's live entries) is
// refused, as kernel overlayfs refuses an upper directory in use; a killed
// daemon's lock goes with its file descriptors. aufs-fuse-check --fix takes
// the same lock. A branch given as rw+shared takes a shared lock: mounts
// that all say so may write it together (at their own risk, aufs-fuse(8)).
#pragma once
#include <memory>
#include <string>

#include "aufs_fuse/unique_fd.hpp"

namespace aufs {

struct BranchLock {
  UniqueFd fd;          // the branch root, opened for the lock
  bool shared = false;  // rw+shared
  // A shared lock taken while no other mount held one is exclusive until
  // share(): the repair pass runs on a branch nobody else writes.
  bool alone = false;
  // The last writer released the branch cleanly, so no interrupted run can
  // have left anything in it: the mark was there when it was locked.
  bool was_clean = false;
  // Set by whoever checked the branch (or trusted was_clean): only such a
  // branch is marked clean when it is released.
  bool checked = false;
  void share();
  // Before the first write: takes the mark off, durably (fsync of the
  // root), so a run killed from now on leaves the branch unmarked. False
  // (errno set) if the mark stays.
  bool begin_writing();
  // At a clean stop, nothing of this mount's left to finish: records that
  // the branch holds no leftovers (exclusive, checked locks only; false if
  // not marked). `sync`: the mark is made durable (fsync of the root).
  bool mark_clean(bool sync);
};
using BranchLockPtr = std::shared_ptr<BranchLock>;

// Locks the branch directory `path` (reached through `root_fd`, an open fd
// of it, when given: the path may lead to the union mounted over it); null
// when it cannot, with `why` set to one line naming who holds it.
// With `shared`, a shared lock (exclusive while alone, see BranchLock).
BranchLockPtr lock_branch(const std::string& path, std::string& why, int root_fd = -1,
                          bool shared = false);

// Who holds the lock of the branch directory `path`: "the aufs-fuse mount on
// MNT (pid N)", "pid N (COMM)", or "another process".
std::string branch_lock_holder(const std::string& path);

}  // namespace aufs
