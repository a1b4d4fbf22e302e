// SPDX-License-Identifier: GPL-2.0-or-later
// Each callback: decode, call the core, reply. The core never sees libfuse
// types; no exception crosses back into libfuse (guard() maps them). Here:
// INIT, names and attributes, xattrs, statfs; files in file_ops.cpp,
// directory listings in dir_ops.cpp.
#include "fuse/adapter.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <new>

#include "fuse/request.hpp"

namespace aufs {
namespace fuse_ops {

Ctx make_ctx(fuse_req_t req, bool with_groups) {
  const fuse_ctx* c = fuse_req_ctx(req);
  Ctx x;
  x.uid = c->uid;
  x.gid = c->gid;
  x.pid = c->pid;
  x.umask = c->umask;
  // Groups are read from /proc only if a permission check needs them.
  x.fetch_groups = [req]() {
    std::vector<gid_t> g(64);
    int n = fuse_req_getgroups(req, static_cast<int>(g.size()), g.data());
    if (n > static_cast<int>(g.size())) {
      g.resize(static_cast<size_t>(n));
      n = fuse_req_getgroups(req, n, g.data());
    }
    g.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return g;
  };
  if (with_groups && daemon_is_root() && c->uid != 0) {
    gid_t buf[64];
    int n = fuse_req_getgroups(req, 64, buf);
    if (n > 64) {
      x.groups.resize(static_cast<size_t>(n));
      n = fuse_req_getgroups(req, n, x.groups.data());
      if (n >= 0) x.groups.resize(static_cast<size_t>(n));
      x.have_groups = n >= 0;
    } else if (n >= 0) {
      x.groups.assign(buf, buf + n);
      x.have_groups = true;
    }
  }
  return x;
}

void log_req(fuse_req_t req, const char* op, fuse_ino_t ino, std::string_view name) {
  if (!ctx_of(req).cfg.debug) return;
  const fuse_ctx* c = fuse_req_ctx(req);
  spdlog::debug("{} ino={} name='{}' uid={} pid={}", op, ino, name, c->uid, c->pid);
}

fuse_entry_param entry_param(const AdapterConfig& cfg, const Entry& e) {
  fuse_entry_param p{};
  p.ino = e.id;
  p.generation = 1;
  p.attr = e.attr;
  p.attr_timeout = cfg.attr_ttl(e.unwatched);
  p.entry_timeout = cfg.entry_ttl(e.unwatched);
  return p;
}

void reply_entry(fuse_req_t req, const Entry& e) {
  auto& cfg = ctx_of(req).cfg;
  fuse_entry_param p = entry_param(cfg, e);
  Union& fs = fs_of(req);  // req is freed by the reply
  if (cfg.debug) spdlog::debug("  -> node {} ino {} mode {:o}", e.id, e.attr.st_ino, e.attr.st_mode);
  if (fuse_reply_entry(req, &p) == -ENOENT) {
    // The request was interrupted: the kernel will not remember the entry.
    fs.forget(e.id, 1);
  }
}

namespace {

void op_init(void* userdata, fuse_conn_info* conn) {
  auto* fc = static_cast<FuseContext*>(userdata);
  auto want = [&](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  want(FUSE_CAP_SPLICE_WRITE);
  want(FUSE_CAP_SPLICE_MOVE);
  want(FUSE_CAP_READDIRPLUS);
  want(FUSE_CAP_READDIRPLUS_AUTO);
  want(FUSE_CAP_ATOMIC_O_TRUNC);
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_CACHE_SYMLINKS);
  want(FUSE_CAP_ASYNC_DIO);
  // acl: the kernel enforces POSIX ACLs (read through getxattr) and leaves
  // umask to us, so default ACLs of the branch directories apply.
  if (fc->fs->options().acl) {
    if (conn->capable & FUSE_CAP_POSIX_ACL) conn->want |= FUSE_CAP_POSIX_ACL;
    if (conn->capable & FUSE_CAP_DONT_MASK) conn->want |= FUSE_CAP_DONT_MASK;
    else spdlog::warn("acl: the kernel does not offer POSIX ACL support for FUSE");
  }
  // Locks are left to the kernel (local semantics, as AUFS: locks live on
  // the union file, not on the branches).
  conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_WRITEBACK_CACHE);
  // Requests are read, not spliced (libfuse turns splicing on because we
  // have write_buf): its pipe must hold libfuse's whole request buffer
  // (1 MiB and a page), more than the default pipe-max-size lets a pipe
  // grow to without CAP_SYS_RESOURCE; every receive fell back to read(2)
  // on our machines, and libfuse 3.18 made a new pipe and asked /proc
  // again before each one (7 system calls a request).
  conn->want &= ~FUSE_CAP_SPLICE_READ;
  if (fc->plus.mode() == PlusMode::Off) conn->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
  fc->features.negotiate(conn);
  // A ring's requests are served one after another by one thread: a write
  // held by a pause would hold the release behind it.
  if (fc->features.uring_asked())
    fc->fs->refuse_pauses("writes cannot be paused on a mount served through io_uring (a held "
                          "write would hold its ring's other requests, the release among them); "
                          "mount without -o io_uring to pause");
  fc->passthrough.configure(fc->fs->options().passthrough, fc->features.active(Feature::Passthrough));
  conn->max_write = 1 << 20;
  conn->max_readahead = 1 << 20;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  log_req(req, "lookup", parent, name);
  guard(req, "lookup", [&] {
    Ctx c = make_ctx(req, false);
    auto r = fs_of(req).lookup(parent, name, &c);
    if (r.ok()) {
      if (!S_ISDIR(r->attr.st_mode)) ctx_of(req).plus.looked_up(fuse_req_ctx(req)->pid);
      return reply_entry(req, r.value());
    }
    if (r.err() == ENOENT && ctx_of(req).cfg.negative_timeout > 0) {
      FuseContext& fc = ctx_of(req);
      {
        std::lock_guard<std::mutex> g(fc.neg_mu);
        if (fc.negatives.size() < 65536) fc.negatives.insert(std::to_string(parent) + "/" + name);
      }
      fuse_entry_param p{};
      p.ino = 0;
      p.entry_timeout = fc.fs->unwatched_dir(parent)
                            ? std::min(fc.cfg.negative_timeout, fc.cfg.unwatched_timeout)
                            : fc.cfg.negative_timeout;
      fuse_reply_entry(req, &p);
      return;
    }
    fuse_reply_err(req, r.err());
  });
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n) {
  guard_noreply("forget", [&] { fs_of(req).forget(ino, n); });
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* f) {
  guard_noreply("forget_multi", [&] {
    for (size_t i = 0; i < count; ++i) fs_of(req).forget(f[i].ino, f[i].nlookup);
  });
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  log_req(req, "getattr", ino);
  guard(req, "getattr", [&] {
    auto r = fs_of(req).getattr(ino, fh_of(fi));
    if (!r.ok()) return (void)fuse_reply_err(req, r.err());
    fuse_reply_attr(req, &r.value(), ctx_of(req).cfg.attr_ttl(fs_of(req).unwatched_node(ino)));
  });
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  log_req(req, "setattr", ino);
  guard(req, "setattr", [&] {
    SetAttrIn in;
    if (to_set & FUSE_SET_ATTR_MODE) { in.valid |= SetAttrIn::kMode; in.mode = attr->st_mode; }
    if (to_set & FUSE_SET_ATTR_UID) { in.valid |= SetAttrIn::kUid; in.uid = attr->st_uid; }
    if (to_set & FUSE_SET_ATTR_GID) { in.valid |= SetAttrIn::kGid; in.gid = attr->st_gid; }
    if (to_set & FUSE_SET_ATTR_SIZE) { in.valid |= SetAttrIn::kSize; in.size = attr->st_size; }
    if (to_set & FUSE_SET_ATTR_ATIME) { in.valid |= SetAttrIn::kAtime; in.atime = attr->st_atim; }
    if (to_set & FUSE_SET_ATTR_MTIME) { in.valid |= SetAttrIn::kMtime; in.mtime = attr->st_mtim; }
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) in.valid |= SetAttrIn::kAtimeNow;
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) in.valid |= SetAttrIn::kMtimeNow;
    if (to_set & FUSE_SET_ATTR_CTIME) in.valid |= SetAttrIn::kCtime;
#if AUFS_HAVE_KILLPRIV_V2
    // KILLPRIV_V2: FATTR_KILL_SUIDGID (an unprivileged truncate) arrives as
    // FUSE_SET_ATTR_KILL_SUID; the set-id bits go in the same change.
    if ((to_set & FUSE_SET_ATTR_KILL_SUID) && !(to_set & FUSE_SET_ATTR_MODE) &&
        ctx_of(req).features.active(Feature::KillprivV2)) {
      auto cur = fs_of(req).getattr(ino, fh_of(fi));
      if (!cur.ok()) return (void)fuse_reply_err(req, cur.err());
      mode_t m = cur->st_mode & 07777, keep = without_suidgid(m);
      if (S_ISREG(cur->st_mode) && keep != m) {
        in.valid |= SetAttrIn::kMode;
        in.mode = keep;
      }
    }
#endif
    auto r = fs_of(req).setattr(ino, in, fh_of(fi), make_ctx(req, false));
    if (!r.ok()) return (void)fuse_reply_err(req, r.err());
    fuse_reply_attr(req, &r.value(), ctx_of(req).cfg.attr_ttl(fs_of(req).unwatched_node(ino)));
  });
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  guard(req, "readlink", [&] {
    auto r = fs_of(req).readlink(ino);
    if (!r.ok()) return (void)fuse_reply_err(req, r.err());
    fuse_reply_readlink(req, r->c_str());
  });
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  log_req(req, "mknod", parent, name);
  guard(req, "mknod", [&] {
    auto r = fs_of(req).mknod(parent, name, mode, rdev, make_ctx(req, true));
    if (!r.ok()) return (void)fuse_reply_err(req, r.err());
    reply_entry(req, r.value());
  });
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  log_req(req, "mkdir", parent, name);
  guard(req, "mkdir", [&] {
    auto r = fs_of(req).mkdir(parent, name, mode, make_ctx(req, true));
    if (!r.ok()) return (void)fuse_reply_err(req, r.err());
    reply_entry(req, r.value());
  });
}

void op_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  log_req(req, "symlink", parent, name);
  guard(req, "symlink", [&] {
    auto r = fs_of(req).symlink(link, parent, name, make_ctx(req, true));
    if (!r.ok()) return (void)fuse_reply_err(req, r.err());
    reply_entry(req, r.value());
  });
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  log_req(req, "link", newparent, newname);
  guard(req, "link", [&] {
    auto r = fs_of(req).link(ino, newparent, newname, make_ctx(req, false));
    if (!r.ok()) return (void)fuse_reply_err(req, r.err());
    reply_entry(req, r.value());
  });
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  log_req(req, "unlink", parent, name);
  guard(req, "unlink", [&] { fuse_reply_err(req, fs_of(req).unlink(parent, name).err()); });
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  log_req(req, "rmdir", parent, name);
  guard(req, "rmdir", [&] { fuse_reply_err(req, fs_of(req).rmdir(parent, name).err()); });
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
               const char* newname, unsigned int flags) {
  log_req(req, "rename", parent, name);
  guard(req, "rename", [&] {
    fuse_reply_err(req, fs_of(req).rename(parent, name, newparent, newname, flags).err());
  });
}

void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  (void)ino;
  guard(req, "statfs", [&] {
    auto r = fs_of(req).statfs();
    if (!r.ok()) return (void)fuse_reply_err(req, r.err());
    fuse_reply_statfs(req, &r.value());
  });
}

void reply_xattr_result(fuse_req_t req, Result<std::vector<char>>& r, size_t size) {
  if (!r.ok()) return (void)fuse_reply_err(req, r.err());
  if (size == 0) return (void)fuse_reply_xattr(req, r->size());
  if (r->size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, r->data(), r->size());
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  guard(req, "getxattr", [&] {
#if AUFS_HAVE_IO_URING
    // The control file's info tells whether requests come through a ring.
    if (ino == kControlId && fuse_req_is_uring(req)) ctx_of(req).features.saw_uring_request();
#endif
    auto r = fs_of(req).getxattr(ino, name, size);
    reply_xattr_result(req, r, size);
  });
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  guard(req, "listxattr", [&] {
    auto r = fs_of(req).listxattr(ino, size);
    reply_xattr_result(req, r, size);
  });
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                 int flags) {
  guard(req, "setxattr", [&] {
    FuseContext& fc = ctx_of(req);
    auto st = fc.fs->setxattr(ino, name, value, size, flags, make_ctx(req, false));
    // After a branch change (user.aufs.remount, or .../TOKEN when the tool
    // asks for the reason) the kernel's caches go before the caller hears
    // back, so its next access sees the new view; a stats reset keeps them.
    // No lock is held here and the other workers keep serving, so the
    // notifications cannot deadlock.
    if (st.ok() && ino == kControlId && std::string_view(name).starts_with(kXattrRemount))
      invalidate_all(fc);
    fuse_reply_err(req, st.err());
  });
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  guard(req, "removexattr", [&] { fuse_reply_err(req, fs_of(req).removexattr(ino, name).err()); });
}

void op_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  guard(req, "access", [&] {
    Ctx c = make_ctx(req, true);
    fuse_reply_err(req, fs_of(req).access(ino, mask, c).err());
  });
}

}  // namespace

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops o{};
  o.init = op_init;
  o.lookup = op_lookup;
  o.forget = op_forget;
  o.forget_multi = op_forget_multi;
  o.getattr = op_getattr;
  o.setattr = op_setattr;
  o.readlink = op_readlink;
  o.mknod = op_mknod;
  o.mkdir = op_mkdir;
  o.symlink = op_symlink;
  o.link = op_link;
  o.unlink = op_unlink;
  o.rmdir = op_rmdir;
  o.rename = op_rename;
  o.open = op_open;
  o.create = op_create;
  o.read = op_read;
  o.write_buf = op_write_buf;
  o.flush = op_flush;
  o.release = op_release;
  o.fsync = op_fsync;
  o.fallocate = op_fallocate;
  o.copy_file_range = op_copy_file_range;
  o.lseek = op_lseek;
  o.opendir = op_opendir;
  o.readdir = op_readdir;
  o.readdirplus = op_readdirplus;
  o.releasedir = op_releasedir;
  o.fsyncdir = op_fsyncdir;
  o.statfs = op_statfs;
  o.getxattr = op_getxattr;
  o.listxattr = op_listxattr;
  o.setxattr = op_setxattr;
  o.removexattr = op_removexattr;
  o.access = op_access;
  return o;
}


}  // namespace fuse_ops

const fuse_lowlevel_ops& fuse_operations() {
  static const fuse_lowlevel_ops ops = counted_ops(fuse_ops::make_ops());
  return ops;
}

}  // namespace aufs
