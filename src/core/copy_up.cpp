// SPDX-License-Identifier: GPL-2.0-or-later
// Copy-up (see copy_up.hpp).
#include "core/copy_up.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "aufs_fuse/creds.hpp"
#include "aufs_fuse/sys.hpp"
#include "core/ino.hpp"
#include "core/orphans.hpp"
#include "core/placement.hpp"
#include "core/udba.hpp"
#include "core/util.hpp"

namespace aufs::core {
namespace {

// Its blocks cover its size: no hole to keep (inline or compressed data
// may report fewer blocks and takes the extent walk).
bool is_dense(const struct stat& st) {
  return static_cast<int64_t>(st.st_blocks) * 512 >= static_cast<int64_t>(st.st_size);
}

unsigned icex_bit(std::string_view key) {
  if (key.starts_with("security.")) return BranchSpec::kIcexSec;
  if (key.starts_with("system.")) return BranchSpec::kIcexSys;
  if (key.starts_with("trusted.")) return BranchSpec::kIcexTr;
  if (key.starts_with("user.")) return BranchSpec::kIcexUsr;
  return BranchSpec::kIcexOth;
}

int branch_index(const BranchSet& bs, uint32_t brid) {
  for (size_t i = 0; i < bs.size(); ++i)
    if (bs[i].id == brid) return static_cast<int>(i);
  return -1;
}

// Owner, mode, xattrs and times of src_dir/src_name onto dst_dir/dst_name
// (icex: xattr errors to ignore).
Status copy_attrs(const Mount& m, int src_dir, const std::string& src_name, int dst_dir,
                         const std::string& dst_name, const struct stat& st, unsigned icex) {
  // xattrs, except security.capability: a file capability would grant
  // privileges to whoever owns the copy; it is carried only with cpup_caps,
  // and set after chown (which drops it).
  std::vector<std::pair<std::string, std::vector<char>>> later;
  auto names = sys::listxattr_at(src_dir, src_name, 65536);
  if (names.ok()) {
    const char* p = names->data();
    const char* end = p + names->size();
    while (p < end) {
      std::string key(p);
      p += key.size() + 1;
      if (key.empty() || is_internal_xattr(key)) continue;
      auto val = sys::getxattr_at(src_dir, src_name, key.c_str(), 65536);
      if (!val.ok()) {
        // ENODATA: listed but not readable as such (gone meanwhile, or a
        // key the filesystem only lists); nothing to copy.
        if (val.err() == ENODATA || (icex & icex_bit(key))) continue;
        return Errno{val.err()};
      }
      if (key == "security.capability") {
        if (m.opts.cpup_caps) later.emplace_back(key, std::move(val.value()));
        continue;
      }
      auto s = sys::setxattr_at(dst_dir, dst_name, key.c_str(), val->data(), val->size(), 0);
      if (s.ok()) continue;
      // ENOTSUP: the writable branch cannot hold xattrs at all; EPERM for a
      // non-root daemon on trusted.*/security.*; icex* ignores the rest.
      bool ignorable = s.err() == ENOTSUP || s.err() == EOPNOTSUPP ||
                       (s.err() == EPERM && !daemon_is_root()) || (icex & icex_bit(key));
      if (!ignorable) return s;
      if (m.opts.verbose) spdlog::info("{}: xattr {} not copied: {}", dst_name, key, std::strerror(s.err()));
    }
  } else if (names.err() != ENOTSUP && names.err() != EOPNOTSUPP && !(icex & BranchSpec::kIcexAll)) {
    return Errno{names.err()};
  }
  if (daemon_is_root()) AUFS_TRY(sys::fchownat_nofollow(dst_dir, dst_name, st.st_uid, st.st_gid));
  if (!S_ISLNK(st.st_mode)) {
    // After chown, which clears set-id bits.
    AUFS_TRY(sys::chmod_at(dst_dir, dst_name, st.st_mode & 07777));
  }
  for (auto& [k, v] : later) {
    auto s = sys::setxattr_at(dst_dir, dst_name, k.c_str(), v.data(), v.size(), 0);
    if (!s.ok() && !(icex & BranchSpec::kIcexSec) && !(s.err() == EPERM && !daemon_is_root()))
      return s;
  }
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  AUFS_TRY(sys::utimens_at(dst_dir, dst_name, ts));
  return {};
}

// want_ino: the union inode number of the directory being copied; the
// entry at rel (on src_b, and on bw if there already) must be that one.
// src_rel: its path on src_b (differs from rel under dirren redirects).
Status copy_dir_entry(Mount& m, const BranchSet& bs, int src_b, int bw, const std::string& src_rel,
                             const std::string& rel, uint64_t want_ino) {
  auto [prel, name] = sys::split_parent(rel);
  auto [sprel, sname] = sys::split_parent(src_rel);
  AUFS_ASSIGN_OR_RETURN(auto spfd, sys::open_beneath(bs[static_cast<size_t>(src_b)].root.get(), sprel, O_PATH | O_DIRECTORY));
  AUFS_ASSIGN_OR_RETURN(auto st, sys::lstat_at(spfd.get(), sname));
  uint64_t keep_ino = ino_at(m, bs, src_b, spfd.get(), sname, st);
  // The name may hold another directory by now (this one was renamed or
  // removed since it was resolved): never copy that one in its place.
  if (!S_ISDIR(st.st_mode) || keep_ino != want_ino) return Errno{ESTALE};
  AUFS_ASSIGN_OR_RETURN(auto dpfd, sys::open_beneath(bs[static_cast<size_t>(bw)].root.get(), prel, O_PATH | O_DIRECTORY));
  // Already there (copied by another request meanwhile): it must be the
  // same directory, not another one that took the name.
  auto same_dir_there = [&]() -> Status {
    AUFS_ASSIGN_OR_RETURN(auto have, sys::lstat_at(dpfd.get(), name));
    if (!S_ISDIR(have.st_mode)) return Errno{ENOTDIR};
    if (ino_at(m, bs, bw, dpfd.get(), name, have) != want_ino) return Errno{ESTALE};
    return {};
  };
  if (auto have = sys::exists_at(dpfd.get(), name); have.ok() && have.value()) return same_dir_there();
  KeepTimes keep(dpfd.get(), m.dir_changes);
  AUFS_ASSIGN_OR_RETURN(std::string tmp, make_temp(m, name, [&](const std::string& t) {
    return made(sys::mkdir_at(dpfd.get(), t, 0700));
  }));
  auto s = copy_attrs(m, spfd.get(), sname, dpfd.get(), tmp, st,
                      bs[static_cast<size_t>(src_b)].spec.icex | bs[static_cast<size_t>(bw)].spec.icex);
  if (s.ok()) s = record_ino(m, dpfd.get(), tmp, keep_ino);
  // The inode made here, before its name is published (after the rename
  // the name may already stand for something else).
  auto tst = sys::lstat_at(dpfd.get(), tmp);
  if (s.ok() && !tst.ok()) s = Errno{tst.err()};
  if (s.ok()) {
    // The union directory keeps its inode number across copy-up.
    m.xino.alias(bs[static_cast<size_t>(bw)].seed, tst->st_ino, keep_ino);
    s = sys::rename_at(dpfd.get(), tmp, dpfd.get(), name, RENAME_NOREPLACE);
    if (!s.ok()) m.xino.unalias(bs[static_cast<size_t>(bw)].seed, tst->st_ino);
  }
  if (!s.ok()) {
    (void)sys::unlink_at(dpfd.get(), tmp, AT_REMOVEDIR);
    if (s.err() == EEXIST) return same_dir_there();  // made meanwhile by another request
    return s;
  }
  m.counters.copyups++;
  return {};
}

}  // namespace

Status ensure_dir_path(Mount& m, const BranchSet& bs, int bw, const NodePtr& dir) {
  {
    std::lock_guard<SmallMutex> g(dir->mu);
    if (std::find(dir->layers.begin(), dir->layers.end(), bw) != dir->layers.end()) return {};
  }
  auto [parent, dir_name, gone] = m.tree.naming(*dir);
  if (gone) return Errno{ENOENT};
  if (dir->id == kRootId || !parent) return Errno{EIO};  // root exists on every branch
  AUFS_TRY(ensure_dir_path(m, bs, bw, parent));
  std::string rel = m.tree.rel_path(*dir);
  // dirren: the top copy may live at another path (a renamed parent).
  std::optional<Where> w;
  if (m.opts.dirren) {
    AUFS_ASSIGN_OR_RETURN(auto ww, where(m, bs, dir));
    w = std::move(ww);
  }
  {
    std::lock_guard<SmallMutex> g(dir->mu);
    if (std::find(dir->layers.begin(), dir->layers.end(), bw) != dir->layers.end()) return {};
    if (dir->layers.empty()) return Errno{ESTALE};
    const std::string& src_rel = w ? w->on(dir->layers[0]) : rel;
    AUFS_TRY(copy_dir_entry(m, bs, dir->layers[0], bw, src_rel, rel, dir->ino));
    // bw is above every current layer (it was chosen above the top).
    dir->layers.push_front(bw);
    std::sort(dir->layers.begin(), dir->layers.end());
  }
  // udba=notify: the new part is watched before anything is made in it (the
  // kernel keeps its entry, so no lookup would add the watch).
  if (m.watcher) watch_dir(m, bs, dir, rel);
  return {};
}

namespace {

Status copy_up_dir(Mount& m, const BranchSet& bs, const NodePtr& n) {
  int top;
  {
    std::lock_guard<SmallMutex> g(n->mu);
    if (n->layers.empty()) return Errno{ESTALE};
    top = n->layers[0];
  }
  if (bs[static_cast<size_t>(top)].writable() && !m.ro()) return {};
  if (n->id == kRootId) return Errno{EROFS};
  AUFS_ASSIGN_OR_RETURN(Where pw, parent_where(m, bs, n));
  AUFS_ASSIGN_OR_RETURN(int bw, pick_cpup(m, bs, pw, top));
  return ensure_dir_path(m, bs, bw, n);
}

// A pseudo-link serves this name from the plnk store (src_rel, on writable
// branch b): give the name its own hard link on that branch (rename needs a
// real entry to move).
Status link_own_name(Mount& m, const BranchSet& bs, const NodePtr& n, const NodePtr& parent, int b,
                     const std::string& src_rel, const std::string& rel) {
  AUFS_TRY(ensure_dir_path(m, bs, b, parent));
  const Branch& wb = bs[static_cast<size_t>(b)];
  AUFS_ASSIGN_OR_RETURN(ParentFd dst, open_parent_of(wb.root.get(), rel));
  AUFS_ASSIGN_OR_RETURN(ParentFd src, open_parent_of(wb.root.get(), src_rel));
  // The name gets an upper link; the union's count stays (ino.hpp).
  AUFS_TRY(add_nlink(m, src.get(), src.leaf, -1));
  auto s = sys::link_at(src.get(), src.leaf, dst.get(), dst.leaf);
  if (!s.ok()) (void)add_nlink(m, src.get(), src.leaf, +1);
  if (!s.ok() && s.err() != EEXIST) return s;
  std::lock_guard<SmallMutex> g(n->mu);
  n->data_rel.clear();
  return {};
}

// The copy of src (entry st, on branch sb) under a temporary name in dst,
// with its data (as req asks) and attributes: the temporary's name.
Result<std::string> make_temp_copy(Mount& m, const Branch& sb, const Branch& wb,
                                   const ParentFd& src, const std::string& src_rel,
                                   const ParentFd& dst, const struct stat& st, const CopyUp& req,
                                   uint64_t* copied) {
  mode_t fmt = st.st_mode & S_IFMT;
  UniqueFd out;
  std::string target;
  if (fmt == S_IFLNK) {
    AUFS_ASSIGN_OR_RETURN(auto t, sys::readlink_at(src.get(), src.leaf));
    target = std::move(t);
  }
  AUFS_ASSIGN_OR_RETURN(std::string tmp, make_temp(m, dst.leaf, [&](const std::string& t) {
    if (fmt == S_IFREG) {
      return made(sys::open_at(dst.get(), t, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, 0600), &out);
    }
    if (fmt == S_IFLNK) return made(sys::symlink_at(target, dst.get(), t));
    return made(sys::mknod_at(dst.get(), t, fmt | 0600, st.st_rdev));
  }));
  Status s;
  bool has_data = false;
  if (fmt == S_IFREG) {
    off_t size = st.st_size;
    if (!req.with_data) size = 0;
    else if (req.max_size >= 0 && req.max_size < size) size = req.max_size;
    has_data = size > 0;
    // O_NOATIME: the copy is the daemon's read, not the user's; a lower
    // branch keeps its access times (where the daemon may ask for that).
    auto in = sys::open_beneath(sb.root.get(), src_rel, O_RDONLY | O_NOFOLLOW | O_NOATIME);
    if (!in.ok() && in.err() == EPERM) in = sys::open_beneath(sb.root.get(), src_rel, O_RDONLY | O_NOFOLLOW);
    if (!in.ok()) s = Errno{in.err()};
    else {
      auto c = sys::copy_data(in->get(), out.get(), size, is_dense(st), st.st_dev, wb.dev);
      if (!c.ok()) s = Errno{c.err()};
      else *copied = c.value();
    }
  }
  if (s.ok()) s = copy_attrs(m, src.get(), src.leaf, dst.get(), tmp, st, sb.spec.icex | wb.spec.icex);
  // Durable before it is published (overlayfs does the same): the rename
  // may reach the disk before delayed-allocation data does, and after a
  // power cut the name would hide the lower file behind a short copy.
  // Metadata-only steps need no sync: the journal keeps them in order. So
  // does a copy without data (an empty file, or one an O_TRUNC open
  // empties anyway).
  if (s.ok() && has_data && !m.opts.volatile_mode) s = sys::sync_fd(out.get());
  if (!s.ok()) {
    (void)sys::unlink_at(dst.get(), tmp, 0);
    return Errno{s.err()};
  }
  return tmp;
}

// The node's data is now dst/name on branch bw (caller holds n->mu).
void point_node_at_copy(Mount& m, const NodePtr& n, int bw, const Branch& wb, const ParentFd& dst) {
  n->layers = {bw};
  n->data_rel.clear();
  n->data_gen++;
  orphan_follows_copy(n, dst.get(), dst.leaf, wb.id);
  m.files.repoint_readers(n, dst.get(), dst.leaf, wb.id);
}

Status copy_up_file(Mount& m, const BranchSet& bs, const NodePtr& n, const CopyUp& req) {
  auto [parent, name, gone] = m.tree.naming(*n);
  if (gone) return Errno{stale_errno(m, n)};
  if (!parent) return Errno{ESTALE};
  AUFS_ASSIGN_OR_RETURN(Where pw, where(m, bs, parent));
  int src_b;
  std::string src_rel;
  std::string name_rel = sys::join(m.tree.rel_path(*parent), name);
  {
    std::lock_guard<SmallMutex> g(n->mu);
    if (n->layers.empty()) return Errno{ESTALE};
    src_b = n->layers[0];
    src_rel = n->data_rel;
  }
  bool plinked = !src_rel.empty();
  // dirren: under a renamed directory the lower name keeps its old path.
  if (src_rel.empty()) src_rel = pw.paths.empty() ? name_rel : sys::join(pw.on(src_b), name);
  if (bs[static_cast<size_t>(src_b)].writable() && req.to < 0) {
    if (!req.need_name || !plinked || src_rel == name_rel) return {};
    return link_own_name(m, bs, n, parent, src_b, src_rel, name_rel);
  }
  int bw = req.to;
  if (bw < 0) {
    AUFS_ASSIGN_OR_RETURN(bw, pick_cpup(m, bs, pw, src_b));
  }
  AUFS_TRY(ensure_dir_path(m, bs, bw, parent));

  std::lock_guard<SmallMutex> g(n->mu);  // one copy-up per node at a time
  if (n->layers.empty()) return Errno{ESTALE};
  if (req.to < 0 && bs[static_cast<size_t>(n->layers[0])].writable()) return {};  // raced
  if (req.to >= 0 && n->layers[0] <= req.to) return {};  // raced, done
  std::string rel = sys::join(m.tree.rel_path(*parent), name);
  const Branch& sb = bs[static_cast<size_t>(src_b)];
  const Branch& wb = bs[static_cast<size_t>(bw)];
  AUFS_ASSIGN_OR_RETURN(ParentFd src, open_parent_of(sb.root.get(), src_rel));
  auto st = sys::lstat_at(src.get(), src.leaf);
  if (!st.ok()) return Errno{absent(st.err()) ? stale_errno(m, n) : st.err()};
  // The name may lead to another object by now (renamed or replaced since
  // the node was resolved): never copy that one up in the node's place.
  if (!is_node_entry(m, bs, n, src_b, st.value())) return Errno{stale_errno(m, n)};
  AUFS_ASSIGN_OR_RETURN(ParentFd dst, open_parent_of(wb.root.get(), rel));
  // The name is whited out where the copy would go: it was removed since
  // the node was resolved; a copy would bring it back.
  auto whited = [&] {
    auto w = sys::exists_at(dst.get(), wh::whiteout_of(dst.leaf));
    return w.ok() && w.value();
  };
  if (whited()) return Errno{stale_errno(m, n)};
  KeepTimes keep(dst.get(), m.dir_changes);
  mode_t fmt = st->st_mode & S_IFMT;
  // Lower hard links stay one inode: the first copy-up is recorded in the
  // plnk store; later ones link to it instead of copying again. Any type
  // but a directory: a fifo's or device's other names must see its chmod.
  bool hardlinked = st->st_nlink > 1;
  bool use_plink = hardlinked && m.opts.plink;
  std::string pl = plink_name(n->ino);
  if (use_plink) {
    auto have = sys::lstat_at(wb.root.get(), pl);
    if (have.ok() && (have->st_mode & S_IFMT) == fmt) {
      AUFS_TRY(add_nlink(m, wb.root.get(), pl, -1));  // one more upper link, same union count
      auto ls = sys::link_at(wb.root.get(), pl, dst.get(), dst.leaf);
      if (!ls.ok()) (void)add_nlink(m, wb.root.get(), pl, +1);
      if (!ls.ok() && ls.err() != EEXIST) return ls;
      point_node_at_copy(m, n, bw, wb, dst);
      return {};
    }
  }

  uint64_t copied = 0;
  AUFS_ASSIGN_OR_RETURN(std::string tmp,
                        make_temp_copy(m, sb, wb, src, src_rel, dst, st.value(), req, &copied));
  // The inode made here, before its name is published (after the rename
  // the name may already stand for something else).
  Status s;
  auto tst = sys::lstat_at(dst.get(), tmp);
  if (!tst.ok()) s = Errno{tst.err()};
  // noplink: a hard-linked file copied up becomes a separate inode (its
  // other names keep the lower data), so it gets its own number.
  uint64_t new_ino = (fmt == S_IFREG && hardlinked && !m.opts.plink) ? 0 : n->ino;
  bool made_plink = false;
  if (s.ok() && new_ino) s = record_ino(m, dst.get(), tmp, new_ino);
  // The copy's names: this one and the plnk record; the union's: every
  // lower name (ino.hpp).
  if (s.ok() && use_plink) s = add_nlink(m, dst.get(), tmp, static_cast<int>(st->st_nlink) - 2);
  if (s.ok() && use_plink) {
    // Before the rename: a crash then leaves a complete copy that every
    // name of the inode already uses. Without it the names would part
    // (the copy for this one, the lower file for the others): fail.
    auto ls = sys::link_at(dst.get(), tmp, wb.root.get(), pl);
    if (!ls.ok() && ls.err() != EEXIST) s = ls;
    made_plink = ls.ok();
  }
  if (s.ok() && new_ino) m.xino.alias(wb.seed, tst->st_ino, n->ino);
  if (s.ok()) s = sys::rename_at(dst.get(), tmp, dst.get(), dst.leaf, RENAME_NOREPLACE);
  if (!s.ok()) {
    if (tst.ok() && new_ino) m.xino.unalias(wb.seed, tst->st_ino);
    // The pseudo-link would serve the other names from an unpublished copy.
    if (made_plink) (void)sys::unlink_at(wb.root.get(), pl, 0);
    (void)sys::unlink_at(dst.get(), tmp, 0);
    if (s.err() != EEXIST) return s;
    // An upper entry appeared meanwhile: use it if it is this node's (a
    // direct branch edit, or the node's own copy); another object that took
    // the name (renamed or created there since) is not.
    auto have = sys::lstat_at(dst.get(), dst.leaf);
    if (!have.ok()) return Errno{absent(have.err()) ? stale_errno(m, n) : have.err()};
    if ((have->st_mode & S_IFMT) != n->type ||
        (new_ino && ino_at(m, bs, bw, dst.get(), dst.leaf, have.value()) != n->ino))
      return Errno{stale_errno(m, n)};
  } else if (whited()) {
    // An unlink made its whiteout while the copy was being made (it checks
    // for a copy the same way after its whiteout): the name is gone.
    (void)sys::unlink_at(dst.get(), dst.leaf, 0);
    if (new_ino) m.xino.unalias(wb.seed, tst->st_ino);
    return Errno{stale_errno(m, n)};
  }
  m.hook("copy_published", name);  // before the parent's times are put back
  point_node_at_copy(m, n, bw, wb, dst);
  m.counters.copyups++;
  m.counters.copyup_bytes += copied;
  return {};
}

}  // namespace

Status copy_up(Mount& m, const NodePtr& n, const CopyUp& req) {
  auto bs = m.branches();
  if (n->is_dir()) return copy_up_dir(m, *bs, n);
  return copy_up_file(m, *bs, n, req);
}

Result<Where> where_for_write(Mount& m, const BranchSet& bs, const NodePtr& n, const CopyUp& req) {
  // A lower branch must never be changed through the union: whatever
  // happened between the copy-up and here, the location used for a change
  // is on a writable branch, or the change fails.
  for (int attempt = 0;; ++attempt) {
    AUFS_TRY(copy_up(m, n, req));
    m.hook("copied_up", "");
    auto w = where(m, bs, n);
    if (!w.ok()) return w;
    if (bs[static_cast<size_t>(w->layers[0])].writable() && !m.ro()) {
      // The change goes to the node's path: it must still be the node.
      auto st = stat_at(bs, w->layers[0], w->data_rel);
      if (!st.ok()) return Errno{absent(st.err()) ? stale_errno(m, n) : st.err()};
      if (!is_node_entry(m, bs, n, w->layers[0], st.value())) return Errno{stale_errno(m, n)};
      return w;
    }
    if (m.ro()) return Errno{EROFS};
    if (attempt >= 3) {
      spdlog::error("{}: still on read-only branch {} after copy-up; refusing the change", w->rel,
                    bs[static_cast<size_t>(w->layers[0])].spec.path);
      return Errno{EIO};
    }
  }
}

Result<std::shared_ptr<const Orphan>> copy_up_orphan(Mount& m, const BranchSet& bs, const NodePtr& n,
                                                     bool for_change, bool with_data) {
  std::lock_guard<SmallMutex> g(n->mu);  // one copy per node at a time
  Node::Extra* x = n->extra_if();
  if (!x || !x->orphan) return std::shared_ptr<const Orphan>();
  std::shared_ptr<const Orphan> o = x->orphan;
  int b = branch_index(bs, o->brid);
  if (b < 0) return Errno{ESTALE};  // its branch was deleted
  if (!for_change) return o;
  if (m.ro()) return Errno{EROFS};
  if (bs[static_cast<size_t>(b)].writable()) return o;
  int bw = first_writable(m, bs);
  if (bw < 0) return Errno{EROFS};
  const Branch& wb = bs[static_cast<size_t>(bw)];
  AUFS_ASSIGN_OR_RETURN(auto dfd, sys::open_beneath(wb.root.get(), std::string(wh::kOrph), O_PATH | O_DIRECTORY));
  UniqueFd out;
  auto tf = sys::open_at(dfd.get(), ".", O_TMPFILE | O_RDWR, 0600);
  if (tf.ok()) {
    out = std::move(tf.value());
  } else if (tf.err() == EOPNOTSUPP || tf.err() == EISDIR || tf.err() == EINVAL) {
    // No O_TMPFILE there: a temporary name, removed at once (as AUFS does).
    AUFS_ASSIGN_OR_RETURN(std::string tmp, make_temp(m, "orph", [&](const std::string& t) {
      return made(sys::open_at(dfd.get(), t, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW, 0600), &out);
    }));
    (void)sys::unlink_at(dfd.get(), tmp, 0);
  } else {
    return Errno{tf.err()};
  }
  auto in = sys::reopen(o->fd.get(), O_RDONLY | O_NOATIME);
  if (!in.ok() && in.err() == EPERM) in = sys::reopen(o->fd.get(), O_RDONLY);
  if (!in.ok()) return Errno{in.err()};
  AUFS_ASSIGN_OR_RETURN(auto st, sys::fstat_fd(in->get()));
  uint64_t copied = 0;
  if (with_data) {
    AUFS_ASSIGN_OR_RETURN(auto c, sys::copy_data(in->get(), out.get(), st.st_size, is_dense(st),
                                                  st.st_dev, wb.dev));
    copied = c;
  }
  AUFS_TRY(copy_attrs(m, in->get(), "", out.get(), "", st,
                      bs[static_cast<size_t>(b)].spec.icex | wb.spec.icex));
  auto copy = std::make_shared<const Orphan>(std::move(out), wb.id);
  x->orphan = copy;
  n->layers = {bw};
  n->data_rel.clear();
  n->data_gen++;
  m.files.repoint_readers(n, AT_FDCWD, sys::proc_fd_path(copy->fd.get()), wb.id);
  m.counters.copyups++;
  m.counters.copyup_bytes += copied;
  return copy;
}

// Whatever the cpup policy says.
Status copy_up_on_open(Mount& m, const BranchSet& bs, const NodePtr& n) {
  auto w = where(m, bs, n);
  if (!w.ok()) return {};
  int top = w->layers[0];
  std::string src_rel = w->data_rel;
  const BranchSpec& sp = bs[static_cast<size_t>(top)].spec;
  bool wanted = sp.coo == BranchSpec::Coo::All ||
                (!n->is_dir() && (sp.coo == BranchSpec::Coo::Reg || sp.coo == BranchSpec::Coo::Move));
  if (!wanted) return {};
  int bw = -1;
  for (int b = top - 1; b >= 0; --b)
    if (bs[static_cast<size_t>(b)].writable()) {
      bw = b;
      break;
    }
  if (bw < 0) return {};  // nothing above to copy to
  if (n->is_dir()) return ensure_dir_path(m, bs, bw, n);
  AUFS_TRY(copy_up(m, n, {.to = bw}));
  if (sp.coo == BranchSpec::Coo::Move && sp.writable()) {
    // moo: the source goes; nothing below needs hiding that was not hidden.
    auto [prel, leaf] = sys::split_parent(src_rel);
    auto pfd = sys::open_beneath(bs[static_cast<size_t>(top)].root.get(), prel, O_PATH | O_DIRECTORY);
    auto s = pfd.ok() ? sys::unlink_at(pfd->get(), leaf, 0) : Status{};
    if (!s.ok()) spdlog::warn("{}: moved up, but the source stays: {}", src_rel, std::strerror(s.err()));
  }
  return {};
}

}  // namespace aufs::core
