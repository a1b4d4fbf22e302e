// SPDX-License-Identifier: GPL-2.0-or-later
// The control file (include/aufs_fuse/control.hpp): the mount's state as
// JSON, which branch serves a name, and branch changes (remount).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "aufs_fuse/creds.hpp"
#include "core/mount.hpp"

namespace aufs::core {

// JSON description of the mount (branches, options, counters).
std::string info_json(const Mount& m);
// JSON: {"requests": {opcode: count}} from the FUSE layer; ENODATA without one.
Result<std::string> stats_json(const Mount& m);
// JSON: which branch serves NAME in directory `dir`, copy-up/whiteout state.
Result<std::string> which_json(Mount& m, NodeId dir, std::string_view name);
// Requests on the control file, and user.aufs.which/NAME on a directory.
bool is_control_xattr(NodeId id, std::string_view key);
Result<std::vector<char>> control_getxattr(Mount& m, NodeId id, std::string_view key, size_t size);
Result<std::vector<char>> control_listxattr(size_t size);
// A branch change written to user.aufs.remount (root or the mount's owner).
Status control_setxattr(Mount& m, std::string_view key, const void* val, size_t size,
                        const Ctx& ctx);

}  // namespace aufs::core
