// SPDX-License-Identifier: GPL-2.0-or-later
// Request counts per FUSE opcode: one relaxed atomic increment per request,
// read through the control file (aufsctl stats). The wrapper counted<>()
// wraps an adapter callback, so the callbacks themselves stay as they are.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace aufs {

// The requests the adapter answers, in the order of their JSON keys. (The
// ones libfuse answers itself, e.g. ENOSYS for an op we lack, are not seen.)
enum class Op : uint8_t {
  Init, Lookup, Forget, BatchForget, Getattr, Setattr, Readlink, Mknod, Mkdir, Symlink, Link,
  Unlink, Rmdir, Rename, Open, Create, Read, Write, Flush, Release, Fsync, Fallocate,
  CopyFileRange, Lseek, Opendir, Readdir, Readdirplus, Releasedir, Fsyncdir, Statfs, Getxattr,
  Listxattr, Setxattr, Removexattr, Access,
  kCount
};

class RequestStats {
 public:
  void count(Op op) { n_[static_cast<size_t>(op)].fetch_add(1, std::memory_order_relaxed); }
  uint64_t get(Op op) const { return n_[static_cast<size_t>(op)].load(std::memory_order_relaxed); }
  // {"lookup": N, ...}: every opcode, zeros included.
  std::string json() const;
  void reset();

 private:
  std::array<std::atomic<uint64_t>, static_cast<size_t>(Op::kCount)> n_{};
};

// The opcode's key in the JSON ("lookup", "batch_forget", ...).
const char* op_name(Op op);

}  // namespace aufs
