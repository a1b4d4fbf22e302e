#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# One command: install dependencies, build, and run the AUFS walk-through
# (container layer over three image layers) on a real mount in a temp dir,
# printing the mount and every branch before and after each step.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh >/dev/null
bin="$PWD/build/src/aufs-fuse"
work=$(mktemp -d /tmp/aufs-demo-XXXXXX)
cleanup() {
  mountpoint -q "$work/mnt" 2>/dev/null && { fusermount3 -u "$work/mnt" 2>/dev/null || umount -l "$work/mnt"; }
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
show() { echo; echo "\$ $*"; "$@"; }

mkdir container-layer mnt
echo "I am container-layer" > container-layer/container-layer.txt
for i in 1 2 3; do
  mkdir -p image-layer$i/subdir$i
  echo "I am image layer $i" > image-layer$i/image-layer$i.txt
  echo "subdir $i" > image-layer$i/subdir$i/subdir$i.txt
done
echo "== branches before mounting"
show tree -a container-layer image-layer1 image-layer2 image-layer3

show "$bin" -o dirs=./container-layer:./image-layer1:./image-layer2:./image-layer3 ./mnt
show tree mnt

echo; echo "== copy-up: append to a file of image-layer1"
show sh -c 'echo more >> mnt/image-layer1.txt'
show cat mnt/image-layer1.txt
show cat container-layer/image-layer1.txt
show cat image-layer1/image-layer1.txt

echo; echo "== whiteout: delete a file of image-layer2"
show rm mnt/image-layer2.txt
show ls mnt
show ls -a container-layer
show cat image-layer2/image-layer2.txt

echo; echo "== a new file lands in the container layer"
show sh -c 'echo container-01 > mnt/container-test.txt'
show cat container-layer/container-test.txt
show tree mnt

show umount mnt
echo; echo "== after unmounting, every change lives in container-layer"
show tree -a container-layer image-layer1 image-layer2 image-layer3
