#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Builds the aufs-fuse .deb with dpkg-buildpackage from a clean copy of the
# source tree (git's files, including uncommitted changes, when it is a git
# checkout; else the tree without build directories), checks it with
# lintian (errors fail), and leaves it in OUTDIR (default build/deb).
#   tools/build-deb.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-build/deb}")
work=$(mktemp -d "${TMPDIR:-/tmp}/aufs-fuse-deb.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
src=$work/aufs-fuse
mkdir "$src"
if [ -e .git ] && git ls-files >/dev/null 2>&1; then
  # Deleted-but-tracked files are listed too: skip what is not there.
  git ls-files -z --cached --others --exclude-standard |
    tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$src"
else
  tar --exclude='./build*' --exclude=./debian/.debhelper --exclude=./debian/aufs-fuse \
    --exclude='./obj-*' -cf - . | tar -xf - -C "$src"
fi
tools/version.sh --record "$src"   # the copy has no .git
(cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=${JOBS:-2}" \
   nice -n "${NICE:-15}" dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 ||
  { tail -n 40 "$work/build.log" >&2; echo "build-deb: dpkg-buildpackage failed" >&2; exit 1; }
rm -rf --one-file-system "$out"
mkdir -p "$out"
cp "$work"/aufs-fuse_*.deb "$out"/
if command -v lintian >/dev/null; then
  lintian --fail-on error "$out"/aufs-fuse_*.deb
fi
ls "$out"/aufs-fuse_*.deb
