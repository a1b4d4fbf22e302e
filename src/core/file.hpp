// SPDX-License-Identifier: GPL-2.0-or-later
// Opening files (overlayfs's file.c).
#pragma once
#include <memory>
#include <string_view>

#include "aufs_fuse/creds.hpp"
#include "aufs_fuse/handle.hpp"
#include "core/mount.hpp"

namespace aufs::core {

Result<std::unique_ptr<FileHandle>> open(Mount& m, NodeId id, int flags);
Result<Created> create(Mount& m, NodeId parent, std::string_view name, mode_t mode, int flags,
                       const Ctx& ctx);
// The fd to use for I/O on fh (re-pointed after a copy-up), kept open for
// as long as the caller holds it.
Result<SharedFd> io_fd(FileHandle& fh);

}  // namespace aufs::core
