// SPDX-License-Identifier: GPL-2.0-or-later
// rename(2) of the union (overlayfs's ovl_rename in dir.c): plan the target
// branch and what must hide or stay, bring both names up, then change the
// branches in an order that shows the old or the new name at every step.
#include "core/rename.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "aufs_fuse/dirren.hpp"
#include "aufs_fuse/sys.hpp"
#include "core/copy_up.hpp"
#include "core/dir.hpp"
#include "core/entry.hpp"
#include "core/ino.hpp"
#include "core/orphans.hpp"
#include "core/placement.hpp"
#include "core/udba.hpp"
#include "core/util.hpp"
#include "core/whiteout_ops.hpp"

namespace aufs::core {
namespace {

// Undo steps of a change in progress, run newest first unless done().
class Undo {
 public:
  ~Undo() {
    for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) (*it)();
  }
  void push(std::function<void()> f) { steps_.push_back(std::move(f)); }
  void done() { steps_.clear(); }

 private:
  std::vector<std::function<void()>> steps_;
};

// dirren: writes the redirect record of directory w (on writable branch bw,
// inside dirfd/name) for its current lower layers. *created: no record was
// there before. Returns the (branch id, path) pairs recorded.
Result<Redirects> write_redirects(Mount& m, const BranchSet& bs, int bw, const Where& w, int dirfd,
                                  const std::string& name, bool* created) {
  std::vector<dirren::Entry> es;
  Redirects out;
  for (size_t i = 0; i < w.layers.size(); ++i) {
    int b = w.layers[i];
    if (b <= bw) continue;
    const Branch& lb = bs[static_cast<size_t>(b)];
    // A writable part has no visible entries (rename checked): the old
    // name's whiteout hides it, nothing needs to follow the directory.
    if (lb.writable()) continue;
    auto st = stat_at(bs, b, w.at(i));
    // Only a part that is gone may be left out: on an I/O error the record
    // would drop the directory's lower contents.
    if (!st.ok() && !absent(st.err())) return Errno{st.err()};
    if (!st.ok() || !S_ISDIR(st->st_mode)) continue;  // vanished: nothing to keep
    es.push_back({static_cast<uint64_t>(lb.dev), static_cast<uint64_t>(lb.root_ino),
                  static_cast<uint64_t>(st->st_ino), lb.spec.path, w.at(i)});
    out.emplace_back(lb.id, w.at(i));
  }
  AUFS_ASSIGN_OR_RETURN(auto dfd, sys::open_beneath(dirfd, name, O_PATH | O_DIRECTORY));
  AUFS_ASSIGN_OR_RETURN(auto had, sys::exists_at(dfd.get(), std::string(dirren::kRecordName)));
  *created = !had;
  KeepTimes keep(dfd.get(), m.dir_changes);
  std::string text = dirren::encode(es);
  UniqueFd f;
  AUFS_ASSIGN_OR_RETURN(
      std::string tmp,
      make_temp(m, dirren::kRecordName.substr(wh::kDoublePrefix.size()), [&](const std::string& t) {
        return made(sys::open_at(dfd.get(), t, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, 0444), &f);
      }));
  // Complete and on disk before its name appears (a torn record would be
  // ignored, and the directory would lose its lower contents).
  Status s = sys::write_all(f.get(), text);
  if (s.ok()) s = sys::sync_fd(f.get());
  f.reset();
  if (s.ok()) s = sys::rename_at(dfd.get(), tmp, dfd.get(), std::string(dirren::kRecordName), 0);
  if (!s.ok()) {
    (void)sys::unlink_at(dfd.get(), tmp, 0);
    return Errno{s.err()};
  }
  // The record's name on disk before the whiteout and the rename that
  // depend on it (they are in other directories: no ordering without).
  if (auto rd = sys::open_beneath(dirfd, name, O_RDONLY | O_DIRECTORY); rd.ok())
    (void)sys::sync_fd(rd->get());
  return out;
}
}  // namespace

Status rename(Mount& m, NodeId parent_id, std::string_view name_sv, NodeId newparent_id,
                     std::string_view newname_sv, unsigned flags) {
  NameChange changing(m);
  DirChange dir_change(m.dir_changes);
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return Errno{EINVAL};
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) return Errno{EINVAL};
  AUFS_TRY(check_name(m, name_sv));
  AUFS_TRY(check_name(m, newname_sv));
  NodePtr p = m.tree.node(parent_id);
  NodePtr np = m.tree.node(newparent_id);
  if (!p || !np) return Errno{ESTALE};
  if (!p->is_dir() || !np->is_dir()) return Errno{ENOTDIR};
  std::string name(name_sv), newname(newname_sv);
  auto bs = m.branches();
  AUFS_ASSIGN_OR_RETURN(auto pw, where(m, *bs, p));
  AUFS_ASSIGN_OR_RETURN(auto npw, where(m, *bs, np));
  AUFS_ASSIGN_OR_RETURN(auto rs, resolve_child(m, *bs, pw, name, true));
  if (!rs.positive()) return Errno{ENOENT};
  AUFS_ASSIGN_OR_RETURN(auto rd, resolve_child(m, *bs, npw, newname, true));
  bool exchange = flags & RENAME_EXCHANGE;
  if (exchange && !rd.positive()) return Errno{ENOENT};
  if ((flags & RENAME_NOREPLACE) && rd.positive()) return Errno{EEXIST};
  std::string src_rel = sys::join(pw.rel, name), dst_rel = sys::join(npw.rel, newname);
  bool src_dir = S_ISDIR(rs.hits[0].st.st_mode);
  bool dst_dir = rd.positive() && S_ISDIR(rd.hits[0].st.st_mode);
  if (rd.positive() && !exchange) {
    if (rs.hits[0].ino == rd.hits[0].ino)
      return {};  // same file: POSIX says do nothing
    if (src_dir && !dst_dir) return Errno{ENOTDIR};
    if (!src_dir && dst_dir) return Errno{EISDIR};
  }
  if (src_rel == dst_rel) return {};
  if (m.ro()) return Errno{EROFS};
  if (dst_dir && !exchange) {
    AUFS_ASSIGN_OR_RETURN(auto ents, list_dir(m, *bs, where_of(m, rd, dst_rel)));
    if (!ents.empty()) return Errno{ENOTEMPTY};
  }

  // Target branch: the source's if writable, else the copy-up branch; an
  // existing target on a higher writable branch wins.
  int stop = rs.hits[0].branch;
  AUFS_ASSIGN_OR_RETURN(int btgt, pick_change(m, *bs, pw, stop));
  if (rd.positive() && rd.hits[0].branch < btgt &&
      (*bs)[static_cast<size_t>(rd.hits[0].branch)].writable())
    btgt = rd.hits[0].branch;

  // A directory with visible entries on other branches cannot be moved
  // without copying its whole tree: AUFS answers EXDEV (mv(1) then copies).
  // `on_rw` tells whether some of them lie on another writable branch.
  auto dir_movable = [&](const Resolution& r, const std::string& rel,
                         bool* on_rw = nullptr) -> Status {
    AUFS_ASSIGN_OR_RETURN(auto ents, list_dir(m, *bs, where_of(m, r, rel)));
    Status st;
    for (auto& e : ents)
      if (e.branch != btgt) {
        st = Errno{EXDEV};
        if (!on_rw) break;
        if ((*bs)[static_cast<size_t>(e.branch)].writable()) *on_rw = true;
      }
    return st;
  };
  // dirren: instead, the directory moves with a record of where its lower
  // parts stay (not for RENAME_EXCHANGE, which keeps the EXDEV rule). Only
  // read-only parts can stay behind: writes find a writable branch's copy
  // by the directory's own path, so parts there keep the EXDEV rule too.
  bool redirect = false;
  if (src_dir) {
    bool on_rw = false;
    auto mv = dir_movable(rs, src_rel, &on_rw);
    if (!mv.ok() && mv.err() == EXDEV && m.opts.dirren && !exchange && !on_rw) redirect = true;
    else AUFS_TRY(mv);
  }
  if (exchange && dst_dir) AUFS_TRY(dir_movable(rd, dst_rel));

  NodePtr sn = node_for(m, *bs, p, name, rs, pw.rel);
  NodePtr dn = rd.positive() ? node_for(m, *bs, np, newname, rd, npw.rel) : nullptr;
  if (!sn || (rd.positive() && !dn)) return Errno{EIO};
  // udba=notify: a moved directory reports its move on its own watch, a
  // replaced one the removal of what it held.
  if (OwnChanges* own = OwnChanges::current()) {
    own->node(sn->id);
    if (dn) own->node(dn->id, true);
  }
  AUFS_TRY(ensure_dir_path(m, *bs, btgt, p));
  AUFS_TRY(ensure_dir_path(m, *bs, btgt, np));
  auto bring_up = [&](const NodePtr& n, bool is_dir) -> Status {
    if (is_dir) {
      int top;
      {
        std::lock_guard<SmallMutex> g(n->mu);
        top = n->layers.empty() ? -1 : n->layers[0];
      }
      return top == btgt ? Status{} : ensure_dir_path(m, *bs, btgt, n);
    }
    return copy_up(m, n, {.need_name = true});  // also materialises pseudo-links
  };
  AUFS_TRY(bring_up(sn, src_dir));
  if (exchange) AUFS_TRY(bring_up(dn, dst_dir));

  const Branch& wb = (*bs)[static_cast<size_t>(btgt)];
  AUFS_ASSIGN_OR_RETURN(auto spfd, sys::open_beneath(wb.root.get(), pw.rel, O_PATH | O_DIRECTORY));
  AUFS_ASSIGN_OR_RETURN(auto dpfd, sys::open_beneath(wb.root.get(), npw.rel, O_PATH | O_DIRECTORY));
  AUFS_ASSIGN_OR_RETURN(auto dst_wh, sys::exists_at(dpfd.get(), wh::whiteout_of(newname)));

  // Something of the other name below btgt would merge into (or show
  // through) a directory moved there unless the directory is opaque.
  // An opaque directory being replaced hides lower entries of its name that
  // the new one must keep hiding.
  auto has_lower = [&](const Resolution& r, bool wh_on_tgt, const Where& parent,
                       const std::string& n) {
    return wh_on_tgt || r.lower_exists || (r.positive() && r.hits[0].branch != btgt) ||
           m.opts.diropq_always ||
           (r.opaque_branch >= 0 && name_below(*bs, parent, n, r.opaque_branch));
  };
  auto is_opaque_on_tgt = [&](int pfd, const std::string& n) {
    auto o = sys::lstat_at(pfd, n + "/" + std::string(wh::kOpaque));
    return o.ok();
  };
  // Each step that changed a branch pushes its undo; a failure undoes them
  // newest first, so the branches are as before the rename.
  Undo undo;
  auto opaque = [&](int pfd, const std::string& n) -> Status {
    if (is_opaque_on_tgt(pfd, n)) return {};
    AUFS_ASSIGN_OR_RETURN(auto dfd, sys::open_beneath(pfd, n, O_PATH | O_DIRECTORY));
    AUFS_TRY(make_opaque(m, *bs, btgt, dfd.get()));
    undo.push([pfd, n] { (void)sys::unlink_at(pfd, n + "/" + std::string(wh::kOpaque), 0); });
    return {};
  };

  if (exchange) {
    if (src_dir && has_lower(rd, dst_wh, npw, newname))
      AUFS_TRY(opaque(spfd.get(), name));
    auto src_wh = sys::exists_at(spfd.get(), wh::whiteout_of(name));
    if (dst_dir && has_lower(rs, src_wh.ok() && src_wh.value(), pw, name))
      AUFS_TRY(opaque(dpfd.get(), newname));
    AUFS_TRY(sys::rename_at(spfd.get(), name, dpfd.get(), newname, RENAME_EXCHANGE));
    undo.done();
    p->dir_gen++;
    np->dir_gen++;
    m.tree.set_parent(sn, np, newname, false);
    m.tree.set_parent(dn, p, name, false);
    for (auto [n, rel] : {std::pair{sn, dst_rel}, std::pair{dn, src_rel}}) {
      std::lock_guard<SmallMutex> g(n->mu);
      n->layers = {btgt};
      if (!n->is_dir()) n->data_rel.clear();
    }
    return {};
  }

  // dirren order (the daemon may die between any two steps; each state
  // shows either the old or the new name): 1. the rw part exists at the old
  // name (bring_up); 2. the record is written under a temporary name and
  // renamed into that directory (at the old name it lists the very parts a
  // plain merge finds); 3. the old name's whiteout (the rw directory still
  // wins there); 4. rename(2), the one switch to the new name.
  Redirects redir;
  int sfd = spfd.get(), dfd = dpfd.get();
  if (redirect) {
    AUFS_ASSIGN_OR_RETURN(Where sw, where(m, *bs, sn));
    bool record_created = false;
    AUFS_ASSIGN_OR_RETURN(redir, write_redirects(m, *bs, btgt, sw, sfd, name, &record_created));
    if (record_created)
      undo.push([sfd, name] {
        (void)sys::unlink_at(sfd, sys::join(name, std::string(dirren::kRecordName)), 0);
      });
  }
  bool need_src_wh = rs.lower_exists || stop != btgt ||
                     (rs.opaque_branch >= 0 && name_below(*bs, pw, name, stop));
  if (need_src_wh) {
    AUFS_ASSIGN_OR_RETURN(bool had, sys::exists_at(sfd, wh::whiteout_of(name)));
    if (!had) {
      AUFS_TRY(make_whiteout(m, *bs, btgt, sfd, name));
      undo.push([sfd, name] { (void)sys::unlink_at(sfd, wh::whiteout_of(name), 0); });
    }
  }
  // A redirected directory needs no opaque marker: its record already
  // stops the merge of whatever lies below the new name.
  if (src_dir && !redirect && has_lower(rd, dst_wh, npw, newname))
    AUFS_TRY(opaque(sfd, name));
  // A target directory on btgt may still hold whiteouts: move it aside.
  std::string aside;
  if (dst_dir && rd.hits[0].branch == btgt) {
    AUFS_ASSIGN_OR_RETURN(aside, move_aside(m, dfd, newname));
    undo.push([dfd, aside, newname] {
      (void)sys::rename_at(dfd, aside, dfd, newname, RENAME_NOREPLACE);
    });
  }
  // A lower name of a pseudo-linked inode replaced: the union counts one
  // link less than its upper inode does (ino.hpp).
  bool dst_plinked = false;
  if (rd.positive() && !dst_dir && rd.hits[0].branch != btgt && rd.hits[0].st.st_nlink > 1) {
    AUFS_ASSIGN_OR_RETURN(dst_plinked, add_plink_nlink(m, wb.root.get(), rd.hits[0].ino, -1));
    if (dst_plinked)
      undo.push([&m, &wb, ino = rd.hits[0].ino] { (void)add_plink_nlink(m, wb.root.get(), ino, +1); });
  }
  if (dn && !dst_dir) keep_orphan(m, *bs, dn);
  const NodeId fence = m.tree.table.next_id();
  if (auto s = sys::rename_at(sfd, name, dfd, newname, 0); !s.ok()) {
    drop_orphan(dn);
    return s;
  }
  undo.done();
  p->dir_gen++;
  np->dir_gen++;
  if (dst_wh) (void)remove_whiteout_if_any(dpfd.get(), newname, nullptr);
  if (!aside.empty()) {
    if (auto r2 = remove_dir_tree_meta(dpfd.get(), aside); !r2.ok())
      spdlog::warn("{}: leftover {} could not be removed: {}", dst_rel, aside, std::strerror(r2.err()));
  }
  if (rd.positive()) mark_unlinked(m, *bs, np, newname, rd.hits[0], fence);
  if (dn && !dst_dir && !m.tree.is_unlinked(*dn)) drop_orphan(dn);  // reached by another name
  m.tree.set_parent(sn, np, newname, false, redirect ? &redir : nullptr);
  {
    std::lock_guard<SmallMutex> g(sn->mu);
    sn->layers = {btgt};
    if (!sn->is_dir()) sn->data_rel.clear();
    // Redirected: the lower parts stay merged from their old paths.
    for (auto& [id, path] : redir)
      for (size_t b = static_cast<size_t>(btgt) + 1; b < bs->size(); ++b)
        if ((*bs)[b].id == id) sn->layers.push_back(static_cast<int>(b));
    std::sort(sn->layers.begin(), sn->layers.end());
  }
  return {};
}


}  // namespace aufs::core
