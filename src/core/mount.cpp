// SPDX-License-Identifier: GPL-2.0-or-later
// Mount-wide rules that need no other module (see mount.hpp).
#include "core/mount.hpp"

#include <unistd.h>

#include "aufs_fuse/control.hpp"

namespace aufs::core {

Status check_name(const Mount& m, std::string_view name, bool lookup) {
  // shwh lets whiteouts be looked at (read-only use), never created.
  // (metadata such as .wh..wh.plnk stays out of reach even then).
  bool shown = lookup && m.opts.shwh && (!wh::is_meta_name(name) || name == wh::kOpaque);
  if (int e = wh::check_user_name(name, shown); e) return Errno{e};
  if (name.find('/') != std::string_view::npos || name.empty()) return Errno{EINVAL};
  return {};
}

int first_writable(const Mount& m, const BranchSet& bs) {
  if (m.ro()) return -1;
  for (size_t i = 0; i < bs.size(); ++i)
    if (bs[i].writable()) return static_cast<int>(i);
  return -1;
}

int stale_errno(const Mount& m, const NodePtr& n) {
  return m.tree.table.by_ino(n->ino) == n ? ESTALE : ENOENT;
}

Entry control_entry(const Mount& m) {
  Entry e;
  e.id = kControlId;
  e.attr.st_ino = kControlId;
  e.attr.st_mode = S_IFREG | 0644;
  e.attr.st_nlink = 1;
  e.attr.st_uid = m.owner;
  e.attr.st_gid = ::getegid();
  e.attr.st_atim = e.attr.st_mtim = e.attr.st_ctim = m.started;
  e.attr.st_blksize = 4096;
  return e;
}

}  // namespace aufs::core
