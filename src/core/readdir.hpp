// SPDX-License-Identifier: GPL-2.0-or-later
// Directory listings (overlayfs's readdir.c).
#pragma once
#include <memory>
#include <vector>

#include "aufs_fuse/creds.hpp"
#include "aufs_fuse/handle.hpp"
#include "core/mount.hpp"

namespace aufs::core {

// ctx (optional): the caller, for nodirperm1's read check on every branch.
Result<std::unique_ptr<DirHandle>> opendir(Mount& m, NodeId id, const Ctx* ctx);
// Takes the listing again (from the rdcache while it is still valid).
Status rewinddir(Mount& m, DirHandle& dh);
// Before a part of the listing is sent (first: the read at offset 0 of a
// fresh open): keeps what the kernel may cache from predating a change.
Status before_read(Mount& m, DirHandle& dh, bool first);
// Lookups of listed entries (one readdirplus reply), each as lookup() of
// its name, adding a reference: the directory is opened once per branch.
std::vector<Result<Entry>> lookup_entries(Mount& m, DirHandle& dh, const VEntry* const* es, size_t n);

}  // namespace aufs::core
