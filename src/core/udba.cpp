// SPDX-License-Identifier: GPL-2.0-or-later
// udba=notify (see udba.hpp).
#include "core/udba.hpp"

#include <fcntl.h>

#include <cerrno>
#include <cstring>

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
  std::vector<BranchWatcher::Part> raw;
  bool covered = true;  // every part that can change is watched
  bool retry = false;   // a watch failed: try again at the next lookup
  for (int b : layers) {
    const Branch& br = bs[static_cast<size_t>(b)];
    // rr: natively read-only, nothing can change there (AUFS skips it too).
    if (br.spec.perm == Perm::RR) continue;
    // Its file system does not report every change: udba=reval timeouts.
    if (br.unwatchable) {
      covered = false;
      continue;
    }
    // dirren: a renamed directory's lower parts are watched at their paths.
    std::string path = m.opts.dirren ? m.tree.paths_on(*n, {br.id})[0] : rel;
    auto fd = sys::open_beneath(br.root.get(), path, O_PATH | O_DIRECTORY);
    if (!fd.ok()) {
      covered = false;
      retry = true;
      continue;
    }
    raw.push_back({br.id, fd->get()});
    fds.push_back(std::move(fd.value()));
  }
  if (!m.watcher->watch(n->id, raw)) covered = false, retry = true;
  n->watch_failed.store(!covered);
  if (retry) {
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
    int e = m.watcher->init_errno();
    m.watcher.reset();
    m.udba_fallback = e == EMFILE ? "inotify instance limit reached (fs.inotify.max_user_instances)"
                                  : std::string("inotify unavailable: ") + std::strerror(e);
    return false;
  }
  m.tree.set_watcher(m.watcher.get());
  // Names come as the union shows them (BranchWatcher maps whiteouts and
  // the opaque marker, and leaves out the union's bookkeeping names).
  m.watcher->start([&m, inval](NodeId dir, uint32_t brid, const std::string& name, unsigned flags) {
    QuietMidOperation quiet;
    // Cached parts below a moved directory are at other paths now.
    if (flags & BranchWatcher::kMoved) m.parts.invalidate_all();
    if (!(flags & BranchWatcher::kBinding) && dir != 0) {
      // Attributes or data only (a chmod, a write, our own copy-up keeping
      // a parent's times): the name still leads where it did, so the
      // kernel keeps the entry, and the subtree under it, and drops only
      // the inode's attributes and pages.
      if (NodeId child = name.empty() ? dir : cached_child(m, dir, name)) inval(child, "");
      return;
    }
    NodePtr d = m.tree.node(dir);
    if (d) {
      d->dir_gen++;
      // Only the changed part's names: the union's own changes (on a
      // writable part, which has no name set) keep the lower parts' sets.
      forget_parts(d, name.empty(), brid);
    }
    if (d && !name.empty()) {
      // The name still leads to the node the kernel has under it (our own
      // copy-up publishing a copy, a directory gaining a part): the kernel
      // keeps the entry and the subtree below it; the node takes the layers
      // found now (no walk from the root: a copy-up of a deep chain makes
      // one event per level), and the inode's attributes go.
      auto bs = m.branches();
      auto pw = where(m, *bs, d);
      if (pw.ok()) {
        OpenedParent opened = parent_parts(m, *bs, d, pw.value());
        auto r = resolve_child(m, *bs, pw.value(), name, false, nullptr, &opened);
        NodePtr c = r.ok() && r->positive() ? m.tree.table.by_ino(r->hits[0].ino) : nullptr;
        if (c && (r->hits[0].st.st_mode & S_IFMT) == c->type && m.tree.placed_at(*c, d, name)) {
          Where cw = where_of(m, r.value(), sys::join(pw->rel, name));
          adopt_resolution(m, *bs, c, r.value(), cw);
          c->dir_gen++;
          // A new part (copy-up made it on the writable branch) is watched
          // now: the kernel will not look the directory up again for that.
          if (c->is_dir()) watch_dir(m, *bs, c, cw.rel);
          inval(c->id, "");
          return;
        }
      }
    }
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
  // The root's parts are watched beside the first requests: one watch per
  // branch takes a while with many (127: ~13 ms). Until they are in, the
  // root counts as unwatched, so its entries get reval timeouts and its
  // parts are checked as under reval; what was cached meanwhile is dropped
  // once the watches report.
  m.tree.root->watch_failed.store(true);
  m.watch_setup = std::thread([&m] {
    auto bs = m.branches();
    watch_dir(m, *bs, m.tree.root, "");
    forget_parts(m.tree.root, true);
    m.tree.root->dir_gen++;
  });
  return true;
}

void stop_notify(Mount& m) {
  if (m.watch_setup.joinable()) m.watch_setup.join();
  if (m.watcher) m.watcher->stop();
}

NodeId cached_child(Mount& m, NodeId dir, const std::string& name) {
  QuietMidOperation quiet;  // called for the watcher's notifications
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

namespace {
thread_local OwnChanges* t_own = nullptr;
}

OwnChanges::OwnChanges(Mount& m) : m_(m), w_(m.watcher.get()), outer_(t_own) { t_own = this; }

OwnChanges::OwnChanges(Mount& m, NodeId parent, std::string_view name) : OwnChanges(m) {
  entry(parent, name);
}

OwnChanges::~OwnChanges() {
  t_own = outer_;
  if (w_) w_->release(keys_);
}

OwnChanges* OwnChanges::current() { return t_own; }

void OwnChanges::dir_and_above(const NodePtr& dir, std::vector<BranchWatcher::OwnKey>& keys) {
  keys.push_back({kRootId, ""});
  auto chain = m_.tree.chain(dir);
  if (!chain) return;
  for (const NodePtr& d : *chain) {
    auto nm = m_.tree.naming(*d);
    if (!nm.parent) continue;
    keys.push_back({nm.parent->id, std::move(nm.name)});
    keys.push_back({d->id, ""});
  }
}

OwnChanges& OwnChanges::entry(NodeId parent, std::string_view name) {
  if (!w_) return *this;
  std::vector<BranchWatcher::OwnKey> keys{{parent, std::string(name)}};
  if (NodePtr p = m_.tree.node(parent)) dir_and_above(p, keys);
  hold(std::move(keys));
  return *this;
}

OwnChanges& OwnChanges::node(NodeId id, bool whole) {
  if (!w_) return *this;
  NodePtr n = m_.tree.node(id);
  if (!n) return *this;
  std::vector<BranchWatcher::OwnKey> keys;
  if (n->is_dir()) {
    dir_and_above(n, keys);  // its name in its parent, and itself
    if (whole) keys.push_back({id, std::string(BranchWatcher::kAllNames)});
  } else {
    auto nm = m_.tree.naming(*n);
    return nm.parent ? entry(nm.parent->id, nm.name) : *this;
  }
  hold(std::move(keys));
  return *this;
}

void OwnChanges::hold(std::vector<BranchWatcher::OwnKey> keys) {
  w_->hold(keys);
  for (auto& k : keys) keys_.push_back(std::move(k));
}

}  // namespace aufs::core
