// SPDX-License-Identifier: GPL-2.0-or-later
// The tools' side of the control file (include/aufs_fuse/control.hpp):
// requests that bring the daemon's reason back on refusal, and what to say
// when a path is no live aufs-fuse mount.
#pragma once
#include <string>
#include <string_view>

namespace aufs::ctl {

// Path of the control file of the mount on `mnt`.
std::string control_path(const std::string& mnt);

struct Reply {
  int err = 0;          // 0: done
  // On refusal: the daemon's one line (or strerror). Done: the daemon's
  // note ("nothing changed: ...") or "".
  std::string reason;
};
// Sets request xattr `key` (user.aufs.remount, ...) to `value`.
Reply request(const std::string& mnt, std::string_view key, const std::string& value);
// The same on the control file named `ctl` (such as /proc/self/fd/N of an
// O_PATH descriptor of it: no lookup in the mount's root, which a writer
// held by a pause may have locked).
Reply request_at(const std::string& ctl, std::string_view key, const std::string& value);

// One line for a control-file access to `mnt` that failed with errno `e`:
// a stale mount (its daemon gone) says so and how to clear it.
std::string not_a_mount(const std::string& mnt, int e);

}  // namespace aufs::ctl
