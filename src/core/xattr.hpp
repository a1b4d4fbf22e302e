// SPDX-License-Identifier: GPL-2.0-or-later
// Extended attributes of union objects (overlayfs's xattrs.c): read from
// the top copy, written after a copy-up; the core's own keys stay hidden.
#pragma once
#include <string>
#include <vector>

#include "core/mount.hpp"

namespace aufs::core {

// An xattr reply: the size only (size 0), ERANGE, or the value.
Result<std::vector<char>> xattr_reply(const std::string& v, size_t size);

Result<std::vector<char>> getxattr(Mount& m, NodeId id, const char* key, size_t size);
Result<std::vector<char>> listxattr(Mount& m, NodeId id, size_t size);
Status setxattr(Mount& m, NodeId id, const char* key, const void* val, size_t size, int flags);
Status removexattr(Mount& m, NodeId id, const char* key);

}  // namespace aufs::core
