// SPDX-License-Identifier: GPL-2.0-or-later
// Orphans (struct Orphan): a removed file kept reachable by node until the
// kernel forgets it. The orphan lives in the node's Extra, under Node::mu.
#pragma once
#include <string>

#include "core/mount.hpp"

namespace aufs::core {

// Called before a change that may remove n's last name; does nothing
// unless the kernel knows n (or past the descriptor budget).
void keep_orphan(Mount& m, const BranchSet& bs, const NodePtr& n);
void drop_orphan(const NodePtr& n);  // the change did not happen
// After a copy-up of n to dirfd/name on branch brid: an orphan kept for the
// node (an unlink racing the copy) holds the new copy. Caller holds n->mu.
void orphan_follows_copy(const NodePtr& n, int dirfd, const std::string& name, uint32_t brid);

}  // namespace aufs::core
