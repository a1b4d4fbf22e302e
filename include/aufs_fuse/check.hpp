// SPDX-License-Identifier: GPL-2.0-or-later
// Offline consistency check of a branch (the auchk equivalent), also run by
// the daemon on its rw branches before mounting. It never follows symlinks
// and never leaves the branch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "aufs_fuse/result.hpp"

namespace aufs {

struct CheckIssue {
  enum class Kind {
    TempLeftover,    // .wh..wh.NAME.XXXX from an interrupted copy-up/rmdir
    NameAndWhiteout, // NAME and .wh.NAME on the same branch
    BadWhiteout,     // .wh.NAME that is not an empty regular file
    BadOpaque,       // .wh..wh..opq that is not a regular file
    StalePlink,      // kernel-AUFS entry in .wh..wh.plnk/ (unflushed pseudo-link)
    Orphan,          // entry in .wh..wh.orph/
  };
  Kind kind;
  std::string path;  // relative to the branch root
  bool fixed = false;
};

const char* kind_name(CheckIssue::Kind k);

struct CheckReport {
  std::vector<CheckIssue> issues;
  uint64_t dirs = 0, entries = 0;
};

// Walks the branch at `root`. With `fix`, repairs what is safe: temporaries
// and orph leftovers are deleted (kernel-AUFS plnk entries only with
// `fix_plinks`; aufs-fuse's own numbered plnk records are kept); for NAME + .wh.NAME the whiteout is
// removed (the entry was made after the whiteout, or the whiteout was made
// just before the entry was to go: either way the entry's state is a state
// the user could have seen). Bad whiteouts are reported, never guessed at.
// Without `walk`, only the orph and plnk directories are looked at (a
// branch released cleanly: nothing else can be left over).
Result<CheckReport> check_branch(const std::string& root, bool fix, bool fix_plinks = false,
                                 bool walk = true);

}  // namespace aufs
