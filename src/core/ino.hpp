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
// The number survives unmount: a copied-up entry carries it in an xattr.
Status record_ino(const Mount& m, int dirfd, const std::string& name, uint64_t ino);
bool is_internal_xattr(std::string_view key);
// Pseudo-link store entry (relative to a writable branch's root).
std::string plink_name(uint64_t ino);
// Attributes as the union shows them (its own st_ino).
struct stat present(const Node& n, const struct stat& st);
Result<struct stat> stat_at(const BranchSet& bs, int b, const std::string& rel);

}  // namespace aufs::core
