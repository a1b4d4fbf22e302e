// SPDX-License-Identifier: GPL-2.0-or-later
// The control file: a hidden root entry whose xattrs expose a mount's state
// and accept branch changes. The daemon, aufsctl and mount.aufs share these
// names. Its name starts with ".wh." so it can never collide with a user's
// file (such names are refused through AUFS).
#pragma once
#include <cstdint>
#include <string_view>

namespace aufs {

inline constexpr std::string_view kControlName = ".wh..wh.aufs-fuse";
inline constexpr uint64_t kControlId = 3;  // its node id
inline constexpr std::string_view kXattrInfo = "user.aufs.info";          // JSON (get)
inline constexpr std::string_view kXattrRemount = "user.aufs.remount";    // branch ops (set)
inline constexpr std::string_view kXattrStats = "user.aufs.stats";  // JSON (get); "reset" (set)
// A refused request set as user.aufs.remount/TOKEN leaves its one-line reason
// for the caller to read once as user.aufs.reason/TOKEN (xattrs carry only an
// errno back).
inline constexpr std::string_view kXattrReasonPrefix = "user.aufs.reason/";  // + token (get)
// Holds every write to the branches for at most SECONDS (the value), once
// those in flight are done; user.aufs.release lets them go on (set). Both
// take /TOKEN as user.aufs.remount does.
inline constexpr std::string_view kXattrPause = "user.aufs.pause";
inline constexpr std::string_view kXattrRelease = "user.aufs.release";
inline constexpr std::string_view kXattrWhichPrefix = "user.aufs.which/";  // + name (get)

}  // namespace aufs
