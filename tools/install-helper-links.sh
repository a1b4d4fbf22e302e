#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# meson install script: links mount.aufs and mount.fuse.aufs into the
# directory mount(8) searches (/sbin), pointing at the helper in sbindir.
#   $1 = that directory (-Dmount_helper_dir), $2 = prefix/sbindir
# Nothing is linked when the two are the same directory on this system
# (Debian's merged /usr: /sbin -> usr/sbin with --prefix=/usr), which is
# where meson's install_symlink() failed ("already exists and is not a
# symlink"). Under DESTDIR the links go into the staging tree.
set -eu
helper_dir=$1
sbindir=$2
[ -n "$helper_dir" ] || exit 0
if [ "$(realpath -m "$helper_dir")" = "$(realpath -m "$sbindir")" ]; then
  exit 0
fi
dest=${DESTDIR:+$DESTDIR}$helper_dir
[ -n "${DESTDIR:-}" ] && mkdir -p "$dest"
if [ ! -d "$dest" ]; then
  echo "mount helper links: $dest is not a directory (set -Dmount_helper_dir=)" >&2
  exit 1
fi
for n in mount.aufs mount.fuse.aufs; do
  if [ -e "$dest/$n" ] && [ ! -L "$dest/$n" ]; then
    # Someone else's file (a package's helper, say): never replace it.
    echo "mount helper links: $dest/$n exists and is not a link; not replacing it" >&2
    exit 1
  fi
  ln -sfn "$sbindir/mount.aufs" "$dest/$n"
  [ -n "${MESON_INSTALL_QUIET:-}" ] || echo "Installing symlink $dest/$n -> $sbindir/mount.aufs"
done
