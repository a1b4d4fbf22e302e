// SPDX-License-Identifier: GPL-2.0-or-later
// Union inode numbers (xino), the pseudo-link store's names and the core's
// own xattrs.
#pragma once
#include <sys/stat.h>

#include <string>
#include <string_view>

#include "core/mount.hpp"

namespace aufs::core {

// The union inode number of entry st on branch b.
uint64_t ino_of(const Mount& m, const BranchSet& bs, int b, const struct stat& st);
// Like ino_of, but reads the persistent number recorded on entries of
// writable branches (set at copy-up) when it is not cached yet.
uint64_t ino_at(const Mount& m, const BranchSet& bs, int b, int dirfd, const std::string& name,
                const struct stat& st);
// The number of an inode the union has just made on branch b: nothing can
// be recorded on it yet, so nothing is read (ino_at would ask for the
// xattr).
uint64_t fresh_ino(Mount& m, const BranchSet& bs, int b, const struct stat& st);
// The number survives unmount: a copied-up entry carries it in an xattr.
Status record_ino(const Mount& m, int dirfd, const std::string& name, uint64_t ino);
bool is_internal_xattr(std::string_view key);
// Pseudo-link store entry (relative to a writable branch's root).
std::string plink_name(uint64_t ino);

// Link counts of pseudo-linked inodes. The union shows a lower hard-linked
// file, once one name is copied up, as the upper inode; its names are the
// upper inode's names but the plnk record, plus its lower names not yet
// copied up or removed. Like overlayfs's "trusted.overlay.nlink" ("U+n"),
// the upper inode keeps the difference between the union's count and its
// own, so a link or unlink done on the upper branch needs no update, a
// remount keeps the count, and only a change to a lower name moves it.
// Kernel AUFS reports the upper inode's own count (plnk record included).
//
// st (an entry of a writable branch, at fd/name) with the union's count.
// Read only for an inode with other links, or the one of a node served
// through its plnk record (`plinked`: that record may be its last link).
void union_nlink(const Mount& m, int fd, const std::string& name, struct stat& st, bool plinked = false);
// Same for rel on branch root `root` (opened beneath it when it needs one).
void union_nlink_at(const Mount& m, int root, const std::string& rel, struct stat& st);
// Adds delta to the stored difference of the inode at fd/name (its
// pseudo-link record, say). A branch without xattrs keeps the upper count.
Status add_nlink(Mount& m, int fd, const std::string& name, int delta);
// The pseudo-link record of `ino` on writable root `root`, if any: a lower
// name of it that leaves the union (or gets its own upper link) changes the
// stored difference by delta. Returns whether there was one to change.
Result<bool> add_plink_nlink(Mount& m, int root, uint64_t ino, int delta);
// Attributes as the union shows them (its own st_ino).
struct stat present(const Node& n, const struct stat& st);
Result<struct stat> stat_at(const BranchSet& bs, int b, const std::string& rel);

}  // namespace aufs::core
