// SPDX-License-Identifier: GPL-2.0-or-later
// udba=notify (see udba.hpp).
#include "core/udba.hpp"

#include <fcntl.h>

#include "aufs_fuse/sys.hpp"
#include "core/namei.hpp"

namespace aufs::core {

void watch_dir(Mount& m, const BranchSet& bs, const NodePtr& n, const std::string& rel) {
  std::vector<int> layers;
  {
    std::lock_guard<SmallMutex> g(n->mu);
    Node::Extra& x = n->extra();
    if (x.watched == n->layers) return;
    layers = n->layers;
    x.watched = layers;
  }
  std::vector<UniqueFd> fds;
  std::vector<int> raw;
  bool all = true;
  for (int b : layers) {
    // rr: natively read-only, nothing can change there (AUFS skips it too).
    if (bs[static_cast<size_t>(b)].spec.perm == Perm::RR) continue;
    // dirren: a renamed directory's lower parts are watched at their paths.
    std::string path = m.opts.dirren ? m.tree.paths_on(*n, {bs[static_cast<size_t>(b)].id})[0] : rel;
    auto fd = sys::open_beneath(bs[static_cast<size_t>(b)].root.get(), path, O_PATH | O_DIRECTORY);
    if (!fd.ok()) {
      all = false;
      continue;
    }
    raw.push_back(fd->get());
    fds.push_back(std::move(fd.value()));
  }
  bool ok = m.watcher->watch(n->id, raw) && all;
  n->watch_failed.store(!ok);
  if (!ok) {
    // Try again at the next lookup.
    std::lock_guard<SmallMutex> g(n->mu);
    n->extra().watched.clear();
  }
}

bool unwatched_dir(const Mount& m, NodeId dir) {
  if (!m.watcher) return false;
  NodePtr n = m.tree.node(dir);
  return n && n->watch_failed.load();
}

bool unwatched_node(const Mount& m, NodeId id) {
  if (!m.watcher) return false;
  NodePtr n = m.tree.node(id);
  if (!n) return false;
  if (n->is_dir() && n->watch_failed.load()) return true;
  NodePtr p = m.tree.parent(*n);
  return p && p->watch_failed.load();
}

bool start_notify(Mount& m, std::function<void(NodeId, const std::string&)> inval) {
  if (m.opts.udba != Udba::Notify) return false;
  m.watcher = std::make_unique<BranchWatcher>();
  if (!m.watcher->ok()) {
    m.watcher.reset();
    return false;
  }
  m.tree.set_watcher(m.watcher.get());
  m.watcher->start([&m, inval](NodeId dir, const std::string& name) {
    if (NodePtr d = m.tree.node(dir)) d->dir_gen++;
    if (dir == kRootId || name.empty() || dir == 0) {
      // A branch directory itself went away, or events were lost: refresh
      // the directory's layers on its next use.
      if (NodePtr d = m.tree.node(dir)) {
        std::lock_guard<SmallMutex> g(d->mu);
        d->bgen = 0;
      }
    }
    inval(dir, name);
  });
  auto bs = m.branches();
  watch_dir(m, *bs, m.tree.root, "");
  return true;
}

void stop_notify(Mount& m) {
  if (m.watcher) m.watcher->stop();
}

NodeId cached_child(Mount& m, NodeId dir, const std::string& name) {
  NodePtr p = m.tree.node(dir);
  if (!p || !p->is_dir() || wh::check_user_name(name)) return 0;
  auto bs = m.branches();
  auto pw = where(m, *bs, p);
  if (!pw.ok()) return 0;
  auto r = resolve_child(m, *bs, pw.value(), name, false);
  if (!r.ok() || !r->positive()) return 0;
  NodePtr c = m.tree.table.by_ino(r->hits[0].ino);
  return c ? c->id : 0;
}

}  // namespace aufs::core
