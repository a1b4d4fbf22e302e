// SPDX-License-Identifier: GPL-2.0-or-later
// Cached nodes for resolved names (see entry.hpp).
#include "core/entry.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <optional>

#include "aufs_fuse/control.hpp"
#include "aufs_fuse/sys.hpp"
#include "core/ino.hpp"
#include "core/udba.hpp"

namespace aufs::core {

Result<Entry> make_entry(Mount& m, const BranchSet& bs, const NodePtr& parent, std::string_view name,
                                const Resolution& r_in, const std::string& parent_rel,
                                const NameChanges* seen) {
  m.hook("make_entry", name);
  const Resolution* rp = &r_in;
  Resolution fresh;
  NodePtr n;
  for (int attempt = 0;; ++attempt) {
    n = m.tree.table.find_or_insert(rp->hits[0].ino, rp->hits[0].st.st_mode & S_IFMT, 1);
    bool moving = m.tree.placed_elsewhere(*n, parent, name);
    // A name removed or moved while it was resolved: a new node made for
    // the old answer would stand for nothing (its node, if any, was retired).
    bool changed = false;
    if (seen && !moving && attempt == 0) {
      NameChanges now = m.name_changes();
      changed = seen->busy || now.busy || now.gen != seen->gen;
    }
    if (!moving && !changed) break;
    // The node is known under another name, or as removed. A resolution
    // read before the node was renamed or unlinked (a whiteout made, or the
    // upper entry gone) would undo that and point the node at a name that
    // stands for something else by now, or bring a removed file back: move
    // the node only if the name still resolves to it; else answer with what
    // the name resolves to now.
    auto pw = where(m, bs, parent);
    auto again = pw.ok() ? resolve_child(m, bs, pw.value(), name, false)
                         : Result<Resolution>(Errno{pw.err()});
    if (again.ok() && again->positive() && again->hits[0].ino == rp->hits[0].ino &&
        !((again->hits[0].st.st_mode ^ rp->hits[0].st.st_mode) & S_IFMT))
      break;
    m.tree.forget(n->id, 1);
    if (!again.ok()) return Errno{again.err()};
    if (!again->positive()) return Errno{ENOENT};
    if (attempt >= 2) return Errno{ESTALE};  // the kernel walks the path again
    fresh = std::move(again.value());
    rp = &fresh;
  }
  const Resolution& r = *rp;
  const Hit& top = r.hits[0];
  uint64_t ino = top.ino;
  m.tree.set_parent(n, parent, name, !S_ISDIR(top.st.st_mode) && top.st.st_nlink > 1);
  if (m.opts.dirren && n->is_dir()) set_redirects(m, bs, n, r);
  struct stat st = top.st;
  std::string rel = sys::join(parent_rel, name);
  int data_b = -1;  // where a non-directory's attributes come from
  std::string data_rel = rel;
  {
    std::lock_guard<SmallMutex> g(n->mu);
    // The resolution was read without the node's lock: a copy-up of this
    // node may have finished since (copy_up and ensure_dir_path update the
    // layers under n->mu after the copy is in place). A layer of the node
    // above the resolution's top that still holds this very entry means the
    // resolution is stale there; keeping the lower layer would point the
    // node (and the next open for writing) back at a read-only branch.
    auto newer_upper = [&](int b, const std::string& data_rel) -> std::optional<struct stat> {
      auto [prel, leaf] = sys::split_parent(data_rel);
      auto pfd = sys::open_beneath(bs[static_cast<size_t>(b)].root.get(), prel, O_PATH | O_DIRECTORY);
      if (!pfd.ok()) return std::nullopt;
      auto ust = sys::lstat_at(pfd->get(), leaf);
      if (!ust.ok() || (ust->st_mode & S_IFMT) != n->type) return std::nullopt;
      if (ino_at(m, bs, b, pfd->get(), leaf, ust.value()) != n->ino) return std::nullopt;
      return ust.value();
    };
    bool same_gen = n->bgen == bs.generation;
    bool kept_upper = false;
    if (n->is_dir()) {
      std::vector<int> upper;  // copied-up layers the resolution missed
      std::optional<struct stat> upper_st;
      if (same_gen)
        for (int b : n->layers) {
          if (b >= top.branch) break;
          if (auto u = newer_upper(b, rel)) {
            upper.push_back(b);
            if (!upper_st) upper_st = u;
          }
        }
      n->layers = upper;
      for (auto& h : r.hits) n->layers.push_back(h.branch);
      n->opaque = r.opaque_branch;
      // AUFS: nlink = top's plus (nlink - 2) of each lower dir, so that find
      // never under-counts subdirectories.
      if (upper_st) {
        st = *upper_st;
        if (top.st.st_nlink > 2) st.st_nlink += top.st.st_nlink - 2;
      }
      for (size_t i = 1; i < r.hits.size(); ++i)
        if (r.hits[i].st.st_nlink > 2) st.st_nlink += r.hits[i].st.st_nlink - 2;
    } else if (same_gen && !n->layers.empty() && n->layers[0] < top.branch &&
               bs[static_cast<size_t>(n->layers[0])].writable()) {
      if (auto u = newer_upper(n->layers[0], n->data_rel.empty() ? rel : n->data_rel)) {
        st = *u;
        kept_upper = true;  // stale resolution: the node keeps its copied-up data
      }
    }
    if (!n->is_dir() && !kept_upper) {
      bool keep = false;
      if (m.opts.plink && top.st.st_nlink > 1 &&
          !bs[static_cast<size_t>(top.branch)].writable()) {
        // A lower hard link whose inode was copied up under another name:
        // serve the copy (pseudo-link, recorded in .wh..wh.plnk/).
        for (int b = top.branch - 1; b >= 0 && !keep; --b) {
          if (!bs[static_cast<size_t>(b)].writable()) continue;
          std::string pl = plink_name(ino);
          auto up = sys::lstat_at(bs[static_cast<size_t>(b)].root.get(), pl);
          if (up.ok() && ((up->st_mode ^ top.st.st_mode) & S_IFMT) == 0) {
            keep = true;
            st = up.value();
            if (n->layers.empty() || n->layers[0] != b || n->data_rel != pl) n->data_gen++;
            n->layers = {b};
            n->data_rel = pl;
          }
        }
      }
      if (!keep) {
        if (n->layers.empty() || n->layers[0] != top.branch || !n->data_rel.empty()) n->data_gen++;
        n->layers = {top.branch};
        n->data_rel.clear();
      }
    }
    n->bgen = bs.generation;
    if (!n->is_dir() && !n->layers.empty()) {
      data_b = n->layers[0];
      if (!n->data_rel.empty()) data_rel = n->data_rel;
    }
  }
  if (data_b >= 0 && bs[static_cast<size_t>(data_b)].writable())
    union_nlink_at(m, bs[static_cast<size_t>(data_b)].root.get(), data_rel, st);
  if (m.watcher && n->is_dir()) watch_dir(m, bs, n, rel);
  Entry e{n->id, present(*n, st)};
  e.unwatched = m.watcher && (parent->watch_failed.load() || n->watch_failed.load());
  return e;
}

Result<Entry> lookup(Mount& m, NodeId parent_id, std::string_view name, const Ctx* ctx) {
  if (parent_id == kRootId && name == kControlName) return control_entry(m);
  if (auto s = check_name(m, name, true); !s.ok()) return Errno{s.err()};
  NodePtr p = m.tree.node(parent_id);
  if (!p) return Errno{ESTALE};
  if (!p->is_dir()) return Errno{ENOTDIR};
  auto bs = m.branches();
  AUFS_ASSIGN_OR_RETURN(auto pw, where(m, *bs, p));
  const Ctx* perm = (ctx && !m.opts.dirperm1 && ctx->uid != 0 && pw.layers.size() > 1) ? ctx : nullptr;
  NameChanges seen = m.name_changes();
  OpenedParent opened = parent_parts(m, *bs, p, pw);
  AUFS_ASSIGN_OR_RETURN(auto r, resolve_child(m, *bs, pw, name, false, perm, &opened));
  if (!r.positive()) return Errno{ENOENT};
  return make_entry(m, *bs, p, name, r, pw.rel, &seen);
}

void mark_unlinked(Mount& m, const BranchSet& bs, const NodePtr& parent, const std::string& name,
                          const Hit& top, NodeId fence) {
  m.hook("unlinked", name);
  NodePtr n = m.tree.table.by_ino(top.ino);
  if (n && n->id >= fence) n = nullptr;  // a new object that reused the number
  if (n) {
    auto others = m.tree.remove_name(n, parent, name, !S_ISDIR(top.st.st_mode) && top.st.st_nlink > 1);
    // A hard link: the node moves to another of its names that still leads
    // to it, so requests by node keep working (the kernel holds the node
    // under its other names).
    bool moved = false;
    for (auto& [op, on] : others) {
      auto pw = where(m, bs, op);
      if (!pw.ok()) continue;
      auto r = resolve_child(m, bs, pw.value(), on, false);
      if (!r.ok() || !r->positive() || r->hits[0].ino != n->ino) continue;
      if (!m.tree.placed_at(*n, parent, name)) break;  // moved meanwhile
      m.tree.set_parent(n, op, on);
      moved = true;
      break;
    }
    if (!others.empty() && !moved) m.tree.unlink_if_at(n, parent, name);
  }
  // The last name of the object is gone: its number may come back for a new
  // object (the branch reuses inode numbers), which must get a new node.
  if (S_ISDIR(top.st.st_mode) || top.st.st_nlink <= 1) {
    const Branch& b = bs[static_cast<size_t>(top.branch)];
    if (b.writable()) m.xino.unalias_if(b.seed, top.st.st_ino, top.ino);
    if (n) {
      spdlog::debug("node {} (ino {}) retired: last name {} gone", n->id, n->ino, name);
      m.tree.table.retire(n);
    }
  }
}

// A node for a resolved name without a kernel reference (rename may be asked
// about names the kernel has not looked up); dropped again if unused.
NodePtr node_for(Mount& m, const BranchSet& bs, const NodePtr& parent, const std::string& name,
                        const Resolution& r, const std::string& parent_rel) {
  auto e = make_entry(m, bs, parent, name, r, parent_rel);
  if (!e.ok()) return nullptr;
  NodePtr n = m.tree.table.get(e->id);
  m.tree.forget(e->id, 1);
  return n;
}

}  // namespace aufs::core
