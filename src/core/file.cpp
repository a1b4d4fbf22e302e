// SPDX-License-Identifier: GPL-2.0-or-later
// Opening files (overlayfs's file.c): copy-up at open for writing, the
// coo/moo attributes, and removed files reached by node.
#include "core/file.hpp"

#include <fcntl.h>

#include "aufs_fuse/control.hpp"
#include "aufs_fuse/sys.hpp"
#include "core/copy_up.hpp"
#include "core/dir.hpp"
#include "core/util.hpp"

namespace aufs::core {
namespace {

// An open that failed with err: a removed file's orphan, if it has one.
Result<std::unique_ptr<FileHandle>> open_orphan(Mount& m, const BranchSet& bs, const NodePtr& n,
                                                       int flags, int err) {
  // Only a node whose last name is gone: a node with a name is reached
  // through it (a failure there is not the orphan's to answer).
  if ((err != ESTALE && err != ENOENT) || !m.tree.is_unlinked(*n)) return Errno{err};
  bool change = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
  int f = pass_flags(flags);  // the magic link is followed: no O_NOFOLLOW
  if (!m.opts.dio) f &= ~O_DIRECT;
  for (int attempt = 0;; ++attempt) {
    AUFS_ASSIGN_OR_RETURN(auto o, copy_up_orphan(m, bs, n, change, !(flags & O_TRUNC)));
    if (!o) return Errno{err};
    AUFS_ASSIGN_OR_RETURN(auto fd, sys::reopen(o->fd.get(), f));
    auto fh = m.files.open(n, std::move(fd), flags, o->brid);
    // A change may have copied the orphan (and moved the open readers)
    // between copy_up_orphan and files.open: this reader must follow too.
    bool same;
    {
      std::lock_guard<SmallMutex> g(n->mu);
      const Node::Extra* x = n->extra_if();
      same = x && x->orphan == o;
    }
    if (same || attempt >= 3) return fh;
    m.files.release(std::move(fh));
  }
}

}  // namespace

Result<Created> create(Mount& m, NodeId parent, std::string_view name, mode_t mode, int flags,
                       const Ctx& ctx) {
  return make_new(m, parent, name, {.mode = (mode & 07777) | S_IFREG, .open = true, .open_flags = flags},
                  ctx);
}

Result<std::unique_ptr<FileHandle>> open(Mount& m, NodeId id, int flags) {
  if (id == kControlId) return Errno{EPERM};
  NodePtr n = m.tree.node(id);
  if (!n) return Errno{ESTALE};
  if (n->is_dir()) return Errno{EISDIR};
  bool write = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
  auto bs = m.branches();
  if (write) {
    if (m.ro()) return Errno{EROFS};
    // Copy-up at open (as overlayfs): no data copy when truncating anyway.
    if (auto s = copy_up(m, n, {.with_data = !(flags & O_TRUNC)}); !s.ok()) return open_orphan(m, *bs, n, flags, s.err());
  }
  if (S_ISREG(n->type) && !m.ro()) {
    if (auto s = copy_up_on_open(m, *bs, n); !s.ok()) return open_orphan(m, *bs, n, flags, s.err());
  }
  auto w = write ? where_for_write(m, *bs, n, {.with_data = !(flags & O_TRUNC)}) : where(m, *bs, n);
  if (!w.ok()) return open_orphan(m, *bs, n, flags, w.err());
  int f = pass_flags(flags) | O_NOFOLLOW;
  if (!m.opts.dio) f &= ~O_DIRECT;
  auto fd = sys::open_beneath((*bs)[static_cast<size_t>(w->layers[0])].root.get(), w->data_rel, f);
  if (!fd.ok()) return open_orphan(m, *bs, n, flags, absent(fd.err()) ? stale_errno(m, n) : fd.err());
  // The node's name may lead to another object by now (renamed or
  // replaced since the kernel resolved it): never open that one.
  AUFS_ASSIGN_OR_RETURN(auto st, sys::fstat_fd(fd->get()));
  if (!is_node_entry(m, *bs, n, w->layers[0], st)) return open_orphan(m, *bs, n, flags, stale_errno(m, n));
  return m.files.open(n, std::move(fd.value()), flags, (*bs)[static_cast<size_t>(w->layers[0])].id, &st);
}

Result<SharedFd> io_fd(FileHandle& fh) {
  std::lock_guard<std::mutex> g(fh.mu);
  if (!fh.fd || !fh.fd->valid()) return Errno{EIO};
  return fh.fd;
}

}  // namespace aufs::core
