#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Builds a newer libfuse (default 3.18) from Debian's own fuse3 source
# package of the unstable suite, library only, into a private prefix that
# aufs-fuse links with an rpath (meson -Dlibfuse_prefix=PREFIX). Nothing of
# the system changes: the system's libfuse3 and fusermount3 stay; apt reads
# a private source list and state directory for the deb-src entry, whose
# archive is the one the machine's own apt sources name. As root it installs
# liburing-dev and libnuma-dev (io_uring support) from the system's suite.
#   tools/build-libfuse.sh [--prefix DIR] [--version 3.18]
# Default prefix: build-libfuse/prefix in the source tree (ignored by git,
# not removed by `rm -rf build`). Prints the prefix on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
want=3.18
prefix=
while (($#)); do
  case "$1" in
    --prefix) prefix=$2; shift ;;
    --version) want=$2; shift ;;
    *) echo "build-libfuse: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
work=$top/build-libfuse
prefix=${prefix:-$work/prefix}
pc=$prefix/lib/x86_64-linux-gnu/pkgconfig/fuse3.pc
[ -f "$pc" ] || pc=$(find "$prefix" -name fuse3.pc 2>/dev/null | head -n1 || true)
if [ -n "$pc" ] && [ -f "$pc" ] && grep -q "^Version: $want\." "$pc"; then
  echo "build-libfuse: libfuse $(sed -n 's/^Version: //p' "$pc") already in $prefix" >&2
  echo "$prefix"
  exit 0
fi

# The main archive of the machine's sources: the URI of a stanza (or line)
# whose suite is a plain code name (not -security, -updates, -backports).
archive_uri() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
         { uri = ""; plain = 0; types = ""
           for (i = 1; i <= NF; i++) {
             if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, u, /[ \t]+/); uri = u[1] }
             if ($i ~ /^Types:/) types = $i
             if ($i ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", $i); n = split($i, s, /[ \t]+/)
               for (k = 1; k <= n; k++) if (s[k] !~ /-/) plain = 1 }
           }
           if (uri != "" && plain && types ~ /deb/) { print uri; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 ~ /^deb(-src)?$/ { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                               if ($(i + 1) !~ /-/) { print $i; exit } }' "$f"
  done
}
uri=$(archive_uri | head -n1)
if [ -z "$uri" ]; then
  echo "build-libfuse: no Debian archive found in the apt sources" >&2
  exit 1
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

if [ "$(id -u)" -eq 0 ]; then
  missing=()
  for p in liburing-dev libnuma-dev dpkg-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# A private apt: its own source list, lists and caches; the system's apt
# configuration and state are only read.
state=$work/apt
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$work/src"
echo "deb-src [signed-by=$keyring] $uri sid main" > "$state/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$state/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
          -o Dir::State::Status=/var/lib/dpkg/status -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" update -qq
ver=$(apt-cache "${apt_opts[@]}" showsrc fuse3 | sed -n 's/^Version: //p' | sort -V | tail -n1)
case "$ver" in
  "$want".*) ;;
  *) echo "build-libfuse: the unstable suite has fuse3 '$ver', not $want.x" >&2; exit 1 ;;
esac
upstream=${ver%%-*}
upstream=${upstream#*:}
srcdir=$work/src/fuse3-$upstream
if [ ! -d "$srcdir" ]; then
  (cd "$work/src" && apt-get "${apt_opts[@]}" source -qq fuse3="$ver")
fi

# Library, headers and fuse3.pc only: no fusermount3, mount.fuse3, udev
# rules or init script (utils=false), no examples or tests.
blddir=$work/build-$upstream
rm -rf "$blddir"
meson setup "$blddir" "$srcdir" --prefix "$prefix" --libdir lib/x86_64-linux-gnu \
  --buildtype=release -Dutils=false -Dexamples=false -Dtests=false \
  -Duseroot=false -Denable-io-uring=true >/dev/null
ninja -C "$blddir" ${NINJA_JOBS:+-j "$NINJA_JOBS"}
meson install -C "$blddir" --quiet
echo "build-libfuse: libfuse $upstream (Debian $ver) in $prefix" >&2
echo "$prefix"
