// SPDX-License-Identifier: GPL-2.0-or-later
// Attributes of union objects (overlayfs's inode.c).
#pragma once
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <string>

#include "aufs_fuse/creds.hpp"
#include "aufs_fuse/handle.hpp"
#include "core/mount.hpp"

namespace aufs::core {

Result<struct stat> getattr(Mount& m, NodeId id, FileHandle* fh);
Result<struct stat> setattr(Mount& m, NodeId id, const SetAttrIn& in, FileHandle* fh);
Result<std::string> readlink(Mount& m, NodeId id);
// access(2) on the union's view, for callers that ask (the kernel checks
// permissions itself under default_permissions).
Status access(Mount& m, NodeId id, int mask, const Ctx& ctx);
Result<struct statvfs> statfs(Mount& m);
Status fsyncdir(Mount& m, NodeId id, bool datasync);

}  // namespace aufs::core
