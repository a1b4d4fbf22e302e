// SPDX-License-Identifier: GPL-2.0-or-later
#include "aufs_fuse/vdir.hpp"

#include <dirent.h>

#include <unordered_set>

#include "aufs_fuse/whiteout.hpp"

namespace aufs {

std::vector<VEntry> merge_listings(const std::vector<BranchListing>& layers, bool shwh) {
  std::vector<VEntry> out;
  std::unordered_set<std::string> seen;
  std::unordered_set<std::string> hidden;  // whited out by a higher branch
  for (size_t li = 0; li < layers.size(); ++li) {
    const BranchListing& l = layers[li];
    // Whiteouts on the bottom-most examined branch hide nothing below it.
    bool wh_here = l.wh_able && li + 1 < layers.size();
    std::unordered_set<std::string> own;
    if (l.wh_able) {
      for (const auto& e : l.entries) {
        auto t = wh::whiteout_target(e.name);
        if (!t.empty()) own.emplace(t);
      }
    }
    for (const auto& e : l.entries) {
      if (wh::is_whiteout_name(e.name)) {
        // shwh: whiteouts and opaque markers are shown (for flattening
        // layers); bases, pseudo-links and temporaries never are.
        bool show = shwh && (!wh::is_meta_name(e.name) || e.name == wh::kOpaque);
        if (show && !seen.count(e.name)) {
          seen.insert(e.name);
          out.push_back({e.name, e.type, l.branch, e.ino});
        }
        continue;
      }
      if (seen.count(e.name) || hidden.count(e.name)) continue;
      if (l.own_wh_hides && own.count(e.name)) continue;
      seen.insert(e.name);
      unsigned char t = e.name.size() > wh::kMaxNameLen ? static_cast<unsigned char>(DT_UNKNOWN) : e.type;
      out.push_back({e.name, t, l.branch, e.ino});
    }
    if (wh_here)
      for (auto& n : own) hidden.insert(n);
  }
  return out;
}

}  // namespace aufs
