// SPDX-License-Identifier: GPL-2.0-or-later
// Orphans (see orphans.hpp).
#include "core/orphans.hpp"

#include <fcntl.h>

#include <algorithm>

#include "aufs_fuse/sys.hpp"
#include "core/namei.hpp"
#include "core/util.hpp"

namespace aufs::core {
namespace {
// Orphans hold descriptors until the kernel forgets their nodes; past this
// many, a removed file is unreachable by node as before (ESTALE/ENOENT).
long orphan_limit() {
  static const long limit = std::min<long>(4096, fd_limit(4096 * 8) / 8);
  return limit;
}
}  // namespace

void keep_orphan(Mount& m, const BranchSet& bs, const NodePtr& n) {
  if (!n || !S_ISREG(n->type) || n->nlookup.load() == 0) return;
  if (Orphan::live.load(std::memory_order_relaxed) >= orphan_limit()) return;
  auto w = where(m, bs, n);
  if (!w.ok()) return;
  int b = w->layers[0];
  auto fd = sys::open_beneath(bs[static_cast<size_t>(b)].root.get(), w->data_rel, O_PATH | O_NOFOLLOW);
  if (!fd.ok()) return;
  auto st = sys::fstat_fd(fd->get());
  if (!st.ok() || !is_node_entry(m, bs, n, b, st.value())) return;
  auto o = std::make_shared<const Orphan>(std::move(fd.value()), bs[static_cast<size_t>(b)].id);
  std::lock_guard<SmallMutex> g(n->mu);
  n->extra().orphan = std::move(o);
}

void orphan_follows_copy(const NodePtr& n, int dirfd, const std::string& name, uint32_t brid) {
  Node::Extra* x = n->extra_if();
  if (!x || !x->orphan) return;
  auto fd = sys::open_at(dirfd, name, O_PATH | O_NOFOLLOW);
  if (!fd.ok()) {
    x->orphan.reset();
    return;
  }
  x->orphan = std::make_shared<const Orphan>(std::move(fd.value()), brid);
}

void drop_orphan(const NodePtr& n) {
  if (!n) return;
  std::lock_guard<SmallMutex> g(n->mu);
  if (Node::Extra* x = n->extra_if()) x->orphan.reset();
}

}  // namespace aufs::core
