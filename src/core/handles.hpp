// SPDX-License-Identifier: GPL-2.0-or-later
// Open files: handles, their registration on the node, and counts per
// branch (a branch with open files cannot be removed or made read-only).
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "aufs_fuse/handle.hpp"

namespace aufs::core {

// The kernel's open flags carry internal bits (e.g. __FMODE_EXEC for an
// execve) that openat2 rejects with EINVAL: pass on only the flags that
// mean something for the backing file.
int pass_flags(int flags);

class OpenFiles {
 public:
  // A handle for fd (on branch brid), registered on n. Keeps the kernel's
  // page cache (keep_cache) when the file is as the last close left it.
  // st: fd's attributes if the caller has just read them (saves an fstat).
  std::unique_ptr<FileHandle> open(const NodePtr& n, UniqueFd fd, int flags, uint32_t brid,
                                   const struct stat* st = nullptr);
  void release(std::unique_ptr<FileHandle> fh);
  // After a copy-up, readers that opened the lower file read the copy from
  // their next call on (AUFS revalidates open files the same way). Caller
  // holds n->mu. dirfd AT_FDCWD: name is a /proc/self/fd path.
  void repoint_readers(const NodePtr& n, int dirfd, const std::string& name, uint32_t brid);
  size_t count() const;
  // Files open on branch brid (writers_only: open for writing).
  bool busy(uint32_t brid, bool writers_only) const;

 private:
  void track(uint32_t brid, bool writer, int delta);
  mutable std::mutex mu_;
  std::unordered_map<uint32_t, std::pair<int, int>> by_branch_;  // (all, writers); mu_
};

}  // namespace aufs::core
