// SPDX-License-Identifier: GPL-2.0-or-later
// What every request callback shares (adapter.cpp, file_ops.cpp,
// dir_ops.cpp): its context, the exception guard, the caller, entry replies.
#pragma once
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <new>
#include <string_view>

#include "fuse/adapter.hpp"

namespace aufs::fuse_ops {

inline FuseContext& ctx_of(fuse_req_t req) { return *static_cast<FuseContext*>(fuse_req_userdata(req)); }
inline Union& fs_of(fuse_req_t req) { return *ctx_of(req).fs; }

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

// The caller; with_groups reads its supplementary groups now (else on demand).
Ctx make_ctx(fuse_req_t req, bool with_groups);
void log_req(fuse_req_t req, const char* op, fuse_ino_t ino, std::string_view name = {});
// A node's entry as the kernel caches it (timeouts per udba, see AdapterConfig).
fuse_entry_param entry_param(const AdapterConfig& cfg, const Entry& e);
void reply_entry(fuse_req_t req, const Entry& e);

inline FileHandle* fh_of(fuse_file_info* fi) { return fi ? reinterpret_cast<FileHandle*>(fi->fh) : nullptr; }
inline DirHandle* dh_of(fuse_file_info* fi) { return reinterpret_cast<DirHandle*>(fi->fh); }

// The set-id bits an unprivileged caller's write or truncation clears
// (KILLPRIV_V2: the kernel leaves it to us).
inline mode_t without_suidgid(mode_t m) {
  m &= ~S_ISUID;
  if ((m & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) m &= ~S_ISGID;  // else a lock mark
  return m;
}

// The callbacks of file_ops.cpp and dir_ops.cpp, for make_ops().
void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi);
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void op_write_buf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t off, fuse_file_info* fi);
void op_flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info* fi);
void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* fi_in, fuse_ino_t ino_out, off_t off_out, fuse_file_info* fi_out, size_t len, int flags);
void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi);
void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void op_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);

}  // namespace aufs::fuse_ops
