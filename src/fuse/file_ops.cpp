// SPDX-License-Identifier: GPL-2.0-or-later
// Open files (overlayfs's file.c): open and create with their choice of
// I/O path (passthrough or the daemon), reads, writes and the rest by handle.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "fuse/request.hpp"

namespace aufs::fuse_ops {
namespace {

// True if the mode changed.
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

}  // namespace

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

}  // namespace aufs::fuse_ops
