// SPDX-License-Identifier: GPL-2.0-or-later
#include "aufs_fuse/whiteout.hpp"

#include <cerrno>
#include <cstdio>

namespace aufs::wh {

std::string temp_name(std::string_view name, uint32_t seq) {
  char hex[8];
  std::snprintf(hex, sizeof hex, "%04x", seq & 0xffff);
  std::string r(kDoublePrefix);
  r += name;
  r += '.';
  r += hex;
  return r;
}

int check_user_name(std::string_view name, bool shwh) {
  if (name.size() > kMaxNameLen) return ENAMETOOLONG;
  if (!shwh && is_whiteout_name(name)) return EPERM;
  return 0;
}

}  // namespace aufs::wh
