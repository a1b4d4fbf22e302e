// SPDX-License-Identifier: GPL-2.0-or-later
// Whiteouts and opaque markers on a writable branch.
#pragma once
#include <string_view>

#include "core/mount.hpp"

namespace aufs::core {

// .wh.NAME in dirfd on writable branch bw: a hard link to the branch's
// whiteout base where it can (AUFS's lwh), else a plain 0444 file. An
// existing whiteout counts as made.
Status make_whiteout(Mount& m, const BranchSet& bs, int bw, int dirfd, std::string_view name);
// .wh..wh..opq inside directory dirfd.
Status make_opaque(Mount& m, const BranchSet& bs, int bw, int dirfd);
// Removes .wh.NAME from dirfd if there; *removed tells whether it was.
Status remove_whiteout_if_any(int dirfd, std::string_view name, bool* removed = nullptr);

}  // namespace aufs::core
