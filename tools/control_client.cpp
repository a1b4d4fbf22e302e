// SPDX-License-Identifier: GPL-2.0-or-later
// The tools' side of the control file (see control_client.hpp).
#include "control_client.hpp"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "aufs_fuse/control.hpp"

namespace aufs::ctl {
namespace {

// The file system type mountinfo gives for the mount on `mnt` ("" if none).
std::string mount_type(const std::string& mnt) {
  char buf[PATH_MAX];
  std::string want = ::realpath(mnt.c_str(), buf) ? std::string(buf) : mnt;
  std::ifstream in("/proc/self/mountinfo");
  std::string line, type;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, point, field;
    ls >> id >> parent >> devno >> root >> point;
    while (ls >> field && field != "-") {
    }
    std::string fstype;
    ls >> fstype;
    if (point == want) type = fstype;  // the last one is on top
  }
  return type;
}

}  // namespace

std::string control_path(const std::string& mnt) { return mnt + "/" + std::string(kControlName); }

Reply request(const std::string& mnt, std::string_view key, const std::string& value) {
  return request_at(control_path(mnt), key, value);
}

Reply request_at(const std::string& ctl, std::string_view key, const std::string& value) {
  // The token names this request's reason; the pid keeps callers apart.
  std::random_device rd;
  std::string token = std::to_string(::getpid()) + "-" + std::to_string(rd());
  std::string name = std::string(key) + "/" + token;
  Reply r;
  bool done = ::setxattr(ctl.c_str(), name.c_str(), value.data(), value.size(), 0) == 0;
  if (!done) r.err = errno;
  // Refused: why; done: a note, if the daemon has one.
  std::string why(4096, '\0');
  std::string rname = std::string(kXattrReasonPrefix) + token;
  ssize_t n = ::getxattr(ctl.c_str(), rname.c_str(), why.data(), why.size());
  if (n > 0) r.reason = why.substr(0, static_cast<size_t>(n));
  else if (!done) r.reason = std::strerror(r.err);
  return r;
}

std::string not_a_mount(const std::string& mnt, int e) {
  if (e == ENOTCONN) {
    std::string type = mount_type(mnt);
    std::string what = type == "fuse.aufs" ? "a stale aufs-fuse mount" : "a stale FUSE mount";
    return mnt + ": " + what + " (its daemon is gone); clear it with 'umount " + mnt + "'";
  }
  return mnt + ": not an aufs-fuse mount (" + std::strerror(e) + ")";
}

}  // namespace aufs::ctl
