// Merged directory listing (AUFS "vdir"): pure merge of per-branch listings.
#pragma once
#include <sys/types.h>

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

// Merges listings given top branch first. Never returns ".wh.*" names;
// de-duplicates (first occurrence wins); names whited out on a higher branch
// are dropped. Names longer than 242 bytes are listed with DT_UNKNOWN.
std::vector<VEntry> merge_listings(const std::vector<BranchListing>& layers);

}  // namespace aufs
