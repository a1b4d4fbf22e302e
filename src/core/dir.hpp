// SPDX-License-Identifier: GPL-2.0-or-later
// Namespace operations in one directory (overlayfs's dir.c).
#pragma once
#include <string>
#include <string_view>

#include "aufs_fuse/creds.hpp"
#include "aufs_fuse/handle.hpp"
#include "core/mount.hpp"

namespace aufs::core {

// What make_new creates: a file, directory, device, fifo, socket or
// symlink (mode's type bits), opened (open: a regular file) or not.
struct NewEntry {
  mode_t mode = 0;
  dev_t rdev = 0;
  const std::string* symlink_target = nullptr;
  bool open = false;
  int open_flags = 0;
};
// A new name in directory parent, on the branch create= picks, as the
// calling user (ctx), over a whiteout if there is one.
Result<Created> make_new(Mount& m, NodeId parent, std::string_view name, const NewEntry& what,
                         const Ctx& ctx);
Result<Entry> mknod(Mount& m, NodeId parent, std::string_view name, mode_t mode, dev_t rdev,
                    const Ctx& ctx);
Result<Entry> mkdir(Mount& m, NodeId parent, std::string_view name, mode_t mode, const Ctx& ctx);
Result<Entry> symlink(Mount& m, const std::string& target, NodeId parent, std::string_view name,
                      const Ctx& ctx);
Result<Entry> link(Mount& m, NodeId src, NodeId newparent, std::string_view name);
Status unlink(Mount& m, NodeId parent, std::string_view name);
Status rmdir(Mount& m, NodeId parent, std::string_view name);
// Renames dirfd/name to a fresh temporary name (revertible removal): the
// temporary's name.
Result<std::string> move_aside(Mount& m, int dirfd, const std::string& name);

}  // namespace aufs::core
