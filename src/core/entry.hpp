// SPDX-License-Identifier: GPL-2.0-or-later
// Cached nodes for resolved names: lookup, and what a removed name does to
// the nodes that stood for it.
#pragma once
#include <string>
#include <string_view>

#include "aufs_fuse/creds.hpp"
#include "core/namei.hpp"

namespace aufs::core {

// The node for resolved name `name` of parent (whose union path is
// parent_rel), taking a kernel reference. seen: name_changes() from before
// the resolution (lookup): a node it would make for a name removed
// meanwhile is checked first.
Result<Entry> make_entry(Mount& m, const BranchSet& bs, const NodePtr& parent, std::string_view name,
                         const Resolution& r, const std::string& parent_rel,
                         const NameChanges* seen = nullptr);
// ctx (optional): the caller, for nodirperm1 checks on lower directories.
Result<Entry> lookup(Mount& m, NodeId parent, std::string_view name, const Ctx* ctx);
// A node for a resolved name without a kernel reference (rename may be
// asked about names the kernel has not looked up); null on failure.
NodePtr node_for(Mount& m, const BranchSet& bs, const NodePtr& parent, const std::string& name,
                 const Resolution& r, const std::string& parent_rel);
// The branch entry `top` of (parent, name) was removed. `fence`:
// table.next_id() taken before that. Once it is gone, its inode (and so
// its number) may already belong to a new object made by another request;
// only nodes older than the fence stand for the removed one.
void mark_unlinked(Mount& m, const BranchSet& bs, const NodePtr& parent, const std::string& name,
                   const Hit& top, NodeId fence);

}  // namespace aufs::core
