// SPDX-License-Identifier: GPL-2.0-or-later
// Notifications to the kernel that its cached entries are stale (see
// adapter.hpp).
#include <cerrno>
#include <string>

#include "fuse/adapter.hpp"

namespace aufs {
namespace {

// A changed name: expired where the kernel can (its dentry stays until the
// next lookup disagrees, so a process's cwd under it is not detached),
// else invalidated.
void drop_entry(FuseContext& ctx, NodeId parent, const std::string& name) {
#if AUFS_HAVE_EXPIRE_ONLY
  if (ctx.features.active(Feature::ExpireOnly) &&
      fuse_lowlevel_notify_expire_entry(ctx.se, parent, name.c_str(), name.size()
#if AUFS_EXPIRE_ENTRY_TAKES_FLAGS
                                        , FUSE_LL_EXPIRE_ONLY
#endif
                                        ) != -ENOSYS)
    return;
#endif
  fuse_lowlevel_notify_inval_entry(ctx.se, parent, name.c_str(), name.size());
}

}  // namespace

void invalidate_all(FuseContext& ctx) {
  std::unordered_set<std::string> neg;
  {
    std::lock_guard<std::mutex> g(ctx.neg_mu);
    neg.swap(ctx.negatives);
  }
  for (auto& k : neg) {
    auto slash = k.find('/');
    NodeId parent = std::stoull(k.substr(0, slash));
    drop_entry(ctx, parent, k.substr(slash + 1));
  }
  auto names = ctx.fs->cached_names();
  for (auto& [id, parent, name] : names) {
    drop_entry(ctx, parent, name);
    fuse_lowlevel_notify_inval_inode(ctx.se, id, 0, 0);
  }
  fuse_lowlevel_notify_inval_inode(ctx.se, kRootId, 0, 0);
}

bool invalidate_entry(FuseContext& ctx, NodeId dir, const std::string& name, bool force) {
  if (!ctx.se) return true;
  if (dir != 0 && !force && ctx.inflight.busy(dir)) return false;
  if (dir == 0) {
    invalidate_all(ctx);
    return true;
  }
  if (name.empty()) {
    fuse_lowlevel_notify_inval_inode(ctx.se, dir, 0, 0);
    return true;
  }
  NodeId child = ctx.fs->cached_child(dir, name);
  // Dropping the child's pages waits for page locks a read holds.
  if (child && !force && ctx.inflight.busy(child)) return false;
  drop_entry(ctx, dir, name);
  fuse_lowlevel_notify_inval_inode(ctx.se, dir, -1, 0);  // attributes (mtime, nlink)
  if (child) fuse_lowlevel_notify_inval_inode(ctx.se, child, 0, 0);
  return true;
}

}  // namespace aufs
