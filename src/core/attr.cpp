// SPDX-License-Identifier: GPL-2.0-or-later
// Attributes (overlayfs's inode.c): getattr with udba=reval's check of the
// backing entry, setattr with copy-up, readlink, access, statfs, fsyncdir.
#include "core/attr.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "aufs_fuse/control.hpp"
#include "aufs_fuse/sys.hpp"
#include "core/copy_up.hpp"
#include "core/entry.hpp"
#include "core/ino.hpp"
#include "core/util.hpp"

namespace aufs::core {

namespace {
// The node's data is its plnk record (taken before a handle's lock: the
// node's lock comes first).
bool served_by_plink(const NodePtr& n) {
  std::lock_guard<SmallMutex> g(n->mu);
  return !n->data_rel.empty();
}
}  // namespace

Result<struct stat> getattr(Mount& m, NodeId id, FileHandle* fh) {
  if (id == kControlId) return control_entry(m).attr;
  NodePtr n = m.tree.node(id);
  if (!n) return Errno{ESTALE};
  if (fh) {
    bool plinked = served_by_plink(n);
    std::lock_guard<std::mutex> g(fh->mu);
    if (fh->fd) {
      auto st = sys::fstat_fd(fh->raw_fd());
      if (st.ok()) {
        union_nlink(m, fh->raw_fd(), "", st.value(), plinked);
        return present(*n, st.value());
      }
    }
  }
  {
    // fstat(2) of an unlinked but open file comes without a handle: any
    // open handle of the node knows the inode.
    if (m.tree.is_unlinked(*n)) {
      std::lock_guard<SmallMutex> g(n->mu);
      if (const Node::Extra* x = n->extra_if()) {
        for (FileHandle* h : x->handles) {
          std::lock_guard<std::mutex> hg(h->mu);
          auto st = sys::fstat_fd(h->raw_fd());
          if (st.ok()) return present(*n, st.value());
        }
        if (x->orphan) {
          auto st = sys::fstat_fd(x->orphan->fd.get());
          if (st.ok()) return present(*n, st.value());
        }
      }
      return Errno{stale_errno(m, n)};
    }
  }
  auto bs = m.branches();
  AUFS_ASSIGN_OR_RETURN(auto w, where(m, *bs, n));
  const Branch& top = (*bs)[static_cast<size_t>(w.layers[0])];
  auto st = stat_at(*bs, w.layers[0], w.data_rel);
  if (st.ok() && ino_of(m, *bs, w.layers[0], st.value()) == n->ino) {
    struct stat out = st.value();
    if (top.writable()) union_nlink_at(m, top.root.get(), w.data_rel, out);
    if (n->is_dir()) {
      for (size_t i = 1; i < w.layers.size(); ++i) {
        auto ls = stat_at(*bs, w.layers[i], w.at(i));
        if (ls.ok() && ls->st_nlink > 2) out.st_nlink += ls->st_nlink - 2;
      }
    }
    return present(*n, out);
  }
  if (n->id == kRootId) {
    if (!st.ok()) return Errno{st.err()};
    return present(*n, st.value());
  }
  // udba=reval: the backing entry moved or vanished; look the name up again.
  auto [parent, name, gone] = m.tree.naming(*n);
  if (gone) return Errno{stale_errno(m, n)};
  if (!parent) return Errno{ENOENT};
  AUFS_ASSIGN_OR_RETURN(auto pw, where(m, *bs, parent));
  AUFS_ASSIGN_OR_RETURN(auto r, resolve_child(m, *bs, pw, name, false));
  if (!r.positive() || r.hits[0].ino != n->ino) return Errno{stale_errno(m, n)};
  AUFS_ASSIGN_OR_RETURN(auto e, make_entry(m, *bs, parent, name, r, pw.rel));
  m.tree.forget(e.id, 1);  // make_entry took a reference the kernel does not know of
  if (e.id != n->id) return Errno{stale_errno(m, n)};  // the name changed meanwhile
  return e.attr;
}

Result<std::string> readlink(Mount& m, NodeId id) {
  NodePtr n = m.tree.node(id);
  if (!n) return Errno{ESTALE};
  if (!S_ISLNK(n->type)) return Errno{EINVAL};
  auto bs = m.branches();
  AUFS_ASSIGN_OR_RETURN(auto w, where(m, *bs, n));
  auto [prel, leaf] = sys::split_parent(w.data_rel);
  AUFS_ASSIGN_OR_RETURN(auto pfd, sys::open_beneath((*bs)[static_cast<size_t>(w.layers[0])].root.get(), prel,
                               O_PATH | O_DIRECTORY));
  auto t = sys::readlink_at(pfd.get(), leaf);
  if (!t.ok() && (t.err() == EINVAL || absent(t.err()))) return Errno{stale_errno(m, n)};
  return t;
}

namespace {
// Owner and group of a setattr request, for chown(2) (-1: unchanged).
std::pair<uid_t, gid_t> setattr_owner(const SetAttrIn& in) {
  return {(in.valid & SetAttrIn::kUid) ? in.uid : static_cast<uid_t>(-1),
          (in.valid & SetAttrIn::kGid) ? in.gid : static_cast<gid_t>(-1)};
}

// The times of a setattr request, for utimensat(2); false: none asked for.
bool setattr_times(const SetAttrIn& in, struct timespec ts[2]) {
  ts[0].tv_nsec = UTIME_OMIT;
  ts[1].tv_nsec = UTIME_OMIT;
  if (in.valid & SetAttrIn::kAtimeNow) ts[0].tv_nsec = UTIME_NOW;
  else if (in.valid & SetAttrIn::kAtime) ts[0] = in.atime;
  if (in.valid & SetAttrIn::kMtimeNow) ts[1].tv_nsec = UTIME_NOW;
  else if (in.valid & SetAttrIn::kMtime) ts[1] = in.mtime;
  return in.valid & (SetAttrIn::kAtime | SetAttrIn::kMtime | SetAttrIn::kAtimeNow | SetAttrIn::kMtimeNow);
}

// fchmod(2), fchown(2), futimens(2) of an open file whose name is gone come
// by node, without a handle: they change the orphan (its copy if it lies on
// a read-only branch).
Result<struct stat> setattr_orphan(Mount& m, const BranchSet& bs, const NodePtr& n, const SetAttrIn& in,
                                          int err) {
  if ((err != ESTALE && err != ENOENT) || !m.tree.is_unlinked(*n)) return Errno{err};
  bool change = in.valid & ~SetAttrIn::kCtime;
  bool keep_data = !(in.valid & SetAttrIn::kSize) || in.size > 0;
  AUFS_ASSIGN_OR_RETURN(auto o, copy_up_orphan(m, bs, n, change, keep_data));
  if (!o) return Errno{err};
  int fd = o->fd.get();
  if (in.valid & (SetAttrIn::kUid | SetAttrIn::kGid)) {
    auto [u, g] = setattr_owner(in);
    AUFS_TRY(sys::fchownat_nofollow(fd, "", u, g));
  }
  if (in.valid & SetAttrIn::kMode) AUFS_TRY(sys::chmod_path_fd(fd, in.mode & 07777));
  if (in.valid & SetAttrIn::kSize) {
    AUFS_ASSIGN_OR_RETURN(auto tfd, sys::reopen(fd, O_WRONLY));
    AUFS_TRY(sys::truncate_fd(tfd.get(), in.size));
  }
  if (struct timespec ts[2]; setattr_times(in, ts)) AUFS_TRY(sys::utimens_at(fd, "", ts));
  AUFS_ASSIGN_OR_RETURN(auto st, sys::fstat_fd(fd));
  union_nlink(m, fd, "", st);
  return present(*n, st);
}

}  // namespace

Result<struct stat> setattr(Mount& m, NodeId id, const SetAttrIn& in, FileHandle* fh) {
  if (id == kControlId) return Errno{EPERM};
  NodePtr n = m.tree.node(id);
  if (!n) return Errno{ESTALE};
  if (m.ro() && (in.valid & ~SetAttrIn::kCtime)) return Errno{EROFS};
  bool only_trunc = (in.valid & SetAttrIn::kSize) && !(in.valid & ~(SetAttrIn::kSize | SetAttrIn::kCtime));
  // ftruncate on a writable handle: the handle is on the upper copy already.
  if (fh && only_trunc && (fh->flags & O_ACCMODE) != O_RDONLY) {
    bool plinked = served_by_plink(n);
    std::lock_guard<std::mutex> g(fh->mu);
    AUFS_TRY(sys::truncate_fd(fh->raw_fd(), in.size));
    AUFS_ASSIGN_OR_RETURN(auto st, sys::fstat_fd(fh->raw_fd()));
    union_nlink(m, fh->raw_fd(), "", st, plinked);
    return present(*n, st);
  }
  if ((in.valid & SetAttrIn::kSize) && n->is_dir()) return Errno{EISDIR};
  // A directory's new times must survive a KeepTimes racing it.
  std::optional<DirChange> dir_change;
  if (n->is_dir()) dir_change.emplace(m.dir_changes);
  auto bs = m.branches();
  Result<Where> w = Errno{EIO};
  if (in.valid & SetAttrIn::kSize) w = where_for_write(m, *bs, n, {.with_data = in.size > 0, .max_size = in.size});
  else if (in.valid & ~SetAttrIn::kCtime) w = where_for_write(m, *bs, n);
  else w = where(m, *bs, n);
  if (!w.ok()) return setattr_orphan(m, *bs, n, in, w.err());
  const Branch& b = (*bs)[static_cast<size_t>(w->layers[0])];
  auto [prel, leaf] = sys::split_parent(w->data_rel);
  std::string name = leaf.empty() ? std::string(".") : leaf;
  struct timespec ts[2];
  bool times = setattr_times(in, ts);
  // The parent only for the calls made by name (a chmod goes by its own fd).
  UniqueFd pfd;
  if (times || (in.valid & (SetAttrIn::kUid | SetAttrIn::kGid))) {
    AUFS_ASSIGN_OR_RETURN(pfd, sys::open_beneath(b.root.get(), prel, O_PATH | O_DIRECTORY));
  }
  if (in.valid & (SetAttrIn::kUid | SetAttrIn::kGid)) {
    auto [u, g] = setattr_owner(in);
    AUFS_TRY(sys::fchownat_nofollow(pfd.get(), name, u, g));
  }
  if (in.valid & SetAttrIn::kMode) {
    if (S_ISLNK(n->type)) return Errno{EOPNOTSUPP};
    AUFS_ASSIGN_OR_RETURN(auto ofd, sys::open_beneath(b.root.get(), w->data_rel, O_PATH | O_NOFOLLOW));
    AUFS_TRY(sys::chmod_path_fd(ofd.get(), in.mode & 07777));
  }
  if (in.valid & SetAttrIn::kSize) {
    AUFS_ASSIGN_OR_RETURN(auto tfd, sys::open_beneath(b.root.get(), w->data_rel, O_WRONLY | O_NOFOLLOW));
    AUFS_TRY(sys::truncate_fd(tfd.get(), in.size));
  }
  if (times) AUFS_TRY(sys::utimens_at(pfd.get(), name, ts));
  return getattr(m, id, nullptr);
}

Result<struct statvfs> statfs(Mount& m) {
  auto bs = m.branches();
  AUFS_ASSIGN_OR_RETURN(struct statvfs out, sys::statvfs_fd((*bs)[0].root.get()));
  if (m.opts.sum) {
    // Sum distinct filesystems, scaled to the first one's block size.
    std::vector<dev_t> seen{(*bs)[0].dev};
    for (size_t i = 1; i < bs->size(); ++i) {
      if (std::find(seen.begin(), seen.end(), (*bs)[i].dev) != seen.end()) continue;
      seen.push_back((*bs)[i].dev);
      auto vr = sys::statvfs_fd((*bs)[i].root.get());
      if (!vr.ok()) continue;
      const struct statvfs& v = vr.value();
      double f = static_cast<double>(v.f_frsize) / static_cast<double>(out.f_frsize ? out.f_frsize : 1);
      out.f_blocks += static_cast<fsblkcnt_t>(static_cast<double>(v.f_blocks) * f);
      out.f_bfree += static_cast<fsblkcnt_t>(static_cast<double>(v.f_bfree) * f);
      out.f_bavail += static_cast<fsblkcnt_t>(static_cast<double>(v.f_bavail) * f);
      out.f_files += v.f_files;
      out.f_ffree += v.f_ffree;
      out.f_favail += v.f_favail;
    }
  }
  out.f_namemax = wh::kMaxNameLen;
  return out;
}

Status fsyncdir(Mount& m, NodeId id, bool datasync) {
  NodePtr n = m.tree.node(id);
  if (!n) return Errno{ESTALE};
  auto bs = m.branches();
  AUFS_ASSIGN_OR_RETURN(auto w, where(m, *bs, n));
  AUFS_ASSIGN_OR_RETURN(auto fd, sys::open_beneath((*bs)[static_cast<size_t>(w.layers[0])].root.get(), w.data_rel,
                              O_RDONLY | O_DIRECTORY));
  return sys::sync_fd(fd.get(), datasync);
}

Status access(Mount& m, NodeId id, int mask, const Ctx& ctx) {
  AUFS_ASSIGN_OR_RETURN(auto st, getattr(m, id, nullptr));
  if (mask == F_OK) return {};
  if ((mask & W_OK) && m.ro()) return Errno{EROFS};
  mode_t mode = st.st_mode;
  if (ctx.uid == 0) {
    // root: read/write always; execute if any x bit is set, or a directory.
    if ((mask & X_OK) && !S_ISDIR(mode) && !(mode & 0111)) return Errno{EACCES};
    return {};
  }
  mode_t bits;
  bool in_group = st.st_gid == ctx.gid ||
                  std::find(ctx.groups.begin(), ctx.groups.end(), st.st_gid) != ctx.groups.end();
  if (st.st_uid == ctx.uid) bits = (mode >> 6) & 7;
  else if (in_group) bits = (mode >> 3) & 7;
  else bits = mode & 7;
  if ((mask & R_OK) && !(bits & 4)) return Errno{EACCES};
  if ((mask & W_OK) && !(bits & 2)) return Errno{EACCES};
  if ((mask & X_OK) && !(bits & 1)) return Errno{EACCES};
  return {};
}

}  // namespace aufs::core
