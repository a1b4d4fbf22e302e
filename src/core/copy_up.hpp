// SPDX-License-Identifier: GPL-2.0-or-later
// Copy-up (overlayfs's copy_up.c): making a node's data writable by copying
// it, with its missing parent directories, to a writable branch. Every copy
// is built under a hidden temporary name and published by a rename with
// RENAME_NOREPLACE, so an interruption leaves only a temporary behind.
#pragma once
#include <sys/types.h>

#include <memory>
#include <string>

#include "aufs_fuse/handle.hpp"
#include "core/namei.hpp"

namespace aufs::core {

struct CopyUp {
  bool with_data = true;   // false: the caller truncates to 0 anyway
  off_t max_size = -1;     // copy at most this many bytes (truncate)
  bool need_name = false;  // the node's own name must exist on the branch,
                           // not only a pseudo-link (rename moves the name)
  int to = -1;             // copy to this branch even if the source is
                           // writable (coo/moo)
};

// Makes the node's data writable: copies it to a writable branch (chosen by
// cpup=) unless it is on one already.
Status copy_up(Mount& m, const NodePtr& n, const CopyUp& req = {});
// copy_up, then where(): the node's location for a change, which is always
// on a writable branch (EIO rather than a read-only branch).
Result<Where> where_for_write(Mount& m, const BranchSet& bs, const NodePtr& n,
                              const CopyUp& req = {});
// Directory dir (and its missing parents) exists on branch bw.
Status ensure_dir_path(Mount& m, const BranchSet& bs, int bw, const NodePtr& dir);
// coo_reg / coo_all / moo branch attributes: an open copies (or moves) the
// entry to the nearest writable branch above its own.
Status copy_up_on_open(Mount& m, const BranchSet& bs, const NodePtr& n);
// n's orphan (null: none); for a change, first copied to an unnamed file on
// a writable branch, as AUFS copies an unlinked open file.
Result<std::shared_ptr<const Orphan>> copy_up_orphan(Mount& m, const BranchSet& bs, const NodePtr& n,
                                                     bool for_change, bool with_data);

}  // namespace aufs::core
