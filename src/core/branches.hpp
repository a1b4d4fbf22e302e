// SPDX-License-Identifier: GPL-2.0-or-later
// Branches of a mount (overlayfs's super.c).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/mount.hpp"

namespace aufs::core {

// Opens and locks the branches of validated options, repairs rw branches
// (stale temporaries removed) and, with `prepare`, prepares them.
Result<std::unique_ptr<Mount>> open_mount(const MountOptions& opts, std::string* why = nullptr,
                                          bool prepare = true);
// The whiteout base, plnk and orph of every rw branch. The daemon runs it
// once FUSE has mounted, so a failed mount leaves them as they were; on
// failure it removes what it made and sets *why.
Status prepare_branches(Mount& m, std::string* why);
// At a clean stop (no request left): marks the writable branches this mount
// checked as released cleanly, so the next mount skips walking them. With
// only_if_was_clean (a mount that failed), only those that were marked.
void release_branches(Mount& m, bool only_if_was_clean);
// Runtime branch changes (remount), applied all-or-nothing in order.
// Errors: EDOM bad index, ENOSPC too many branches, EBUSY files open on a
// branch being removed or made read-only, EINVAL bad/overlapping branch,
// ENOENT missing path. `msg` gets a one-line reason; on success, a note
// for the user ("nothing changed: ...", no writable branch left) or "".
Status change_branches(Mount& m, const std::vector<BranchOp>& ops, std::string* msg);

}  // namespace aufs::core
