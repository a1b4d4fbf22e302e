// SPDX-License-Identifier: GPL-2.0-or-later
// AUFS on-disk naming rules (pure functions, no I/O).
//   .wh.NAME          whiteout: hides NAME on this and lower branches
//   .wh..wh..opq      opaque marker inside a directory
//   .wh..wh.aufs      whiteout base (whiteouts are hard links to it)
//   .wh..wh.plnk/     pseudo-link store, .wh..wh.orph/ orphan store
//   .wh..wh.NAME.XXXX temporary names (copy-up, rmdir in progress)
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace aufs::wh {

inline constexpr std::string_view kPrefix = ".wh.";
inline constexpr std::string_view kOpaque = ".wh..wh..opq";
inline constexpr std::string_view kBase = ".wh..wh.aufs";
inline constexpr std::string_view kPlink = ".wh..wh.plnk";
inline constexpr std::string_view kOrph = ".wh..wh.orph";
inline constexpr std::string_view kDoublePrefix = ".wh..wh.";
// 255 - 2*4 (double prefix) - 1 (dot) - 4 (hex) = 242.
inline constexpr size_t kMaxNameLen = 242;

inline bool is_whiteout_name(std::string_view n) { return n.starts_with(kPrefix); }
// Internal metadata (never a user name, never a whiteout of one).
inline bool is_meta_name(std::string_view n) { return n.starts_with(kDoublePrefix); }
// ".wh.X" -> "X" (empty for non-whiteouts and for ".wh." alone).
inline std::string_view whiteout_target(std::string_view n) {
  if (!is_whiteout_name(n) || is_meta_name(n)) return {};
  return n.substr(kPrefix.size());
}
inline std::string whiteout_of(std::string_view name) {
  std::string r(kPrefix);
  r += name;
  return r;
}
// Temporary name next to `name`, unique by `seq`.
std::string temp_name(std::string_view name, uint32_t seq);
inline bool is_temp_name(std::string_view n) {
  return is_meta_name(n) && n != kOpaque && n != kBase && n != kPlink && n != kOrph;
}

// errno a user-supplied name gets, 0 when it is acceptable.
// (ENAMETOOLONG beats EPERM, as in AUFS.)
int check_user_name(std::string_view name, bool shwh = false);

}  // namespace aufs::wh
