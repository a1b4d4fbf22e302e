// SPDX-License-Identifier: GPL-2.0-or-later
// aufs-fuse-image: mount an OCI image layout with aufs-fuse in one command.
//
//   aufs-fuse-image [OPTIONS] LAYOUT[:TAG] MOUNTPOINT
//
// Reads LAYOUT/index.json, picks the manifest tagged TAG (or the only one),
// verifies the manifest, config and layer blobs against their sha256
// digests and sizes and each layer's uncompressed tar against the config's
// rootfs.diff_ids, extracts every layer not yet in the content-addressed
// layer store (STORE/sha256/<hex>, one directory per layer digest, shared by
// all images) with libarchive, refusing entries that would land outside the
// layer directory, and mounts the layers as ro+wh branches (top layer first)
// under the rw branch given with --rw (without it the mount is read-only).
// Whiteouts (.wh.NAME) and opaque markers (.wh..wh..opq) are kept as they
// are in the layer: OCI and AUFS use the same names. The mount uses the OCI
// whiteout rule (ociwh: a whiteout hides only lower layers).
//
//   aufs-fuse-image diff MNT|BRANCH          (docker diff)
//   aufs-fuse-image commit MNT|BRANCH ...    (docker commit)
//   aufs-fuse-image ls | gc                  (the layer store)
//
// Parts: oci.cpp (layouts, digests), store.cpp + layer_stream.hpp (layer
// store, extraction), paths.cpp, mount.cpp (the mount command), target.cpp
// (the branches behind MNT|BRANCH), changes.cpp (a branch as layer
// entries), layer_writer.cpp (reproducible tar), commit.cpp (diff, commit),
// store_admin.cpp (ls, gc).
#include <cstdio>

#include "aufs_fuse/version.hpp"
#include "image.hpp"

namespace aufs_image {

bool g_quiet = false;
std::string g_platform = host_platform();

void note(const std::string& s) {
  if (!g_quiet) std::fprintf(stderr, "aufs-fuse-image: %s\n", s.c_str());
}

}  // namespace aufs_image

int main(int argc, char** argv) {
  using namespace aufs_image;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "--version" || args[0] == "-V")) {
    std::printf("aufs-fuse-image %s\n", AUFS_FUSE_VERSION);
    return 0;
  }
  try {
    if (!args.empty() && args[0] == "diff") return diff_main({args.begin() + 1, args.end()});
    if (!args.empty() && args[0] == "commit") return commit_main({args.begin() + 1, args.end()});
    if (!args.empty() && args[0] == "ls") return ls_main({args.begin() + 1, args.end()});
    if (!args.empty() && args[0] == "gc") return gc_main({args.begin() + 1, args.end()});
    return mount_main(args);
  } catch (const json::exception& e) {
    std::fprintf(stderr, "aufs-fuse-image: malformed image metadata: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aufs-fuse-image: %s\n", e.what());
    return 1;
  }
}
