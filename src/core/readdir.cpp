// SPDX-License-Identifier: GPL-2.0-or-later
// Directory listings (overlayfs's readdir.c): the merged listing of every
// branch's copy, kept up to rdcache seconds while nothing changed.
#include "core/readdir.hpp"

#include <fcntl.h>
#include <time.h>

#include "aufs_fuse/sys.hpp"
#include "core/copy_up.hpp"
#include "core/entry.hpp"
#include "core/ino.hpp"

namespace aufs::core {

Result<std::unique_ptr<DirHandle>> opendir(Mount& m, NodeId id, const Ctx* ctx) {
  NodePtr n = m.tree.node(id);
  if (!n) return Errno{ESTALE};
  if (!n->is_dir()) return Errno{ENOTDIR};
  if (ctx && !m.opts.dirperm1 && ctx->uid != 0) {
    // nodirperm1: reading a merged directory needs read permission on every
    // branch's copy of it.
    auto bs = m.branches();
    AUFS_ASSIGN_OR_RETURN(auto w, where(m, *bs, n));
    for (size_t i = 1; i < w.layers.size(); ++i) {
      auto st = stat_at(*bs, w.layers[i], w.at(i));
      if (st.ok() && !may_access(st.value(), R_OK, *ctx)) return Errno{EACCES};
    }
  }
  if (!m.ro() && n->id != kRootId) {
    auto bs = m.branches();
    AUFS_TRY(copy_up_on_open(m, *bs, n));
  }
  auto dh = std::make_unique<DirHandle>();
  dh->node = n;
  AUFS_TRY(rewinddir(m, *dh));
  // The kernel's copy of the listing (cache_readdir) was filled by the
  // previous open; it may be kept only if this open serves that very
  // listing, still valid by the rdcache's checks.
  {
    std::lock_guard<SmallMutex> g(n->mu);
    Node::Extra* x = dh->listing_seq ? &n->extra() : n->extra_if();  // rdcache=0: none
    if (x) {
      dh->keep_cache = dh->listing_seq != 0 && dh->listing_seq == x->served_seq;
      x->served_seq = dh->listing_seq;
    }
  }
  return dh;
}

// The merged listing of a directory is kept up to rdcache seconds and
// reused while nothing changed: no change made through the mount (dir_gen),
// no branch change, and every branch copy's mtime as recorded (so direct
// edits of a branch are seen, as udba=reval promises).
Status rewinddir(Mount& m, DirHandle& dh) {
  auto bs = m.branches();
  NodePtr n = dh.node;
  AUFS_ASSIGN_OR_RETURN(auto w, where(m, *bs, n));
  struct timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  if (m.opts.rdcache > 0) {
    std::shared_ptr<const VDirCache> c;
    {
      std::lock_guard<SmallMutex> g(n->mu);
      if (n->extra_if()) c = n->extra_if()->vdir;
    }
    if (c && c->bgen == bs->generation && c->gen == n->dir_gen.load() &&
        now.tv_sec - c->at < m.opts.rdcache && c->layers == w.layers) {
      bool same = true;
      for (size_t i = 0; same && i < w.layers.size(); ++i) {
        auto st = stat_at(*bs, w.layers[i], w.at(i));
        same = st.ok() && i < c->stamps.size() && st->st_mtim.tv_sec == c->stamps[i].tv_sec &&
               st->st_mtim.tv_nsec == c->stamps[i].tv_nsec;
      }
      if (same) {
        dh.entries = c->entries;
        dh.listing_seq = c->seq;
        dh.gen = c->gen;
        dh.bgen = c->bgen;
        return {};
      }
    }
  }
  uint64_t gen = n->dir_gen.load();
  std::vector<struct timespec> stamps;
  AUFS_ASSIGN_OR_RETURN(auto ents, list_dir(m, *bs, w, &stamps, &n));
  dh.entries = Listing(std::move(ents));
  dh.listing_seq = 0;
  dh.gen = gen;
  dh.bgen = bs->generation;
  if (m.opts.rdcache > 0 && stamps.size() == w.layers.size()) {
    auto c = m.listings.make(dh.entries);
    c->stamps = std::move(stamps);
    c->layers = w.layers;
    c->bgen = bs->generation;
    c->gen = gen;
    c->at = now.tv_sec;
    uint64_t mine = c->seq;
    dh.listing_seq = mine;
    std::shared_ptr<const VDirCache> old;  // freed outside the node lock
    {
      std::lock_guard<SmallMutex> g(n->mu);
      old = std::exchange(n->extra().vdir, std::move(c));
    }
    m.listings.keep(n, mine);
  }
  return {};
}

// The kernel may keep what a readdir reply sends (cache_readdir), and it
// notes its own count of the directory's changes when the first part is
// asked for, not at opendir. A first part from a listing taken before a
// change the kernel has already counted would be kept as current, so it is
// taken again; a later part from an outdated listing stops the next open
// from keeping the kernel's copy.
Status before_read(Mount& m, DirHandle& dh, bool first) {
  const NodePtr& n = dh.node;
  if (dh.gen == n->dir_gen.load() && dh.bgen == m.branches()->generation) return {};
  if (first) AUFS_TRY(rewinddir(m, dh));
  std::lock_guard<SmallMutex> g(n->mu);
  if (Node::Extra* x = n->extra_if()) x->served_seq = 0;
  return {};
}

std::vector<Result<Entry>> lookup_entries(Mount& m, DirHandle& dh, const VEntry* const* es, size_t n) {
  std::vector<Result<Entry>> out;
  out.reserve(n);
  const NodePtr& p = dh.node;
  auto bs = m.branches();
  auto pw = where(m, *bs, p);
  if (!pw.ok()) {
    out.assign(n, Errno{pw.err()});
    return out;
  }
  OpenedParent opened = parent_parts(m, *bs, p, pw.value());
  for (size_t i = 0; i < n; ++i) {
    const std::string& name = es[i]->name;
    if (auto s = check_name(m, name, true); !s.ok()) {
      out.push_back(Errno{s.err()});
      continue;
    }
    NameChanges seen = m.name_changes();
    auto r = resolve_child(m, *bs, pw.value(), name, false, nullptr, &opened);
    if (!r.ok()) out.push_back(Errno{r.err()});
    else if (!r->positive()) out.push_back(Errno{ENOENT});
    else out.push_back(make_entry(m, *bs, p, name, r.value(), pw->rel, &seen));
  }
  return out;
}

}  // namespace aufs::core
