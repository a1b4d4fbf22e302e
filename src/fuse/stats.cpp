// SPDX-License-Identifier: GPL-2.0-or-later
// Request counts per FUSE opcode (see stats.hpp).
#include "fuse/stats.hpp"

#include <nlohmann/json.hpp>

namespace aufs {

const char* op_name(Op op) {
  static constexpr const char* kNames[] = {
      "init", "lookup", "forget", "batch_forget", "getattr", "setattr", "readlink", "mknod",
      "mkdir", "symlink", "link", "unlink", "rmdir", "rename", "open", "create", "read", "write",
      "flush", "release", "fsync", "fallocate", "copy_file_range", "lseek", "opendir", "readdir",
      "readdirplus", "releasedir", "fsyncdir", "statfs", "getxattr", "listxattr", "setxattr",
      "removexattr", "access"};
  static_assert(std::size(kNames) == static_cast<size_t>(Op::kCount));
  return kNames[static_cast<size_t>(op)];
}

std::string RequestStats::json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (size_t i = 0; i < n_.size(); ++i)
    j[op_name(static_cast<Op>(i))] = n_[i].load(std::memory_order_relaxed);
  return j.dump();
}

void RequestStats::reset() {
  for (auto& c : n_) c.store(0, std::memory_order_relaxed);
}

}  // namespace aufs
