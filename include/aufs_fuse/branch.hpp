// SPDX-License-Identifier: GPL-2.0-or-later
// Branches: one member directory each, opened once at mount. A BranchSet is
// an immutable snapshot; requests hold a shared_ptr to it for their whole
// duration, so a future branch change can publish a new set safely.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "aufs_fuse/branch_lock.hpp"
#include "aufs_fuse/options.hpp"
#include "aufs_fuse/unique_fd.hpp"

namespace aufs {

struct Branch {
  uint32_t id = 0;     // stable branch id (brid), never reused in a mount
  BranchSpec spec;     // absolute path + permission
  UniqueFd root;       // O_PATH|O_DIRECTORY of the branch root
  dev_t dev = 0;
  ino_t root_ino = 0;
  uint64_t seed = 0;   // inode-number seed, from the branch path
  bool base_ok = false;  // .wh..wh.aufs is a regular file whiteouts can link to
  // udba=notify: why inotify cannot cover this branch (its file system does
  // not report changes made elsewhere), or null.
  const char* unwatchable = nullptr;
  BranchLockPtr lock;    // held while the mount writes the branch (branch_lock.hpp)
  bool writable() const { return spec.writable(); }
  bool wh_able() const { return spec.wh_able(); }
};

struct BranchSet {
  uint64_t generation = 0;
  std::vector<std::shared_ptr<Branch>> br;
  size_t size() const { return br.size(); }
  const Branch& operator[](size_t i) const { return *br[i]; }
};

using BranchSetPtr = std::shared_ptr<const BranchSet>;

}  // namespace aufs
