#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Prints the ninja targets the unit, core and mount suites run in build
# directory $1: the daemon, its tools and those three test programs. The
# second builds of CI (libfuse 3.18, ASan) build only these; the container,
# reliability and package programs would add half to their build time.
set -euo pipefail
dir=${1:?usage: tools/suite-targets.sh BUILD_DIR}
targets=(src/aufs-fuse tools/aufs-fuse-check tools/aufsctl tools/mount.aufs
  tests/aufs_fuse_unit tests/aufs_fuse_core_tests tests/mount/aufs_fuse_mount_tests)
# aufs-fuse-image is built only when libarchive is there. (grep reads all
# of ninja's output: with -q, pipefail would see SIGPIPE.)
if ninja -C "$dir" -t targets all | grep '^tools/image/aufs-fuse-image:' >/dev/null; then
  targets+=(tools/image/aufs-fuse-image)
fi
printf '%s\n' "${targets[@]}"
