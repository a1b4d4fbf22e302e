// SPDX-License-Identifier: GPL-2.0-or-later
// The branches and parent image a `diff` or `commit` argument means.
#pragma once
#include <string>

#include "changes.hpp"
#include "image.hpp"

namespace aufs_image {

struct TargetArgs {
  std::string path;   // MNT or BRANCH
  std::string from;   // LAYOUT[:TAG] of the image below, optional
  std::string store;  // layer store, optional
  bool aufs_whiteouts = false;
};

struct Target {
  BranchSet branches;
  std::string live_mount;  // a mount that uses the rw branch, "" if none
  std::string layout;      // of the parent image
  Image image;
  bool have_image = false;
};

// The state of an aufs-fuse mount, from its control file; nullopt if `mnt`
// is none.
std::optional<json> mount_info(const std::string& mnt);
// Mount points of fuse.aufs mounts (/proc/self/mountinfo).
std::vector<std::string> aufs_mounts();

// Throws Error when the branches or the image cannot be found.
Target resolve_target(const TargetArgs& a);

}  // namespace aufs_image
