// SPDX-License-Identifier: GPL-2.0-or-later
// FUSE passthrough for open files (see passthrough.hpp).
#include "fuse/passthrough.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "aufs_fuse/union_fs.hpp"
#include "fuse/features.hpp"

namespace aufs {
namespace {

bool writes(int flags) { return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC); }

// Whether a copy-up can still move this file: it is on a branch that is
// not writable, and the mount has a writable branch to copy it to.
bool may_copy_up(Union& fs, uint32_t brid) {
  if (fs.read_only()) return false;
  auto bs = fs.branches();
  bool any_rw = false, on_rw = false;
  for (size_t i = 0; i < bs->size(); ++i) {
    any_rw = any_rw || (*bs)[i].writable();
    if ((*bs)[i].id == brid) on_rw = (*bs)[i].writable();
  }
  return any_rw && !on_rw;
}

}  // namespace

int Passthrough::precheck(fuse_ino_t ino, int flags) {
  if (!active_ || !writes(flags)) return 0;
  std::lock_guard<std::mutex> g(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end() || !it->second.pt_opens || !it->second.lower) return 0;
  conflicts_++;
  return ETXTBSY;
}

int Passthrough::open(fuse_req_t req, Union& fs, fuse_ino_t ino, FileHandle& fh) {
  (void)req;
  if (!active_) return 0;
  struct stat st;
  if (::fstat(fh.raw_fd(), &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  bool lower = may_copy_up(fs, fh.brid);
  // The kernel writes a backing file with the daemon's credentials, which
  // keep set-id bits: an unprivileged writer's write must come through here.
  bool setid = (st.st_mode & S_ISUID) || (st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP);
  bool eligible = !(setid && writes(fh.flags)) &&
                  (!lower || (mode_ == PassthroughMode::All && !writes(fh.flags)));
  std::lock_guard<std::mutex> g(mu_);
  NodeState& s = nodes_[ino];
  if (s.pt_opens) {
    // Every open of the inode must name its one backing file.
    if (s.dev == st.st_dev && s.ino == st.st_ino && !(setid && writes(fh.flags))) {
      s.pt_opens++;
      fh.kernel_uncached = true;
      opens_++;
      return s.backing;
    }
    conflicts_++;
    return -ETXTBSY;
  }
  if (!eligible || s.cached_opens) {
    (eligible ? fallbacks_ : ineligible_)++;
    s.cached_opens++;
    return 0;
  }
#if AUFS_HAVE_PASSTHROUGH
  int id = fuse_passthrough_open(req, fh.raw_fd());
  if (id > 0) {
    s = {id, st.st_dev, st.st_ino, lower, 1, 0};
    fh.kernel_uncached = true;
    opens_++;
    return id;
  }
#endif
  if (refused_++ == 0)
    spdlog::warn("passthrough: the kernel did not take a branch file as backing file (one on a "
                 "stacked file system?); such opens take the normal path (aufsctl counts them)");
  s.cached_opens++;
  return 0;
}

void Passthrough::release(fuse_req_t req, fuse_ino_t ino, bool passthrough) {
  (void)req;
  if (!active_) return;
  std::lock_guard<std::mutex> g(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  NodeState& s = it->second;
  if (passthrough) {
    if (s.pt_opens && --s.pt_opens == 0) {
#if AUFS_HAVE_PASSTHROUGH
      // The kernel holds the backing file itself for as long as open files
      // use it; the next first open registers it again.
      fuse_passthrough_close(req, s.backing);
#endif
      s.backing = 0;
    }
  } else if (s.cached_opens) {
    s.cached_opens--;
  }
  if (!s.pt_opens && !s.cached_opens) nodes_.erase(it);
}

std::string Passthrough::counters_json() const {
  nlohmann::ordered_json j;
  j["mode"] = mode_ == PassthroughMode::None ? "none" : mode_ == PassthroughMode::Rw ? "rw" : "all";
  j["opens"] = opens_.load();
  j["fallbacks"] = fallbacks_.load();
  j["refused"] = refused_.load();
  j["ineligible"] = ineligible_.load();
  j["conflicts"] = conflicts_.load();
  return j.dump();
}

}  // namespace aufs
