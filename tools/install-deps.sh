#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Installs the Debian 12 packages aufs-fuse needs to build, test and demo
# (debhelper and lintian: tools/build-deb.sh, for the package suite).
# AUFS_LIBFUSE=3.18 also builds that libfuse from Debian's source package
# into build-libfuse/prefix (tools/build-libfuse.sh; the system's stays).
set -euo pipefail
pkgs=(build-essential pkg-config meson ninja-build libfuse3-dev fuse3 libspdlog-dev
      libxxhash-dev libgtest-dev libgmock-dev tree attr groff-base man-db
      busybox-static umoci skopeo debootstrap wget libarchive-dev libssl-dev nlohmann-json3-dev
      stress-ng libcap2-bin util-linux clang libclang-rt-14-dev xfsprogs e2fsprogs
      debhelper lintian)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ -n "${AUFS_LIBFUSE:-}" ]; then
  "$(dirname "$0")/build-libfuse.sh" --version "$AUFS_LIBFUSE" >/dev/null
fi
