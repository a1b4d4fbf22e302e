// SPDX-License-Identifier: GPL-2.0-or-later
// Whiteouts and opaque markers (see whiteout_ops.hpp).
#include "core/whiteout_ops.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "aufs_fuse/sys.hpp"
#include "core/util.hpp"

namespace aufs::core {

Status make_whiteout(Mount& m, const BranchSet& bs, int bw, int dirfd, std::string_view name) {
  const Branch& b = bs[static_cast<size_t>(bw)];
  std::string whname = name == wh::kOpaque ? std::string(name) : wh::whiteout_of(name);
  if (!b.spec.nolwh && b.base_ok) {
    auto s = sys::link_at(b.root.get(), std::string(wh::kBase), dirfd, whname);
    if (s.ok()) {
      m.counters.whiteouts++;
      return {};
    }
    if (s.err() == EEXIST) return {};
    // EMLINK, missing base, ...: fall back to a plain whiteout file.
  }
  auto s = create_readonly_file(dirfd, whname);
  if (!s.ok()) return s.err() == EEXIST ? Status{} : s;
  m.counters.whiteouts++;
  return {};
}

Status make_opaque(Mount& m, const BranchSet& bs, int bw, int dirfd) {
  return make_whiteout(m, bs, bw, dirfd, wh::kOpaque);
}

Status remove_whiteout_if_any(int dirfd, std::string_view name, bool* removed) {
  std::string whname = wh::whiteout_of(name);
  auto s = sys::unlink_at(dirfd, whname, 0);
  if (s.ok()) {
    if (removed) *removed = true;
    return {};
  }
  return s.err() == ENOENT ? Status{} : s;
}

}  // namespace aufs::core
