// SPDX-License-Identifier: GPL-2.0-or-later
// FUSE low-level adapter: decodes requests, runs the core, encodes replies.
#pragma once
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <unordered_set>

#include "aufs_fuse/union_fs.hpp"
#include "fuse/stats.hpp"
#include "fuse/features.hpp"
#include "fuse/inflight.hpp"
#include "fuse/passthrough.hpp"
#include "fuse/plus_demand.hpp"

namespace aufs {

struct AdapterConfig {
  double entry_timeout = 1.0;
  double attr_timeout = 1.0;
  double negative_timeout = 1.0;
  // udba=notify, for entries in directories it could not watch: reval's.
  double unwatched_timeout = 1.0;
  double entry_ttl(bool unwatched) const {
    return unwatched ? std::min(entry_timeout, unwatched_timeout) : entry_timeout;
  }
  double attr_ttl(bool unwatched) const {
    return unwatched ? std::min(attr_timeout, unwatched_timeout) : attr_timeout;
  }
  bool debug = false;
  // The kernel may keep directory listings (udba=notify or none, rdcache >
  // 0: a listing has an identity to check the kernel's copy against).
  bool cache_readdir = false;
};

const fuse_lowlevel_ops& fuse_operations();
// The same callbacks, each counting its request in FuseContext::stats first
// (counted_ops.cpp). Called once: it keeps `inner` for the wrappers.
fuse_lowlevel_ops counted_ops(const fuse_lowlevel_ops& inner);

struct FuseContext {
  Union* fs = nullptr;
  AdapterConfig cfg;
  fuse_session* se = nullptr;
  // Names answered "no such entry" with a timeout: the kernel caches them as
  // negative dentries, which only a notification by name can drop (after a
  // branch change). Bounded; past the bound, the timeout has to do.
  std::mutex neg_mu;
  std::unordered_set<std::string> negatives;  // "<parent id>/<name>"
  RequestStats stats;  // requests per opcode (aufsctl stats)
  Inflight inflight;   // requests being served, per node
  Features features;        // what libfuse and the kernel granted at INIT
  Passthrough passthrough;  // backing files of open files
  PlusDemand plus;          // which readdirplus replies carry attributes
};

// Drops every cached dentry and inode of the mount from the kernel (after a
// branch change). Called from the control file's SETXATTR handler: the
// kernel holds only that file's lock meanwhile, none the notifications need.
void invalidate_all(FuseContext& ctx);
// udba=notify: an entry changed behind the mount. dir 0: everything.
// Unless forced, sends nothing and returns false while a request on the
// directory or the cached child is being served (invalidator.hpp).
bool invalidate_entry(FuseContext& ctx, NodeId dir, const std::string& name, bool force = true);

}  // namespace aufs
