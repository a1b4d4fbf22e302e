// SPDX-License-Identifier: GPL-2.0-or-later
// Which writable branch gets a new name or a copy-up: the create= and
// cpup= policies (policy.cpp) applied to a mount's branches.
#pragma once
#include "core/namei.hpp"

namespace aufs::core {

// create= policy for a new name in `parent` (whited out on name_whiteout).
Result<int> pick_create(Mount& m, const BranchSet& bs, const Where& parent, int name_whiteout,
                        bool is_mkdir);
// cpup= policy for an entry of `parent` that lives on branch src.
Result<int> pick_cpup(Mount& m, const BranchSet& bs, const Where& parent, int src);

// Where a change to an entry of `parent` found on branch `top` happens: top
// itself if it is writable, else the branch cpup= picks.
Result<int> pick_change(Mount& m, const BranchSet& bs, const Where& parent, int top);

}  // namespace aufs::core
