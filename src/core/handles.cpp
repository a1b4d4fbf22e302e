// SPDX-License-Identifier: GPL-2.0-or-later
// Open files (see handles.hpp).
#include "core/handles.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <spdlog/spdlog.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "aufs_fuse/sys.hpp"
#include "core/util.hpp"

namespace aufs::core {

int pass_flags(int flags) {
  constexpr int kPass = O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_DIRECT |
                        O_LARGEFILE | O_NOATIME | O_TRUNC;
  return flags & kPass;
}

namespace {
bool racy(const Node::CacheStamp& s) { return recent(s.ctime); }
bool writer(int flags) { return (flags & O_ACCMODE) != O_RDONLY; }

// close(2) reports the errors of a file system's flush operation only (NFS,
// FUSE, CIFS: delayed write errors). These have none: a FLUSH request for a
// file on them could only ever answer 0. A failed check keeps FLUSH.
bool close_is_silent_uncached(int fd) {
  auto t = sys::fs_type_fd(fd);
  if (!t.ok()) return false;
  switch (t.value()) {
    case EXT4_SUPER_MAGIC:  // ext2, ext3, ext4
    case XFS_SUPER_MAGIC:
    case TMPFS_MAGIC:
      return true;
    default:
      return false;
  }
}

// By block device: one statfs per file system, not one per open for
// writing. Anonymous devices (tmpfs, FUSE, ...) are numbered again after an
// unmount, so those are asked every time.
bool close_is_silent(int fd, dev_t dev) {
  if (major(dev) == 0) return close_is_silent_uncached(fd);
  static std::mutex mu;
  static std::unordered_map<dev_t, bool> known;
  {
    std::lock_guard<std::mutex> g(mu);
    if (auto it = known.find(dev); it != known.end()) return it->second;
  }
  bool silent = close_is_silent_uncached(fd);
  std::lock_guard<std::mutex> g(mu);
  known.emplace(dev, silent);
  return silent;
}
}  // namespace

std::unique_ptr<FileHandle> OpenFiles::open(const NodePtr& n, UniqueFd fd, int flags, uint32_t brid,
                                            const struct stat* known) {
  auto fh = std::make_unique<FileHandle>();
  fh->node = n;
  fh->fd = std::make_shared<const UniqueFd>(std::move(fd));
  fh->flags = flags;
  fh->brid = brid;
  auto st = known ? Result<struct stat>(*known) : sys::fstat_fd(fh->raw_fd());
  if (writer(flags)) fh->quiet_close = st.ok() && close_is_silent(fh->raw_fd(), st->st_dev);
  {
    std::lock_guard<SmallMutex> g(n->mu);
    fh->data_gen = n->data_gen;
    Node::Extra& x = n->extra();
    x.handles.push_back(fh.get());
    if (st.ok() && !(flags & O_TRUNC)) {
      auto stamp = Node::CacheStamp::of(st.value());
      fh->keep_cache = x.cache_stamp == stamp;
      x.cache_stamp = racy(stamp) ? Node::CacheStamp{} : stamp;
    } else {
      x.cache_stamp = {};
    }
  }
  n->open_count++;
  track(fh->brid, writer(flags), 1);
  return fh;
}

void OpenFiles::repoint_readers(const NodePtr& n, int dirfd, const std::string& name, uint32_t brid) {
  Node::Extra* x = n->extra_if();
  if (!x) return;
  for (FileHandle* fh : x->handles) {
    if (writer(fh->flags)) continue;
    int f = pass_flags(fh->flags & ~O_TRUNC) | O_CLOEXEC;
    if (dirfd != AT_FDCWD) f |= O_NOFOLLOW;
    auto fd = sys::open_at(dirfd, name, f);
    if (!fd.ok()) {
      spdlog::warn("{}: an open reader keeps the old copy: {}", name, std::strerror(fd.err()));
      continue;
    }
    std::lock_guard<std::mutex> g(fh->mu);
    fh->fd = std::make_shared<const UniqueFd>(std::move(fd.value()));  // readers in flight keep the old one
    fh->data_gen = n->data_gen;
    track(fh->brid, false, -1);
    track(brid, false, 1);
    fh->brid = brid;
  }
}

void OpenFiles::release(std::unique_ptr<FileHandle> fh) {
  if (!fh || !fh->node) return;
  // What this writer wrote went through the kernel's page cache, so the
  // cache matches the file as it is now (not with passthrough: the kernel
  // wrote the branch file directly).
  bool w = writer(fh->flags);
  // Taken under the handle's lock: the last request that used the handle
  // (answered before the kernel sent RELEASE) took the lock too, which
  // orders its uses before the handle is freed here.
  SharedFd fd;
  {
    std::lock_guard<std::mutex> g(fh->mu);
    fd = std::move(fh->fd);
  }
  std::optional<Node::CacheStamp> stamp;  // set: the writer's view of the file
  if (w && fd) {
    if (auto st = sys::fstat_fd(fd->get()); st.ok()) stamp = Node::CacheStamp::of(st.value());
  }
  {
    std::lock_guard<SmallMutex> g(fh->node->mu);
    Node::Extra& x = fh->node->extra();  // made when the handle was registered
    if (w) {
      x.cache_stamp = {};
      if (stamp && !fh->kernel_uncached && fh->data_gen == fh->node->data_gen && !racy(*stamp))
        x.cache_stamp = *stamp;
    }
    auto& hs = x.handles;
    hs.erase(std::remove(hs.begin(), hs.end(), fh.get()), hs.end());
  }
  fh->node->open_count--;
  track(fh->brid, w, -1);
}

void OpenFiles::track(uint32_t brid, bool w, int delta) {
  std::lock_guard<std::mutex> g(mu_);
  auto& c = by_branch_[brid];
  c.first += delta;
  if (w) c.second += delta;
}

size_t OpenFiles::count() const {
  std::lock_guard<std::mutex> g(mu_);
  size_t n = 0;
  for (auto& [id, c] : by_branch_) n += static_cast<size_t>(std::max(0, c.first));
  return n;
}

bool OpenFiles::busy(uint32_t brid, bool writers_only) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = by_branch_.find(brid);
  if (it == by_branch_.end()) return false;
  return (writers_only ? it->second.second : it->second.first) > 0;
}

}  // namespace aufs::core
