// SPDX-License-Identifier: GPL-2.0-or-later
// FUSE passthrough for open files: the kernel reads, writes and maps the
// branch file itself. Which opens may use it (AUFS semantics), and the
// kernel's rules: one backing file per inode, and an inode's opens are all
// passthrough or all cached at a time. An open that cannot follow the rules
// takes the normal path and is counted; a user never sees EBUSY or EIO.
#pragma once
#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>
#include <sys/types.h>

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>

#include "aufs_fuse/handle.hpp"
#include "aufs_fuse/options.hpp"

namespace aufs {

class Union;

class Passthrough {
 public:
  void configure(PassthroughMode mode, bool active) {
    mode_ = mode;
    active_ = active;
  }
  void set_active(bool a) { active_ = a; }
  bool enabled() const { return active_; }
  // Before the core opens: an open for writing of a file whose lower copy
  // is open through passthrough (passthrough=all) would copy it up, and the
  // kernel could not move those readers: ETXTBSY, else 0.
  int precheck(fuse_ino_t ino, int flags);
  // After the core opened fh: the backing id for the reply (0: the normal
  // path), or -errno when the kernel could serve this open neither way.
  int open(fuse_req_t req, Union& fs, fuse_ino_t ino, FileHandle& fh);
  // RELEASE of a handle (passthrough: its open reply carried a backing id).
  void release(fuse_req_t req, fuse_ino_t ino, bool passthrough);
  std::string counters_json() const;

 private:
  struct NodeState {
    int backing = 0;  // registered backing id, while pt_opens > 0
    dev_t dev = 0;
    ino_t ino = 0;
    bool lower = false;  // the backing file may still be copied up
    unsigned pt_opens = 0, cached_opens = 0;
  };
  PassthroughMode mode_ = PassthroughMode::None;
  bool active_ = false;
  std::mutex mu_;
  std::unordered_map<fuse_ino_t, NodeState> nodes_;
  // opens: served by passthrough. fallbacks: eligible, but the inode had
  // cached opens. refused: the kernel would not register the backing file.
  // ineligible: a copy-up may follow (lower file) or set-id bits on a write.
  // conflicts: could be served neither way (ETXTBSY).
  std::atomic<uint64_t> opens_{0}, fallbacks_{0}, refused_{0}, ineligible_{0}, conflicts_{0};
};

}  // namespace aufs
