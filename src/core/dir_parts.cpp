// SPDX-License-Identifier: GPL-2.0-or-later
// A directory's branch parts (module namei, see namei.hpp): opening them
// for a request, the cache of parts between requests (when a cached fd or
// name set may be used: part_cache.hpp keeps the store), and the merged
// listing read through them.
#include <dirent.h>
#include <fcntl.h>

#include "aufs_fuse/sys.hpp"
#include "core/ino.hpp"
#include "core/namei.hpp"
#include "core/util.hpp"

namespace aufs::core {

OpenedParent open_parent(const BranchSet& bs, const Where& parent) {
  OpenedParent o;
  for (size_t li = 0; li < parent.layers.size(); ++li) {
    auto fd = sys::open_beneath(bs[static_cast<size_t>(parent.layers[li])].root.get(),
                                parent.at(li), O_PATH | O_DIRECTORY);
    o.errs.push_back(fd.ok() ? 0 : fd.err());
    o.fds.push_back(fd.ok() ? std::make_shared<const PartFd>(std::move(fd.value()), nullptr)
                            : nullptr);
  }
  o.names.resize(o.fds.size());
  return o;
}

namespace {
// Lookups in a part before its names are read: a directory met once is not
// worth a listing.
constexpr uint32_t kSetAfterUses = 1;  // the second lookup reads them

DirPart* find_part(DirParts& ps, uint32_t brid) {
  for (auto& p : ps.parts)
    if (p.brid == brid) return &p;
  return nullptr;
}

// Cached parts need no check: a watch reports every change (notify) and
// every change made so far has been reported, or the user promised there
// is none (udba=none).
enum class Trust { kFull, kNames, kWindow, kNone };
Trust trust(const Mount& m, const Node& n) {
  if (m.opts.udba == Udba::None) return Trust::kFull;
  if (!m.watcher || m.opts.udba != Udba::Notify || n.watch_failed.load()) return Trust::kWindow;
  // Events not handled yet, so that a change made just before this lookup
  // is seen: if one of them made, removed or moved a directory, every part
  // is opened again, as reval would after its window; if not (the union's
  // own file changes, most often), the parts still lead where they did and
  // only their name sets are checked against the directories' stamps.
  auto s = m.watcher->state();
  if (s.settled) return Trust::kFull;
  return s.dirs_settled ? Trust::kNames : Trust::kNone;
}

// What parent_parts must do for one part outside the node lock.
struct PartWork {
  bool open = true;         // no usable fd cached
  enum { kKeep, kCheck, kRead } names = kKeep;
  std::shared_ptr<const NameSet> old;  // kCheck: the set to check
  bool names_changed = false;
};

// Stores the outcome of parent_parts/list_dir in n; drops the oldest
// nodes' parts when over the fd budget.
void store_parts(Mount& m, const BranchSet& bs, const NodePtr& n, const Where& w,
                 const OpenedParent& o, const std::vector<PartWork>& work, uint64_t gen,
                 int64_t now) {
  bool newly_held = false;
  {
    std::lock_guard<SmallMutex> g(n->mu);
    Node::Extra& x = n->extra();
    if (!x.parts || x.parts->bgen != bs.generation) return;  // a branch change meanwhile
    bool held = false;
    for (auto& p : x.parts->parts) held = held || p.fd;
    for (size_t li = 0; li < w.layers.size(); ++li) {
      if (!work[li].open && !work[li].names_changed) continue;
      if (!o.fds[li]) continue;
      const Branch& br = bs[static_cast<size_t>(w.layers[li])];
      DirPart* p = find_part(*x.parts, br.id);
      if (!p) {
        x.parts->parts.emplace_back();
        p = &x.parts->parts.back();
        p->brid = br.id;
      }
      if (work[li].open) {
        p->path = w.at(li);
        p->fd = o.fds[li];
        p->checked_ns = now;
        p->gen = gen;
      }
      if (work[li].names_changed) {
        p->names = o.names[li];
        p->uses = 0;
      }
    }
    newly_held = !held;
  }
  if (!newly_held) return;
  for (auto& v : m.parts.remember(n)) forget_parts(v, true);
}
}  // namespace

void forget_parts(const NodePtr& n, bool all, uint32_t brid) {
  std::shared_ptr<DirParts> old;  // fds closed outside the lock
  std::lock_guard<SmallMutex> g(n->mu);
  Node::Extra* x = n->extra_if();
  if (!x || !x->parts) return;
  if (all) {
    old = std::move(x->parts);
    return;
  }
  for (auto& p : x->parts->parts)
    if (brid == UINT32_MAX || p.brid == brid) p.names.reset();
}

OpenedParent parent_parts(Mount& m, const BranchSet& bs, const NodePtr& n, const Where& w) {
  size_t k = w.layers.size();
  OpenedParent o;
  o.fds.resize(k);
  o.errs.assign(k, 0);
  o.names.resize(k);
  std::vector<PartWork> work(k);
  int64_t now = mono_ns();
  uint64_t gen = m.parts.gen();
  Trust t = trust(m, *n);
  int64_t win = t == Trust::kNone ? 0 : m.parts.window_ns();
  bool timed = t == Trust::kNone || (t == Trust::kWindow && win >= 0);
  auto fresh = [&](int64_t at) { return !timed || now - at < win; };
  {
    std::lock_guard<SmallMutex> g(n->mu);
    Node::Extra& x = n->extra();
    if (!x.parts || x.parts->bgen != bs.generation) {
      x.parts = std::make_shared<DirParts>();
      x.parts->bgen = bs.generation;
    }
    for (size_t li = 0; li < k; ++li) {
      const Branch& br = bs[static_cast<size_t>(w.layers[li])];
      DirPart* p = find_part(*x.parts, br.id);
      if (!p) continue;
      if (p->fd && p->path == w.at(li) && p->gen == gen && fresh(p->checked_ns)) {
        o.fds[li] = p->fd;
        work[li].open = false;
      }
      if (br.writable()) continue;  // the union changes it: no name set
      if (p->names) {
        // Without a watch the set is checked at every use: a name made
        // directly must show at its first lookup, as without the set.
        // udba=none trusts the kernel's cached answers, not a set of names
        // for one it never asked: such a name is looked up on the branch,
        // as AUFS does, so the set is checked as under reval.
        if (!work[li].open && !timed && t != Trust::kNames && m.opts.udba != Udba::None)
          o.names[li] = p->names;
        else work[li].names = PartWork::kCheck, work[li].old = p->names;
      } else if (++p->uses >= kSetAfterUses) {
        work[li].names = PartWork::kRead;
      }
    }
  }
  auto counts = m.parts.counts();
  for (size_t li = 0; li < k; ++li) {
    PartWork& pw = work[li];
    const Branch& br = bs[static_cast<size_t>(w.layers[li])];
    if (pw.open) {
      auto fd = sys::open_beneath(br.root.get(), w.at(li), O_PATH | O_DIRECTORY);
      if (!fd.ok()) {
        o.errs[li] = fd.err();
        continue;
      }
      o.fds[li] = m.parts.adopt(std::move(fd.value()));
    } else {
      counts->reuses++;
    }
    if (pw.names == PartWork::kKeep) continue;
    auto st = sys::fstat_fd(o.fds[li]->get());
    if (st.ok() && pw.names == PartWork::kCheck && pw.old->matches(st.value())) {
      o.names[li] = std::move(pw.old);
      continue;
    }
    pw.names_changed = true;  // read again, or dropped
    // A directory changed within the timestamp granularity may change again
    // without a new stamp: not trusted yet (util.hpp, recent).
    if (!st.ok() || recent(st->st_ctim)) continue;
    auto ents = sys::read_dir(o.fds[li]->get());
    if (!ents.ok() || !m.parts.room_for_names(ents->size() * sizeof(uint64_t))) continue;
    o.names[li] = std::make_shared<const NameSet>(ents.value(), st.value(), counts);
    counts->set_builds++;
  }
  store_parts(m, bs, n, w, o, work, gen, now);
  return o;
}

Result<std::vector<VEntry>> list_dir(Mount& m, const BranchSet& bs, const Where& w,
                                     std::vector<struct timespec>* stamps, const NodePtr* node) {
  std::vector<BranchListing> ls;
  std::vector<std::pair<int, int>> fds;  // (branch, fd held by `opened`)
  OpenedParent opened = node ? parent_parts(m, bs, *node, w) : open_parent(bs, w);
  // Read-only parts without a valid name set keep the names listed here.
  std::vector<PartWork> work(w.layers.size());
  bool offer = false;
  for (size_t li = 0; li < w.layers.size(); ++li) {
    int b = w.layers[li];
    const Branch& br = bs[static_cast<size_t>(b)];
    if (int e = opened.errs[li]) {
      if (absent(e)) continue;
      return Errno{e};
    }
    int dfd = opened.fds[li]->get();
    AUFS_ASSIGN_OR_RETURN(auto ents, sys::read_dir(dfd));
    bool want_names = node && !br.writable() && !opened.names[li];
    if (stamps || want_names) {
      auto st = sys::fstat_fd(dfd);
      if (stamps) stamps->push_back(st.ok() ? st->st_mtim : timespec{});
      if (want_names && st.ok() && !recent(st->st_ctim) &&
          m.parts.room_for_names(ents.size() * sizeof(uint64_t))) {
        opened.names[li] = std::make_shared<const NameSet>(ents, st.value(), m.parts.counts());
        m.parts.counts()->set_builds++;
        work[li].open = false;
        work[li].names_changed = offer = true;
      }
    }
    if (br.spec.ovl) {
      // overlayfs's whiteouts are listed as the AUFS ones they stand for
      // (after the name set took the names as they are on disk).
      for (auto& e : ents) {
        if (e.type != DT_CHR && e.type != DT_UNKNOWN) continue;
        auto st = sys::lstat_at(dfd, e.name);
        if (st.ok() && ovl_whiteout(st.value())) e.name = wh::whiteout_of(e.name), e.type = DT_REG;
      }
    }
    BranchListing l;
    l.branch = b;
    l.wh_able = br.wh_able();
    l.own_wh_hides = !br.writable() && !m.opts.ociwh;
    l.entries = std::move(ents);
    ls.push_back(std::move(l));
    fds.emplace_back(b, dfd);
  }
  if (offer) store_parts(m, bs, *node, w, opened, work, m.parts.gen(), mono_ns());
  auto merged = merge_listings(ls, m.opts.shwh);
  // d_ino must equal the st_ino a lookup reports.
  for (auto& e : merged) {
    struct stat st {};
    st.st_ino = e.branch_ino;
    int fd = -1;
    for (auto& [b, f] : fds)
      if (b == e.branch) fd = f;
    e.ino = fd >= 0 ? ino_at(m, bs, e.branch, fd, e.name, st) : ino_of(m, bs, e.branch, st);
  }
  return merged;
}

}  // namespace aufs::core
