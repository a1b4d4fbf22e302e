// SPDX-License-Identifier: GPL-2.0-or-later
// Namespace operations in one directory (overlayfs's dir.c): create,
// mkdir, mknod, symlink, link, unlink, rmdir.
//
// Crash orderings (the daemon may die between any two steps): unlink and
// rmdir make the whiteout first, then remove the upper entry; a create over
// a whiteout makes the entry first, then removes the whiteout. On a
// writable branch an interruption can leave both: the entry wins there.
#include "core/dir.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "aufs_fuse/sys.hpp"
#include "core/copy_up.hpp"
#include "core/entry.hpp"
#include "core/ino.hpp"
#include "core/orphans.hpp"
#include "core/placement.hpp"
#include "core/udba.hpp"
#include "core/util.hpp"
#include "core/whiteout_ops.hpp"

namespace aufs::core {
namespace {
Result<Entry> entry_of(Result<Created> c) {
  if (!c.ok()) return Errno{c.err()};
  return c->entry;
}
}  // namespace

Result<std::string> move_aside(Mount& m, int dirfd, const std::string& name) {
  return make_temp(m, name, [&](const std::string& t) {
    auto s = sys::rename_at(dirfd, name, dirfd, t, RENAME_NOREPLACE);
    errno = s.err();
    return s.ok();
  });
}

Result<Created> make_new(Mount& m, NodeId parent_id, std::string_view name, const NewEntry& what,
                         const Ctx& ctx) {
  DirChange dir_change(m.dir_changes);
  mode_t mode = what.mode;
  AUFS_ASSIGN_OR_RETURN(NameInDir d, resolve_in(m, parent_id, name, false));
  auto& [p, bs, pw, r] = d;
  if (r.positive()) return Errno{EEXIST};
  AUFS_ASSIGN_OR_RETURN(auto bw_r, pick_create(m, *bs, pw, r.whiteout ? r.whiteout_branch : -1,
                         (mode & S_IFMT) == S_IFDIR));
  int bw = bw_r;
  AUFS_TRY(ensure_dir_path(m, *bs, bw, p));
  const Branch& wb = (*bs)[static_cast<size_t>(bw)];
  AUFS_ASSIGN_OR_RETURN(auto pfd, sys::open_beneath(wb.root.get(), pw.rel, O_PATH | O_DIRECTORY));
  std::string nm(name);
  AUFS_ASSIGN_OR_RETURN(auto whx, sys::exists_at(pfd.get(), wh::whiteout_of(nm)));
  bool had_wh = whx;
  mode_t fmt = mode & S_IFMT;
  if (m.opts.acl && fmt != S_IFLNK) {
    // The kernel left the umask to us: it applies unless the directory has
    // a default ACL (then the branch filesystem applies that instead).
    auto dacl = sys::getxattr_at(pfd.get(), "", "system.posix_acl_default", 0);
    if (!dacl.ok() || dacl->empty()) mode &= ~(ctx.umask & 0777);
  }
  UniqueFd fd;
  {
    CredsGuard cg(ctx);
    if (fmt == S_IFDIR) {
      if (had_wh || m.opts.diropq_always) {
        // Build the directory with its opaque marker under a temporary
        // name, so the name never appears non-opaque over lower entries.
        AUFS_ASSIGN_OR_RETURN(std::string tmp, make_temp(m, nm, [&](const std::string& t) {
          return made(sys::mkdir_at(pfd.get(), t, mode & 07777));
        }));
        Status s;
        {
          auto dfd = sys::open_beneath(pfd.get(), tmp, O_PATH | O_DIRECTORY);
          if (!dfd.ok()) s = Errno{dfd.err()};
          else {
            CredsGuard root(Ctx{});  // the marker is metadata, not the user's
            s = make_opaque(m, *bs, bw, dfd->get());
          }
        }
        if (s.ok()) s = sys::rename_at(pfd.get(), tmp, pfd.get(), nm, RENAME_NOREPLACE);
        if (!s.ok()) {
          (void)remove_dir_tree_meta(pfd.get(), tmp);
          return Errno{s.err()};
        }
      } else {
        AUFS_TRY(sys::mkdir_at(pfd.get(), nm, mode & 07777));
      }
    } else if (fmt == S_IFLNK) {
      AUFS_TRY(sys::symlink_at(*what.symlink_target, pfd.get(), nm));
    } else if (what.open) {
      int f = pass_flags(what.open_flags & ~O_TRUNC) | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
      AUFS_ASSIGN_OR_RETURN(fd, sys::open_at(pfd.get(), nm, f, mode & 07777));
    } else {
      AUFS_TRY(sys::mknod_at(pfd.get(), nm, mode, what.rdev));
    }
  }
  if (had_wh) {
    // Left together, the entry and its whiteout would need the checker:
    // the new entry goes again and the caller gets the error.
    if (auto s = remove_whiteout_if_any(pfd.get(), nm, nullptr); !s.ok()) {
      (void)(fmt == S_IFDIR ? remove_dir_tree_meta(pfd.get(), nm) : sys::unlink_at(pfd.get(), nm, 0));
      return Errno{s.err()};
    }
  }
  p->dir_gen++;
  AUFS_ASSIGN_OR_RETURN(auto st, stat_made(pfd.get(), nm));
  // A new inode: an alias or node left for its inode number by an object
  // that had it before (its number reused by the branch) is stale.
  m.xino.unalias(wb.seed, st.st_ino);
  uint64_t new_ino = fresh_ino(m, *bs, bw, st);
  if (NodePtr old = m.tree.table.by_ino(new_ino)) {
    m.tree.set_unlinked(old);
    spdlog::debug("node {} (ino {}) retired: its branch inode now holds {}", old->id, old->ino, nm);
    m.tree.table.retire(old);
  }
  Resolution res;
  res.hits.push_back({bw, st, new_ino, sys::join(pw.on(bw), nm)});
  Created out;
  AUFS_ASSIGN_OR_RETURN(out.entry, make_entry(m, *bs, p, nm, res, pw.rel));
  if (what.open) {
    NodePtr n = m.tree.node(out.entry.id);
    if (!n) return Errno{ESTALE};
    out.fh = m.files.open(n, std::move(fd), what.open_flags, wb.id, &st);
  }
  return out;
}

Result<Entry> mknod(Mount& m, NodeId parent, std::string_view name, mode_t mode, dev_t rdev,
                           const Ctx& ctx) {
  mode_t fmt = mode & S_IFMT;
  if (fmt == 0) mode |= S_IFREG;
  else if (fmt != S_IFREG && fmt != S_IFIFO && fmt != S_IFCHR && fmt != S_IFBLK && fmt != S_IFSOCK)
    return Errno{EINVAL};
  return entry_of(make_new(m, parent, name, {.mode = mode, .rdev = rdev}, ctx));
}

Result<Entry> mkdir(Mount& m, NodeId parent, std::string_view name, mode_t mode, const Ctx& ctx) {
  return entry_of(make_new(m, parent, name, {.mode = (mode & 07777) | S_IFDIR}, ctx));
}

Result<Entry> symlink(Mount& m, const std::string& target, NodeId parent, std::string_view name,
                             const Ctx& ctx) {
  return entry_of(make_new(m, parent, name, {.mode = S_IFLNK | 0777, .symlink_target = &target}, ctx));
}

Result<Entry> link(Mount& m, NodeId src_id, NodeId newparent, std::string_view name) {
  DirChange dir_change(m.dir_changes);
  if (auto s = check_name(m, name); !s.ok()) return Errno{s.err()};
  NodePtr n = m.tree.node(src_id);
  NodePtr p = m.tree.node(newparent);
  if (!n || !p) return Errno{ESTALE};
  if (n->is_dir()) return Errno{EPERM};
  if (!p->is_dir()) return Errno{ENOTDIR};
  auto bs = m.branches();
  AUFS_ASSIGN_OR_RETURN(auto pw, where(m, *bs, p));
  AUFS_ASSIGN_OR_RETURN(auto r, resolve_child(m, *bs, pw, name, false));
  if (r.positive()) return Errno{EEXIST};
  // noplink-style: the source is copied up under its own name, then a real
  // hard link is made on the writable branch (it survives a remount).
  AUFS_ASSIGN_OR_RETURN(auto w, where_for_write(m, *bs, n));
  int bw = w.layers[0];
  AUFS_TRY(ensure_dir_path(m, *bs, bw, p));
  const Branch& wb = (*bs)[static_cast<size_t>(bw)];
  auto [sprel, sname] = sys::split_parent(w.data_rel);
  AUFS_ASSIGN_OR_RETURN(auto spfd, sys::open_beneath(wb.root.get(), sprel, O_PATH | O_DIRECTORY));
  AUFS_ASSIGN_OR_RETURN(auto dpfd, sys::open_beneath(wb.root.get(), pw.rel, O_PATH | O_DIRECTORY));
  std::string nm(name);
  AUFS_TRY(sys::link_at(spfd.get(), sname, dpfd.get(), nm));
  p->dir_gen++;
  if (auto s = remove_whiteout_if_any(dpfd.get(), nm, nullptr); !s.ok()) {
    (void)sys::unlink_at(dpfd.get(), nm, 0);  // as in make_new
    return Errno{s.err()};
  }
  AUFS_ASSIGN_OR_RETURN(auto st, stat_made(dpfd.get(), nm));
  union_nlink(m, dpfd.get(), nm, st);
  m.tree.add_name(n, p, nm);
  m.tree.table.add_ref(n, 1);
  Entry e{n->id, present(*n, st)};
  e.unwatched = m.watcher && p->watch_failed.load();
  return e;
}

Status unlink(Mount& m, NodeId parent_id, std::string_view name) {
  NameChange changing(m);
  DirChange dir_change(m.dir_changes);
  AUFS_ASSIGN_OR_RETURN(NameInDir d, resolve_in(m, parent_id, name, true));
  auto& [p, bs, pw, r] = d;
  if (!r.positive()) return Errno{ENOENT};
  if (S_ISDIR(r.hits[0].st.st_mode)) return Errno{EISDIR};
  m.hook("unlink", name);
  int top = r.hits[0].branch;
  AUFS_ASSIGN_OR_RETURN(int bw, pick_change(m, *bs, pw, top));
  bool need_wh = top != bw || r.lower_exists;
  if (need_wh) AUFS_TRY(ensure_dir_path(m, *bs, bw, p));
  AUFS_ASSIGN_OR_RETURN(auto pfd, sys::open_beneath((*bs)[static_cast<size_t>(bw)].root.get(), pw.rel, O_PATH | O_DIRECTORY));
  std::string nm(name);
  NodePtr victim = m.tree.table.by_ino(r.hits[0].ino);
  keep_orphan(m, *bs, victim);
  // A lower name of a pseudo-linked inode leaves the union: one link less
  // than its upper inode's count says (ino.hpp).
  const int broot = (*bs)[static_cast<size_t>(bw)].root.get();
  bool plinked = false;
  if (top != bw && r.hits[0].st.st_nlink > 1) {
    auto a = add_plink_nlink(m, broot, r.hits[0].ino, -1);
    if (!a.ok()) {
      drop_orphan(victim);
      return Errno{a.err()};
    }
    plinked = a.value();
  }
  // No KeepTimes here: the whiteout and the removal are the user's change,
  // and POSIX has unlink update the parent's mtime and ctime.
  if (need_wh) {
    if (auto s = make_whiteout(m, *bs, bw, pfd.get(), nm); !s.ok()) {
      if (plinked) (void)add_plink_nlink(m, broot, r.hits[0].ino, +1);
      drop_orphan(victim);
      return s;
    }
  }
  const NodeId fence = m.tree.table.next_id();
  if (top == bw) {
    auto s = sys::unlink_at(pfd.get(), nm, 0);
    if (!s.ok()) {
      if (need_wh) (void)sys::unlink_at(pfd.get(), wh::whiteout_of(nm), 0);
      drop_orphan(victim);
      return s;
    }
  } else {
    // A copy-up of this very file (an open for writing, a chmod: requests
    // the kernel does not serialize with unlink) may have put it on bw since
    // it was resolved; the whiteout would not hide it. copy_up looks for
    // the whiteout after placing its copy, so one of the two sees the other.
    auto up = sys::lstat_at(pfd.get(), nm);
    if (up.ok() && !S_ISDIR(up->st_mode) &&
        ino_at(m, *bs, bw, pfd.get(), nm, up.value()) == r.hits[0].ino) {
      if (sys::unlink_at(pfd.get(), nm, 0).ok()) {
        // The upper count went down instead.
        if (plinked) (void)add_plink_nlink(m, broot, r.hits[0].ino, +1);
        if (up->st_nlink <= 1)
          m.xino.unalias_if((*bs)[static_cast<size_t>(bw)].seed, up->st_ino, r.hits[0].ino);
      }
    }
  }
  p->dir_gen++;
  mark_unlinked(m, *bs, p, nm, r.hits[0], fence);
  if (victim && !m.tree.is_unlinked(*victim)) drop_orphan(victim);  // reached by another name
  return {};
}

Status rmdir(Mount& m, NodeId parent_id, std::string_view name) {
  NameChange changing(m);
  DirChange dir_change(m.dir_changes);
  AUFS_ASSIGN_OR_RETURN(NameInDir d, resolve_in(m, parent_id, name, true));
  auto& [p, bs, pw, r] = d;
  if (!r.positive()) return Errno{ENOENT};
  if (!S_ISDIR(r.hits[0].st.st_mode)) return Errno{ENOTDIR};
  std::string nm(name);
  // udba=notify: removing it removes what it held (whiteouts) first.
  if (OwnChanges* own = OwnChanges::current())
    if (NodePtr v = m.tree.table.by_ino(r.hits[0].ino)) own->node(v->id, true);
  std::string rel = sys::join(pw.rel, nm);
  // Redirected lower parts count: a renamed directory is empty only when
  // its old contents are whited out too.
  AUFS_ASSIGN_OR_RETURN(auto ents, list_dir(m, *bs, where_of(m, r, rel)));
  if (!ents.empty()) return Errno{ENOTEMPTY};
  int top = r.hits[0].branch;
  AUFS_ASSIGN_OR_RETURN(int bw, pick_change(m, *bs, pw, top));
  // An opaque directory stops the scan at itself, yet a lower same-named
  // entry may exist and must stay hidden after the directory goes.
  bool need_wh = top != bw || r.lower_exists ||
                 (r.opaque_branch >= 0 && name_below(*bs, pw, nm, top));
  if (need_wh) AUFS_TRY(ensure_dir_path(m, *bs, bw, p));
  AUFS_ASSIGN_OR_RETURN(auto pfd, sys::open_beneath((*bs)[static_cast<size_t>(bw)].root.get(), pw.rel, O_PATH | O_DIRECTORY));
  if (need_wh) AUFS_TRY(make_whiteout(m, *bs, bw, pfd.get(), nm));
  auto undo_wh = [&] {
    if (need_wh) (void)sys::unlink_at(pfd.get(), wh::whiteout_of(nm), 0);
  };
  const NodeId fence = m.tree.table.next_id();
  if (top == bw) {
    // Rename aside first (revertible), then delete the leftovers inside.
    auto aside = move_aside(m, pfd.get(), nm);
    if (!aside.ok()) {
      undo_wh();
      return Errno{aside.err()};
    }
    const std::string& tmp = aside.value();
    Status s;
    // Only whiteouts may be left inside (the merged listing was empty);
    // anything else means a racing create: undo.
    size_t count = 0;
    {
      auto tfd = sys::open_beneath(pfd.get(), tmp, O_PATH | O_DIRECTORY);
      auto inside = tfd.ok() ? sys::read_dir(tfd->get()) : Result<std::vector<sys::RawDirent>>(Errno{tfd.err()});
      if (inside.ok()) {
        count = inside->size();
        for (auto& e : *inside)
          if (!wh::is_whiteout_name(e.name)) s = Errno{ENOTEMPTY};
      } else {
        s = Errno{inside.err()};
      }
    }
    // dirwh: many whiteouts inside; delete them after replying, in the
    // orphan directory at the branch root: the parent's times are then the
    // ones the reply saw (AUFS puts the mtime back after its background
    // removal, but not the ctime). Where it cannot go there (a mount point
    // inside the branch), it goes now.
    bool later = false;
    if (s.ok() && static_cast<int>(count) > std::max(m.opts.dirwh, 1)) {
      auto orph = sys::open_beneath((*bs)[static_cast<size_t>(bw)].root.get(), std::string(wh::kOrph),
                                    O_PATH | O_DIRECTORY | O_NOFOLLOW);
      if (orph.ok() && sys::rename_at(pfd.get(), tmp, orph->get(), tmp, RENAME_NOREPLACE).ok()) {
        m.reaper.later(orph->get(), tmp);
        later = true;
      }
    }
    if (s.ok() && !later) {
      // No way back from here: some whiteouts inside may be gone, and the
      // directory would come back showing lower entries. The name is gone
      // already; what is left is a temporary (the checker removes it).
      if (auto r2 = remove_dir_tree_meta(pfd.get(), tmp); !r2.ok())
        spdlog::warn("{}: leftover {} could not be removed: {}", rel, tmp, std::strerror(r2.err()));
    }
    if (!s.ok()) {
      if (sys::rename_at(pfd.get(), tmp, pfd.get(), nm, RENAME_NOREPLACE).ok()) {
        undo_wh();
        return s;
      }
      spdlog::warn("{}: removal incomplete, leftover {} is hidden", rel, tmp);
    }
  }
  p->dir_gen++;
  mark_unlinked(m, *bs, p, nm, r.hits[0], fence);
  return {};
}

}  // namespace aufs::core
