#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs the mount test binary so that mount(8) finds this build's helper,
# without installing anything into the running system: a DESTDIR install
# into BUILD/stage, shown over /sbin's real directory by a read-only
# overlay in a private mount namespace (mount(8) only searches /sbin,
# /sbin/fs.d and /sbin/fs). Without root it runs the binary as it is (the
# mount(8) tests skip).
#   staged-helper.sh BUILD_DIR SBINDIR (prefix/sbindir) TEST_BINARY [ARGS...]
set -eu
build=$1 sbindir=$2
shift 2
[ "$(id -u)" -eq 0 ] || exec "$@"
stage=$build/stage
rm -rf --one-file-system "$stage"
meson install -C "$build" --no-rebuild --quiet --destdir "$stage" >/dev/null
export AUFS_STAGED_SBIN="$stage$sbindir"
if ! unshare --mount true 2>/dev/null; then
  echo "staged-helper: no private mount namespace here; the mount(8) tests will skip" >&2
  exec "$@"
fi
exec unshare --mount --propagation private sh -c '
  sbin=$(realpath /sbin)
  mount -t overlay -o "lowerdir=$AUFS_STAGED_SBIN:$sbin" aufs-fuse-staged "$sbin" ||
    echo "staged-helper: cannot overlay $sbin; the mount(8) tests will skip" >&2
  exec "$@"' sh "$@"
