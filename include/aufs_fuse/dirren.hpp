// SPDX-License-Identifier: GPL-2.0-or-later
// Directory-rename records (-o dirren), pure encode/decode, no I/O.
//
// A directory renamed while lower branches still contribute entries is not
// copied: its writable part (at the new name) holds the file kRecordName
// listing, for each lower branch, where the directory's lower part lives.
// Text, one entry a line, every field separated by one space:
//
//   aufs-fuse-dirren 1
//   <root st_dev> <root st_ino> <dir st_ino> <branch path> <dir path>
//
// Numbers are decimal; the two paths (the branch root as mounted, and the
// directory relative to it) are escaped: bytes outside '!'..'~' and '%' are
// written %XX. A branch is identified by its root's (st_dev, st_ino), or by
// its path when that pair changed (another device number after a reboot,
// the branch moved to another file system).
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "aufs_fuse/result.hpp"

namespace aufs::dirren {

// Inside a writable directory; a .wh..wh. name, so it is never shown and
// never taken for a whiteout or a copy-up temporary.
inline constexpr std::string_view kRecordName = ".wh..wh..dr.aufs-fuse";
inline constexpr std::string_view kMagic = "aufs-fuse-dirren 1";

struct Entry {
  uint64_t root_dev = 0;
  uint64_t root_ino = 0;
  uint64_t dir_ino = 0;
  std::string branch;  // branch root path when recorded
  std::string rel;     // lower directory, relative to the branch root
  bool operator==(const Entry&) const = default;
};

// True for "a", "a/b": plain names only, no NUL, no empty, "." or "..".
bool relative_path_ok(std::string_view rel);

std::string escape(std::string_view s);
// EINVAL for a malformed escape.
Result<std::string> unescape(std::string_view s);

std::string encode(const std::vector<Entry>& entries);
// EINVAL for anything but a well-formed record (unknown version included).
Result<std::vector<Entry>> decode(std::string_view text);

// The entry for a branch: by root identity first, else by path. nullptr if
// none. `by_path` (optional) tells which rule matched.
const Entry* match(const std::vector<Entry>& entries, uint64_t root_dev, uint64_t root_ino,
                   std::string_view branch_path, bool* by_path = nullptr);

}  // namespace aufs::dirren
