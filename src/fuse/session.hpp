// SPDX-License-Identifier: GPL-2.0-or-later
// The FUSE session of a mount: libfuse's arguments from our options, the
// kernel's cache timeouts, mounting, daemonizing and the request loop.
#pragma once
#include <string>

#include "aufs_fuse/options.hpp"
#include "aufs_fuse/union_fs.hpp"

namespace aufs {

// Mounts fs on opts.mountpoint and serves it until unmounted or signalled.
// Errors before mounting: one line on stderr (prefixed "aufs-fuse: ") and 1.
// The rw branches are prepared (Union::prepare_branches) once mounted.
int serve(Union& fs, const MountOptions& opts);
// libfuse's messages go to spdlog; while mounting, its first error is held
// for serve()'s one-line error instead.
void route_libfuse_log();

}  // namespace aufs
