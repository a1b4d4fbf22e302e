#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# tools/bench/passthrough-hp.sh WORKDIR
# Builds libfuse's example/passthrough_hp (the FUSE floor of the bench) from
# Debian's source package of the installed fuse3, in WORKDIR/passthrough_hp/,
# and prints the binary's path. Nothing of the system's apt configuration is
# changed: the deb-src lines are derived from the deb822 entries of
# /etc/apt/sources.list.d/*.sources into a private apt state directory.
set -eu
work=${1:?usage: passthrough-hp.sh WORKDIR}
d=$work/passthrough_hp
bin=$d/passthrough_hp
ver=$(dpkg-query -W -f '${Version}' libfuse3-3 2>/dev/null || dpkg-query -W -f '${Version}' fuse3)
[ -n "$ver" ] || { echo "passthrough-hp.sh: fuse3 is not installed" >&2; exit 1; }
if [ -x "$bin" ] && [ "$(cat "$d/version" 2>/dev/null)" = "$ver" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$d/apt/lists/partial" "$d/apt/cache/archives/partial"
# One deb-src line per URI and suite of every "Types: deb" stanza.
python3 - "$d/apt/sources.list" <<'PY'
import glob, sys
out = []
for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in open(f).read().split("\n\n"):
        d = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[0].isspace():
                continue
            k, v = line.split(":", 1)
            d[k.strip()] = v.strip()
        if "deb" not in d.get("Types", "").split():
            continue
        opt = " [signed-by=%s]" % d["Signed-By"] if d.get("Signed-By", "").startswith("/") else ""
        for uri in d.get("URIs", "").split():
            for suite in d.get("Suites", "").split():
                out.append("deb-src%s %s %s %s" % (opt, uri, suite, d.get("Components", "")))
if not out:
    sys.exit("passthrough-hp.sh: no deb822 entries in /etc/apt/sources.list.d/*.sources")
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
apt_opts="-o Dir::Etc::SourceList=$d/apt/sources.list -o Dir::Etc::SourceParts=/dev/null
  -o Dir::State::Lists=$d/apt/lists -o Dir::Cache=$d/apt/cache -o Debug::NoLocking=1"
# shellcheck disable=SC2086
apt-get -q $apt_opts update >&2
rm -rf "$d/src"
mkdir -p "$d/src"
# shellcheck disable=SC2086
(cd "$d/src" && apt-get -q $apt_opts source "fuse3=$ver" >&2)
srcdir=$(find "$d/src" -mindepth 1 -maxdepth 1 -type d -name 'fuse3-*' | head -n 1)
[ -f "$srcdir/example/passthrough_hp.cc" ] || { echo "passthrough-hp.sh: no example/passthrough_hp.cc in $srcdir" >&2; exit 1; }
# shellcheck disable=SC2046
g++ -O2 -std=c++17 -o "$bin" "$srcdir/example/passthrough_hp.cc" \
  $(pkg-config --cflags --libs fuse3) -lpthread >&2
echo "$ver" > "$d/version"
echo "$bin"
