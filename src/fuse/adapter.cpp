// SPDX-License-Identifier: GPL-2.0-or-later
// Each callback: decode, call the core, reply. The core never sees libfuse
// types; no exception crosses back into libfuse (guard() maps them).
#include "adapter.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <new>

namespace aufs {
namespace {

FuseContext& ctx_of(fuse_req_t req) { return *static_cast<FuseContext*>(fuse_req_userdata(req)); }
Union& fs_of(fuse_req_t req) { return *ctx_of(req).fs; }

template <class F>
void guard(fuse_req_t req, const char* op, F&& f) {
  try {
    f();
  } catch (const std::bad_alloc&) {
    fuse_reply_err(req, ENOMEM);
  } catch (const std::exception& e) {
    spdlog::error("{}: internal error: {}", op, e.what());
    fuse_reply_err(req, EIO);
  }
}

// Same, for requests that take no reply (forget).
template <class F>
void guard_noreply(const char* op, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    spdlog::error("{}: internal error: {}", op, e.what());
  }
}

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

void log_req(fuse_req_t req, const char* op, fuse_ino_t ino, std::string_view name = {}) {
  if (!ctx_of(req).cfg.debug) return;
  const fuse_ctx* c = fuse_req_ctx(req);
  spdlog::debug("{} ino={} name='{}' uid={} pid={}", op, ino, name, c->uid, c->pid);
}

// A node's entry as the kernel caches it (timeouts per udba, see AdapterConfig).
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

FileHandle* fh_of(fuse_file_info* fi) { return fi ? reinterpret_cast<FileHandle*>(fi->fh) : nullptr; }
DirHandle* dh_of(fuse_file_info* fi) { return reinterpret_cast<DirHandle*>(fi->fh); }

// The set-id bits an unprivileged caller's write or truncation clears
// (KILLPRIV_V2: the kernel leaves it to us). True if the mode changed.
mode_t without_suidgid(mode_t m) {
  m &= ~S_ISUID;
  if ((m & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) m &= ~S_ISGID;  // else a lock mark
  return m;
}

bool kill_suidgid(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  mode_t m = st.st_mode & 07777;
  return without_suidgid(m) != m && ::fchmod(fd, without_suidgid(m)) == 0;
}

bool kill_requested(fuse_req_t req, const fuse_file_info* fi) {
#if AUFS_HAVE_KILLPRIV_V2
  if (ctx_of(req).features.active(Feature::KillprivV2)) return fi->kill_suidgid;
#else
  (void)fi;
#endif
  (void)req;
  return false;
}

// open(O_TRUNC) by an unprivileged caller: the kernel truncates through our
// OPEN (atomic_o_trunc) and, without KILLPRIV_V2, clears no set-id bits
// there. Without the kernel's word, a caller other than root counts as
// unprivileged.
bool kill_on_trunc(fuse_req_t req, const fuse_file_info* fi) {
  if (!(fi->flags & O_TRUNC)) return false;
  if (ctx_of(req).features.active(Feature::KillprivV2)) return kill_requested(req, fi);
  return fuse_req_ctx(req)->uid != 0;
}

// After the reply: the kernel's cached mode still has the bits.
void inval_attr(FuseContext& fc, fuse_ino_t ino) { fuse_lowlevel_notify_inval_inode(fc.se, ino, -1, 0); }

void op_init(void* userdata, fuse_conn_info* conn) {
  auto* fc = static_cast<FuseContext*>(userdata);
  auto want = [&](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  want(FUSE_CAP_SPLICE_READ);
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
  fc->features.negotiate(conn);
#if AUFS_HAVE_IO_URING
  // A ring's requests are served one after another by one thread: a write
  // held by a pause would hold the release behind it.
  if (conn->want & FUSE_CAP_OVER_IO_URING)
    fc->fs->refuse_pauses("writes cannot be paused on a mount served through io_uring (a held "
                          "write would hold its ring's other requests, the release among them); "
                          "mount without -o io_uring to pause");
#endif
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
    if (r.ok()) return reply_entry(req, r.value());
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

void fill_open(fuse_file_info* fi, std::unique_ptr<FileHandle> fh) {
  fi->fh = reinterpret_cast<uint64_t>(fh.release());
}

// Passthrough or not, for an opened handle (see passthrough.hpp): false
// when the open must fail with *err.
bool choose_io(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, FileHandle& fh, int* err) {
  // A writer given a backing file writes past the pause gate: it is pinned
  // (inside a ticket: a pause waits for it, then refuses while it is open).
  bool writer = (fh.flags & O_ACCMODE) != O_RDONLY;
  std::optional<WriteGate::Ticket> t;
  if (writer && ctx_of(req).passthrough.enabled()) t.emplace(fs_of(req).write_ticket());
  int b = ctx_of(req).passthrough.open(req, fs_of(req), ino, fh);
  if (b < 0) {
    *err = -b;
    return false;
  }
  if (b > 0 && writer) {
    fs_of(req).write_gate().pin();
    fh.pinned_writer = true;
  }
#if AUFS_HAVE_PASSTHROUGH
  fi->backing_id = b;
#else
  (void)fi;
#endif
  return true;
}

void release_handle(fuse_req_t req, fuse_ino_t ino, FuseContext& fc, FileHandle* fh) {
  if (!fh) return;
  fc.passthrough.release(req, ino, fh->kernel_uncached);
  if (fh->pinned_writer) fc.fs->write_gate().unpin();
  fc.fs->release(std::unique_ptr<FileHandle>(fh));
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  log_req(req, "open", ino);
  guard(req, "open", [&] {
    FuseContext& fc = ctx_of(req);
    if (int e = fc.passthrough.precheck(ino, fi->flags)) return (void)fuse_reply_err(req, e);
    auto r = fs_of(req).open(ino, fi->flags, make_ctx(req, false));
    if (!r.ok()) return (void)fuse_reply_err(req, r.err());
    bool killed = kill_on_trunc(req, fi) && kill_suidgid(r.value()->raw_fd());
    int err = 0;
    if (!choose_io(req, ino, fi, *r.value(), &err)) {
      fc.fs->release(std::move(r.value()));
      return (void)fuse_reply_err(req, err);
    }
    // The kernel refuses FOPEN_KEEP_CACHE with a backing file (EIO).
    fi->keep_cache = r.value()->keep_cache && !r.value()->kernel_uncached;
    // A reader's close has nothing to report, nor a writer's on a file
    // system without a flush operation: no FLUSH round trip for them.
    fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY || r.value()->quiet_close;
    fill_open(fi, std::move(r.value()));
    if (fuse_reply_open(req, fi) == -ENOENT) return release_handle(req, ino, fc, fh_of(fi));
    if (killed) inval_attr(fc, ino);
  });
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  log_req(req, "create", parent, name);
  guard(req, "create", [&] {
    auto r = fs_of(req).create(parent, name, mode, fi->flags, make_ctx(req, true));
    if (!r.ok()) return (void)fuse_reply_err(req, r.err());
    FuseContext& fc = ctx_of(req);
    fuse_entry_param p = entry_param(fc.cfg, r->entry);
    if (kill_on_trunc(req, fi) && kill_suidgid(r->fh->raw_fd())) {
      // An existing file opened by O_CREAT|O_TRUNC: the reply's mode too.
      p.attr.st_mode = without_suidgid(p.attr.st_mode);
    }
    int err = 0;
    if (!choose_io(req, p.ino, fi, *r->fh, &err)) {
      fc.fs->release(std::move(r->fh));
      fc.fs->forget(p.ino, 1);
      return (void)fuse_reply_err(req, err);
    }
    fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY || r->fh->quiet_close;
    fill_open(fi, std::move(r->fh));
    if (fc.cfg.debug) spdlog::debug("  -> node {} ino {} mode {:o}", p.ino, p.attr.st_ino, p.attr.st_mode);
    if (fuse_reply_create(req, &p, fi) == -ENOENT) {
      release_handle(req, p.ino, fc, fh_of(fi));
      fc.fs->forget(p.ino, 1);
    }
  });
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  (void)ino;
  guard(req, "read", [&] {
    auto fd = fs_of(req).io_fd(*fh_of(fi));
    if (!fd.ok()) return (void)fuse_reply_err(req, fd.err());
    fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
    buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    buf.buf[0].fd = fd.value()->get();
    buf.buf[0].pos = off;
    fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
  });
}

void op_write_buf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
  guard(req, "write", [&] {
    auto ticket = fs_of(req).write_ticket();
    auto fd = fs_of(req).io_fd(*fh_of(fi));
    if (!fd.ok()) return (void)fuse_reply_err(req, fd.err());
    fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
    out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    out.buf[0].fd = fd.value()->get();
    out.buf[0].pos = off;
    ssize_t n = fuse_buf_copy(&out, in, static_cast<fuse_buf_copy_flags>(0));
    if (n < 0) return (void)fuse_reply_err(req, static_cast<int>(-n));
    bool killed = kill_requested(req, fi) && kill_suidgid(fd.value()->get());
    FuseContext& fc = ctx_of(req);
    fuse_reply_write(req, static_cast<size_t>(n));
    if (killed) inval_attr(fc, ino);
  });
}

void op_flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  (void)ino;
  guard(req, "flush", [&] {
    // close() of a duplicate reports delayed write errors of the branch fs.
    auto fd = fs_of(req).io_fd(*fh_of(fi));
    if (!fd.ok()) return (void)fuse_reply_err(req, fd.err());
    int d = ::dup(fd.value()->get());
    int err = 0;
    if (d < 0) err = errno;
    else if (::close(d) < 0) err = errno;
    fuse_reply_err(req, err);
  });
}

void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  guard(req, "release", [&] {
    release_handle(req, ino, ctx_of(req), fh_of(fi));
    fuse_reply_err(req, 0);
  });
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  (void)ino;
  guard(req, "fsync", [&] {
    auto fd = fs_of(req).io_fd(*fh_of(fi));
    if (!fd.ok()) return (void)fuse_reply_err(req, fd.err());
    int r = datasync ? ::fdatasync(fd.value()->get()) : ::fsync(fd.value()->get());
    fuse_reply_err(req, r < 0 ? errno : 0);
  });
}

void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info* fi) {
  (void)ino;
  guard(req, "fallocate", [&] {
    auto ticket = fs_of(req).write_ticket();
    auto fd = fs_of(req).io_fd(*fh_of(fi));
    if (!fd.ok()) return (void)fuse_reply_err(req, fd.err());
    fuse_reply_err(req, ::fallocate(fd.value()->get(), mode, off, len) < 0 ? errno : 0);
  });
}

void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* fi_in,
                        fuse_ino_t ino_out, off_t off_out, fuse_file_info* fi_out, size_t len,
                        int flags) {
  (void)ino_in;
  (void)ino_out;
  guard(req, "copy_file_range", [&] {
    auto ticket = fs_of(req).write_ticket();
    auto in = fs_of(req).io_fd(*fh_of(fi_in));
    auto out = fs_of(req).io_fd(*fh_of(fi_out));
    if (!in.ok() || !out.ok()) return (void)fuse_reply_err(req, in.ok() ? out.err() : in.err());
    loff_t oi = off_in, oo = off_out;
    ssize_t n = ::copy_file_range(in.value()->get(), &oi, out.value()->get(), &oo, len, static_cast<unsigned>(flags));
    if (n < 0) return (void)fuse_reply_err(req, errno);
    fuse_reply_write(req, static_cast<size_t>(n));
  });
}

void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi) {
  (void)ino;
  guard(req, "lseek", [&] {
    auto fd = fs_of(req).io_fd(*fh_of(fi));
    if (!fd.ok()) return (void)fuse_reply_err(req, fd.err());
    off_t r = ::lseek(fd.value()->get(), off, whence);
    if (r < 0) return (void)fuse_reply_err(req, errno);
    fuse_reply_lseek(req, r);
  });
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  log_req(req, "opendir", ino);
  guard(req, "opendir", [&] {
    Ctx c = make_ctx(req, false);
    auto r = fs_of(req).opendir(ino, &c);
    if (!r.ok()) return (void)fuse_reply_err(req, r.err());
    // The kernel keeps the listing it read (cache_readdir); opendir says
    // whether what it kept is still the listing (keep_cache).
    fi->cache_readdir = ctx_of(req).cfg.cache_readdir;
    fi->keep_cache = r.value()->keep_cache;
    fi->fh = reinterpret_cast<uint64_t>(r.value().release());
    Union& fs = fs_of(req);
    if (fuse_reply_open(req, fi) == -ENOENT) fs.releasedir(std::unique_ptr<DirHandle>(dh_of(fi)));
  });
}

// Offsets are cookies: entry index + 1 into the snapshot, with "." and ".."
// as indices 0 and 1. They stay valid until releasedir (seekdir works).
void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  DirHandle& dh = *dh_of(fi);
  Union& fs = fs_of(req);
  // Released before any reply: once the kernel has the answer, the caller
  // may close the directory, and releasedir (another worker) frees dh.
  std::unique_lock<std::mutex> g(dh.mu);
  auto& cfg = ctx_of(req).cfg;
  Status st;
  if (off == 0 && dh.started) st = fs.rewinddir(dh);  // AUFS refreshes the merged listing
  else if (cfg.cache_readdir) st = fs.before_read(dh, off == 0);
  if (!st.ok()) {
    g.unlock();
    return (void)fuse_reply_err(req, st.err());
  }
  dh.started = true;
  std::vector<char> buf(size);
  size_t used = 0;
  size_t total = dh.entries.size() + 2;
  auto name_of = [&](size_t i) { return i < 2 ? (i == 0 ? "." : "..") : dh.entries[i - 2].name.c_str(); };
  auto dirent_of = [&](size_t i) {
    struct stat st {};
    if (i < 2) {
      st.st_mode = S_IFDIR;
      // d_ino 0 makes libc skip the entry, so ".." always gets a number.
      st.st_ino = i == 0 ? fs.ino_of_node(ino) : fs.parent_ino(ino);
    } else {
      const VEntry& e = dh.entries[i - 2];
      st.st_mode = static_cast<mode_t>(DTTOIF(e.type));
      st.st_ino = fs.entry_ino(e);
    }
    return st;
  };
  size_t start = static_cast<size_t>(off);
  if (!plus) {
    for (size_t i = start; i < total; ++i) {
      struct stat st = dirent_of(i);
      size_t rem = size - used;
      size_t n = fuse_add_direntry(req, buf.data() + used, rem, name_of(i), &st, static_cast<off_t>(i + 1));
      if (n > rem) break;
      used += n;
    }
  } else {
    // The entries that fit first (a NULL buffer gives an entry's size), then
    // their lookups in one batch, so each reply opens the directory once per
    // branch instead of once per entry.
    size_t end = start;
    for (size_t need = 0; end < total; ++end) {
      need += fuse_add_direntry_plus(req, nullptr, 0, name_of(end), nullptr, 0);
      if (need > size) break;
    }
    size_t first = std::max<size_t>(start, 2);
    std::vector<const VEntry*> batch;
    for (size_t i = first; i < end; ++i) batch.push_back(&dh.entries[i - 2]);
    auto found = fs.lookup_entries(dh, batch.data(), batch.size());
    for (size_t i = start; i < end; ++i) {
      fuse_entry_param p{};
      const Result<Entry>* r = i >= first ? &found[i - first] : nullptr;
      if (r && r->ok()) {
        p = entry_param(cfg, r->value());
      } else {
        // Gone since the listing, or "." and "..": a plain entry, no
        // lookup reference.
        p.attr = dirent_of(i);
      }
      size_t rem = size - used;
      size_t n = fuse_add_direntry_plus(req, buf.data() + used, rem, name_of(i), &p, static_cast<off_t>(i + 1));
      if (n > rem) {
        // Not sent: the kernel will not forget these references.
        for (size_t k = std::max(i, first); k < end; ++k)
          if (found[k - first].ok()) fs.forget(found[k - first]->id, 1);
        break;
      }
      used += n;
    }
  }
  g.unlock();
  fuse_reply_buf(req, buf.data(), used);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  guard(req, "readdir", [&] { do_readdir(req, ino, size, off, fi, false); });
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  guard(req, "readdirplus", [&] { do_readdir(req, ino, size, off, fi, true); });
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  (void)ino;
  guard(req, "releasedir", [&] {
    fs_of(req).releasedir(std::unique_ptr<DirHandle>(dh_of(fi)));
    fuse_reply_err(req, 0);
  });
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  (void)fi;
  guard(req, "fsyncdir", [&] { fuse_reply_err(req, fs_of(req).fsyncdir(ino, datasync != 0).err()); });
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

}  // namespace

const fuse_lowlevel_ops& fuse_operations() {
  static const fuse_lowlevel_ops ops = counted_ops(make_ops());
  return ops;
}

}  // namespace aufs
