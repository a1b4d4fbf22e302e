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

}  // namespace aufs::core
