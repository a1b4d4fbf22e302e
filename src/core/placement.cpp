// SPDX-License-Identifier: GPL-2.0-or-later
// Branch choice (see placement.hpp).
#include "core/placement.hpp"

#include <sys/statvfs.h>
#include <time.h>

namespace aufs::core {

namespace {
BranchFacts facts(const Mount& m, const BranchSet& bs, const std::vector<int>& parent_layers,
                         int parent_opaque, int name_whiteout) {
  BranchFacts f;
  f.writable.resize(bs.size());
  f.has_parent.resize(bs.size());
  for (size_t i = 0; i < bs.size(); ++i) f.writable[i] = bs[i].writable() && !m.ro();
  for (int b : parent_layers) f.has_parent[static_cast<size_t>(b)] = true;
  f.parent_top = parent_layers.empty() ? static_cast<int>(bs.size()) : parent_layers[0];
  f.shadow = name_whiteout;
  if (parent_opaque >= 0 && (f.shadow < 0 || parent_opaque < f.shadow)) f.shadow = parent_opaque;
  f.free_bytes = [&bs](int b) -> uint64_t {
    auto v = sys::statvfs_fd(bs[static_cast<size_t>(b)].root.get());
    return v.ok() ? static_cast<uint64_t>(v->f_bavail) * v->f_frsize : 0;
  };
  return f;
}

}  // namespace

Result<int> pick_create(Mount& m, const BranchSet& bs, const Where& parent, int name_whiteout,
                               bool is_mkdir) {
  if (m.ro()) return Errno{EROFS};
  BranchFacts f = facts(m, bs, parent.layers, parent.opaque, name_whiteout);
  struct timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  std::lock_guard<std::mutex> g(m.policy_mu);
  int b = m.policy.select_create(f, is_mkdir, now.tv_sec);
  if (b < 0) return Errno{EROFS};
  return b;
}

Result<int> pick_cpup(Mount& m, const BranchSet& bs, const Where& parent, int src) {
  if (m.ro()) return Errno{EROFS};
  BranchFacts f = facts(m, bs, parent.layers, parent.opaque, -1);
  int b = m.policy.select_cpup(f, src);
  if (b < 0) return Errno{EROFS};
  return b;
}

Result<int> pick_change(Mount& m, const BranchSet& bs, const Where& parent, int top) {
  if (bs[static_cast<size_t>(top)].writable() && !m.ro()) return top;
  return pick_cpup(m, bs, parent, top);
}

}  // namespace aufs::core
