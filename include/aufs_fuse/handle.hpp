// SPDX-License-Identifier: GPL-2.0-or-later
// Open files and directories of the union, and removed files the kernel may
// still reach by node.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "aufs_fuse/core_types.hpp"
#include "aufs_fuse/node.hpp"
#include "aufs_fuse/unique_fd.hpp"
#include "aufs_fuse/vdir.hpp"

namespace aufs {

// An open file's branch fd, shared by the requests using it: a copy-up
// swaps a reader's fd while a read may still be splicing from the old one,
// which must stay open until that read ends (a closed number can be reused
// by any other open at once).
using SharedFd = std::shared_ptr<const UniqueFd>;

// An open file. `fd` is the backing file; read-only handles are re-pointed
// to the copy when their file is copied up (OpenFiles::repoint_readers).
struct FileHandle {
  NodePtr node;
  uint32_t brid = 0;  // branch the fd lives on (for del/mod EBUSY)
  SharedFd fd;        // guarded by mu; never null once opened
  int raw_fd() const { return fd ? fd->get() : -1; }
  int flags = 0;
  uint64_t data_gen = 0;
  bool keep_cache = false;  // the kernel's cached pages are still valid
  // A writer whose close(2) on the branch can report nothing (its file
  // system has no flush operation): the kernel need not send FLUSH.
  bool quiet_close = false;
  // The kernel does this handle's I/O on the branch file itself (FUSE
  // passthrough), bypassing its page cache of the union file.
  bool kernel_uncached = false;
  // Passthrough and open for writing: counted by WriteGate::pin().
  bool pinned_writer = false;
  std::mutex mu;  // guards fd/data_gen swaps
};

// A removed file the kernel may still ask about by node: an open that raced
// with the removal, an open of /proc/PID/fd/N, fchmod(2) of an open file.
// On a local filesystem those reach the inode; here an O_PATH descriptor of
// the branch file keeps it reachable until the kernel forgets the node.
struct Orphan {
  Orphan(UniqueFd f, uint32_t b) : fd(std::move(f)), brid(b) { live.fetch_add(1); }
  ~Orphan() { live.fetch_sub(1); }
  Orphan(const Orphan&) = delete;
  Orphan& operator=(const Orphan&) = delete;
  UniqueFd fd;    // O_PATH, or the read-write copy made by a change
  uint32_t brid;  // branch holding it
  static inline std::atomic<long> live{0};  // descriptors held, all mounts
};

struct DirHandle {
  NodePtr node;
  Listing entries;  // snapshot taken at opendir / rewind
  uint64_t listing_seq = 0;  // the rdcache listing served (0: not cached)
  uint64_t gen = 0;          // the node's dir_gen when the listing was taken
  uint64_t bgen = 0;         // and the branches' generation
  bool keep_cache = false;   // the kernel's cached listing is this one
  bool started = false;         // a read at offset 0 after this rewinds
  std::mutex mu;
};

// A created and opened file (FUSE's CREATE).
struct Created {
  Entry entry;
  std::unique_ptr<FileHandle> fh;
};

}  // namespace aufs
