// SPDX-License-Identifier: GPL-2.0-or-later
// Merged directory listing (AUFS "vdir"): pure merge of per-branch listings.
#pragma once
#include <sys/types.h>
#include <time.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "aufs_fuse/sys.hpp"

namespace aufs {

struct BranchListing {
  int branch = 0;            // branch index
  bool wh_able = false;      // whiteouts here hide lower names
  bool own_wh_hides = true;  // a whiteout also hides its own branch's entry
  std::vector<sys::RawDirent> entries;
};

struct VEntry {
  std::string name;
  unsigned char type = 0;  // DT_*
  int branch = 0;          // branch supplying the entry (its top)
  ino_t branch_ino = 0;
  uint64_t ino = 0;        // union inode number (d_ino), filled by the caller
};

// A merged listing, immutable once built, shared by the handles that read
// it and by the rdcache.
class Listing {
 public:
  Listing() = default;
  explicit Listing(std::vector<VEntry> v)
      : p_(std::make_shared<const std::vector<VEntry>>(std::move(v))) {}
  size_t size() const { return p_ ? p_->size() : 0; }
  const VEntry& operator[](size_t i) const { return (*p_)[i]; }
  const VEntry* begin() const { return p_ ? p_->data() : nullptr; }
  const VEntry* end() const { return begin() + size(); }

 private:
  std::shared_ptr<const std::vector<VEntry>> p_;
};

// What the rdcache holds in all: its budget counts these.
struct VDirLive {
  std::atomic<size_t> entries{0}, caches{0};
};

// A directory's merged listing kept between opens (rdcache).
struct VDirCache {
  VDirCache() = default;
  VDirCache(const VDirCache&) = delete;
  VDirCache& operator=(const VDirCache&) = delete;
  ~VDirCache() {
    if (!live) return;
    live->entries.fetch_sub(entries.size());
    live->caches.fetch_sub(1);
  }
  Listing entries;
  std::shared_ptr<VDirLive> live;  // set once counted
  uint64_t seq = 0;                // names this cache in the budget's queue
  std::vector<struct timespec> stamps;  // mtime per layer when built
  std::vector<int> layers;
  uint64_t bgen = 0, gen = 0;
  int64_t at = 0;  // CLOCK_MONOTONIC seconds
};

// Merges listings given top branch first. Never returns ".wh.*" names;
// de-duplicates (first occurrence wins); names whited out on a higher branch
// are dropped. Names longer than 242 bytes are listed with DT_UNKNOWN.
// shwh: also list whiteouts and opaque markers (never AUFS metadata).
std::vector<VEntry> merge_listings(const std::vector<BranchListing>& layers, bool shwh = false);

}  // namespace aufs
