// SPDX-License-Identifier: GPL-2.0-or-later
// Values the core's operations take and return.
#pragma once
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "aufs_fuse/node.hpp"

namespace aufs {

struct Entry {
  NodeId id = 0;
  struct stat attr {};
  // udba=notify: the directory holding the entry is not watched (no inotify
  // watch could be added), so the kernel must not cache it for long.
  bool unwatched = false;
};

struct SetAttrIn {
  int valid = 0;  // SET_* bits below
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  off_t size = 0;
  struct timespec atime {}, mtime {};
  enum : int {
    kMode = 1, kUid = 2, kGid = 4, kSize = 8, kAtime = 16, kMtime = 32,
    kAtimeNow = 64, kMtimeNow = 128, kCtime = 256,
  };
};

struct Counters {
  std::atomic<uint64_t> copyups{0}, copyup_bytes{0}, whiteouts{0}, branch_changes{0};
};

// Counts kept outside the core (the FUSE layer's requests per opcode), shown
// by the control file: a JSON object, and setting them to zero. Both are
// called from request threads.
struct StatsSource {
  std::function<std::string()> json;
  std::function<void()> reset;
};

// Tests only: called at fixed points of a request, with no lock held, so a
// test can interleave requests deterministically. Points: "make_entry" (a
// name was resolved, the node not updated yet), "copied_up" (a change made
// sure of its copy-up, not located yet), "unlink" (the name to remove was
// resolved, nothing changed yet), "unlinked" (removed, nodes not updated).
using TestHook = std::function<void(std::string_view point, std::string_view name)>;

}  // namespace aufs
