#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The version the programs print: the release, plus the git revision when
# the tree came from git.
#   tools/version.sh RELEASE   (meson's vcs_tag runs it)
#       prints "RELEASE (git REV)", or "RELEASE" outside git. REV comes
#       from `git describe` in a checkout ("+" = uncommitted changes), else
#       from .revision, which meson dist and tools/build-deb.sh write.
#   tools/version.sh --record [DIR]
#       writes the checkout's revision to DIR/.revision (default:
#       $MESON_DIST_ROOT, for meson dist).
set -eu
cd "$(dirname "$0")/.."   # the tree this script belongs to
describe() {
  # Only this tree's own .git: an unpacked tarball inside another
  # checkout must not take that checkout's revision.
  [ -e .git ] && git describe --always --abbrev=12 "$@" 2>/dev/null
}
if [ "${1:-}" = --record ]; then
  dest=${2:-${MESON_DIST_ROOT:?}}
  # meson dist packs the last commit, so no "+" there.
  if [ -n "${MESON_DIST_ROOT:-}" ]; then rev=$(describe || true)
  else rev=$(describe --dirty=+ || true); fi
  [ -z "$rev" ] || echo "$rev" > "$dest/.revision"
  exit 0
fi
rev=$(describe --dirty=+ || true)
[ -n "$rev" ] || [ ! -f .revision ] || rev=$(cat .revision)
if [ -n "$rev" ]; then echo "$1 (git $rev)"; else echo "$1"; fi
