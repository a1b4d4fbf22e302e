#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""aufs-fuse benchmark: the same layered fixture, mounted by every union
file system available on the machine, timed workload by workload with the
targets interleaved (A B C A B C ...).  See tools/bench/README.md.

Needs root (mounts, drop_caches).  Python 3 standard library only; uses
gcc, fio, tar, find, ls, grep, git and make from Debian.
"""

import argparse
import atexit
import datetime
import errno
import glob
import hashlib
import io
import json
import math
import os
import platform
import random
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import tarfile
import time

FIXTURE_VERSION = 6
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

ALL_TARGETS = ["plain", "overlay", "passthrough_hp", "fuse-overlayfs", "unionfs-fuse",
               "mergerfs", "aufs-fuse", "aufs-fuse-notify", "aufs-fuse-none",
               "aufs-fuse-volatile", "aufs-fuse-318", "aufs-fuse-318-nopt",
               "aufs-fuse-318-ptall", "aufs-fuse-318-uring"]
DEFAULT_TARGETS = ["plain", "overlay", "passthrough_hp", "fuse-overlayfs", "unionfs-fuse",
                   "mergerfs", "aufs-fuse"]
FUSE_PEERS = ["fuse-overlayfs", "unionfs-fuse", "mergerfs"]
BASELINE = "overlay"
FLOOR = "passthrough_hp"  # a plain FUSE file system: what any FUSE daemon pays
CONTROL_FILE = ".wh..wh.aufs-fuse"

PARAMS = {
    "full": dict(ndirs=10, nsubs=5, uniq=80, shared=20, many=20000, big_mib=512,
                 src=500, ncompile=4, chmod_n=1000, untar_n=5000, create_n=1000,
                 seqwrite_mib=128, fio_ios=5000, lookup_n=5000, rounds=3),
    "quick": dict(ndirs=4, nsubs=5, uniq=40, shared=10, many=4000, big_mib=64,
                  src=100, ncompile=2, chmod_n=200, untar_n=1000, create_n=200,
                  seqwrite_mib=32, fio_ios=1000, lookup_n=1000, rounds=2),
}
NBRANCHES_MAX = 127
FIXTURE_KEYS = ("ndirs", "nsubs", "uniq", "shared", "many", "big_mib", "src", "ncompile",
                "chmod_n", "untar_n", "lookup_n")
TRIAL_TIMEOUT = 600

# --------------------------------------------------------------------------
# logging and process bookkeeping (cleanup on any exit)
# --------------------------------------------------------------------------

T_START = time.monotonic()


def log(msg):
    el = time.monotonic() - T_START
    sys.stderr.write("[%6.1fs] %s\n" % (el, msg))
    sys.stderr.flush()


ACTIVE = {}   # mountpoint -> Mount
_cleaning = False


def cleanup_all():
    global _cleaning
    if _cleaning:
        return
    _cleaning = True
    for m in list(ACTIVE.values()):
        try:
            m.unmount(quiet=True)
        except BaseException as e:  # noqa: keep going
            sys.stderr.write("cleanup: %s: %s\n" % (m.mnt, e))
    _cleaning = False


def _on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def mountinfo():
    """list of (mountpoint, fstype)"""
    res = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            a, b = line.split(" - ", 1)
            mp = a.split()[4]
            mp = mp.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
                   .replace("\\134", "\\")
            res.append((mp, b.split()[0]))
    return res


def fstype_of(path):
    path = os.path.realpath(path)
    t = None
    for mp, ft in mountinfo():
        if mp == path:
            t = ft
    return t


def run(cmd, timeout=TRIAL_TIMEOUT, check=True, cwd=None, capture=True, env=None):
    e = dict(os.environ)
    e["LC_ALL"] = "C"
    if env:
        e.update(env)
    p = subprocess.run(cmd, cwd=cwd, env=e, timeout=timeout,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd)[:200], p.returncode,
                                                p.stderr.decode(errors="replace")[-500:]))
    return p


def timed(cmd, ok=(0,), cwd=None, stdout_devnull=True):
    e = dict(os.environ)
    e["LC_ALL"] = "C"
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=e, timeout=TRIAL_TIMEOUT,
                       stdout=subprocess.DEVNULL if stdout_devnull else subprocess.PIPE,
                       stderr=subprocess.PIPE)
    t1 = time.perf_counter()
    if p.returncode not in ok:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd)[:200], p.returncode,
                                                p.stderr.decode(errors="replace")[-500:]))
    return t1 - t0


def cpu_busy(window=0.05):
    """fraction of all CPUs busy during a short window (we are idle then)"""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v[:8]), idle
    t0, i0 = snap()
    time.sleep(window)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def rmtree(path):
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            # make sure nothing is mounted below before deleting
            rp = os.path.realpath(path)
            for mp, _ in mountinfo():
                if mp == rp or mp.startswith(rp + "/"):
                    raise RuntimeError("refusing to delete %s: %s is mounted" % (path, mp))
            shutil.rmtree(path)
        else:
            os.unlink(path)


def proc_status(pid):
    d = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                d[k] = v.strip()
    except OSError:
        pass
    return d


_LIBC = None


def request_counts(root):
    """aufs-fuse's FUSE requests per opcode so far (user.aufs.stats of the
    control file, as `aufsctl stats --json` reads it), or None.  One
    getxattr(2) with a buffer large enough, so reading costs one GETXATTR
    (and a LOOKUP of the control file when the kernel dropped it)."""
    global _LIBC
    import ctypes
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(1 << 16)
    n = _LIBC.getxattr(os.path.join(root, CONTROL_FILE).encode(), b"user.aufs.stats", buf,
                       ctypes.c_size_t(len(buf)))
    if n < 0:
        return None
    try:
        return json.loads(buf.raw[:n].decode())["requests"]
    except (ValueError, KeyError):
        return None


def kib(s):
    try:
        return int(s.split()[0])
    except Exception:
        return None


def proc_cpu(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        fields = s[s.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------
# helper program (C) for tight syscall loops, timed from inside
# --------------------------------------------------------------------------

HELPER_C = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9; }

static char **readlist(const char *root, const char *file, long *n) {
  FILE *f = fopen(file, "r"); if (!f) { perror(file); exit(2); }
  long cap = 1024, k = 0; char **v = malloc(cap * sizeof *v); char line[8192];
  while (fgets(line, sizeof line, f)) {
    size_t l = strlen(line); if (l && line[l-1] == '\n') line[--l] = 0;
    if (!l) continue;
    if (k == cap) { cap *= 2; v = realloc(v, cap * sizeof *v); }
    char *p = malloc(strlen(root) + l + 2); sprintf(p, "%s/%s", root, line); v[k++] = p;
  }
  fclose(f); *n = k; return v;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage\n"); return 2; }
  const char *cmd = argv[1]; long ok = 0, bad = 0; double t0, t1;
  if (!strcmp(cmd, "lstat") && argc == 4) {          /* lstat ROOT LIST */
    long n; char **v = readlist(argv[2], argv[3], &n); struct stat st;
    t0 = now();
    for (long i = 0; i < n; i++) { if (lstat(v[i], &st)) { bad++; if (bad < 5) perror(v[i]); } else ok++; }
    t1 = now();
  } else if (!strcmp(cmd, "chmod") && argc == 5) {   /* chmod ROOT LIST MODE */
    long n; char **v = readlist(argv[2], argv[3], &n); mode_t m = strtol(argv[4], 0, 8);
    t0 = now();
    for (long i = 0; i < n; i++) { if (chmod(v[i], m)) { bad++; if (bad < 5) perror(v[i]); } else ok++; }
    t1 = now();
  } else if (!strcmp(cmd, "statn") && argc == 4) {   /* statn DIR N : DIR/n%05d */
    long n = atol(argv[3]); char p[4096]; struct stat st;
    t0 = now();
    for (long i = 0; i < n; i++) { snprintf(p, sizeof p, "%s/n%05ld", argv[2], i);
      if (stat(p, &st)) { bad++; if (bad < 5) perror(p); } else ok++; }
    t1 = now();
  } else if (!strcmp(cmd, "readdir") && argc == 3) { /* readdir DIR */
    t0 = now();
    DIR *d = opendir(argv[2]); if (!d) { perror(argv[2]); return 1; }
    struct dirent *e; while ((e = readdir(d))) ok++;
    closedir(d);
    t1 = now();
  } else if (!strcmp(cmd, "read") && argc == 3) {    /* read FILE (1 MiB blocks) */
    size_t bs = 1 << 20; char *b = malloc(bs); ssize_t r;
    t0 = now();
    int fd = open(argv[2], O_RDONLY); if (fd < 0) { perror(argv[2]); return 1; }
    while ((r = read(fd, b, bs)) > 0) ok += r;
    if (r < 0) { perror("read"); bad++; }
    close(fd);
    t1 = now();
  } else if (!strcmp(cmd, "append") && argc == 3) {  /* append FILE: 1 byte + sync */
    t0 = now();
    int fd = open(argv[2], O_WRONLY | O_APPEND); if (fd < 0) { perror(argv[2]); return 1; }
    if (write(fd, "x", 1) != 1) { perror("write"); bad++; } else ok++;
    if (close(fd)) { perror("close"); bad++; }
    sync();
    t1 = now();
  } else if (!strcmp(cmd, "create") && argc == 5) {  /* create DIR N SIZE: write+fsync each */
    long n = atol(argv[3]); size_t sz = atol(argv[4]); char *b = malloc(sz); char p[4096];
    memset(b, 'a', sz);
    t0 = now();
    for (long i = 0; i < n; i++) { snprintf(p, sizeof p, "%s/c%05ld", argv[2], i);
      int fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0644);
      if (fd < 0) { bad++; if (bad < 5) perror(p); continue; }
      if (write(fd, b, sz) != (ssize_t)sz || fsync(fd)) { bad++; perror(p); } else ok++;
      close(fd); }
    t1 = now();
  } else if (!strcmp(cmd, "write") && argc == 4) {   /* write FILE MIB: 1 MiB writes + fsync */
    long n = atol(argv[3]); size_t bs = 1 << 20; char *b = malloc(bs);
    for (size_t i = 0; i < bs; i++) b[i] = (char)(i * 2654435761u >> 13);
    t0 = now();
    int fd = open(argv[2], O_CREAT | O_EXCL | O_WRONLY, 0644); if (fd < 0) { perror(argv[2]); return 1; }
    for (long i = 0; i < n; i++) { b[0] = (char)i; if (write(fd, b, bs) != (ssize_t)bs) { perror("write"); bad++; break; } ok++; }
    if (fsync(fd)) { perror("fsync"); bad++; }
    close(fd);
    t1 = now();
  } else { fprintf(stderr, "bad command\n"); return 2; }
  printf("%.9f %ld %ld\n", t1 - t0, ok, bad);
  return bad ? 1 : 0;
}
"""


class Helper:
    def __init__(self, workdir):
        src = os.path.join(workdir, "helper.c")
        self.path = os.path.join(workdir, "helper")
        old = None
        if os.path.exists(src):
            with open(src) as f:
                old = f.read()
        if old != HELPER_C or not os.path.exists(self.path):
            with open(src, "w") as f:
                f.write(HELPER_C)
            run(["gcc", "-O2", "-Wall", "-o", self.path, src])

    def __call__(self, *args, expect=None):
        p = subprocess.run([self.path] + [str(a) for a in args], timeout=TRIAL_TIMEOUT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = p.stdout.decode().split()
        if p.returncode != 0 or len(out) != 3:
            raise RuntimeError("helper %s: exit %d: %s" % (
                " ".join(map(str, args))[:200], p.returncode,
                p.stderr.decode(errors="replace")[-400:]))
        el, ok, bad = float(out[0]), int(out[1]), int(out[2])
        if expect is not None and ok != expect:
            raise RuntimeError("helper %s: %d results, expected %d" % (args[0], ok, expect))
        return el, ok


# --------------------------------------------------------------------------
# fixture: a canonical layer spec, written out once per whiteout format
# --------------------------------------------------------------------------

class Layer:
    def __init__(self, name):
        self.name = name
        self.files = {}      # rel -> bytes | ("big", nbytes)
        self.dirs = set()
        self.wh = set()      # whited-out rel paths (hide lower entries)
        self.opq = set()     # opaque directories

    def _parents(self, rel):
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.dirs.add("/".join(parts[:i]))

    def add(self, rel, data):
        self._parents(rel)
        self.files[rel] = data

    def mkdir(self, rel):
        self._parents(rel + "/x")

    def whiteout(self, rel):
        self._parents(rel)
        self.wh.add(rel)

    def opaque(self, rel):
        self.mkdir(rel)
        self.opq.add(rel)


def c_source(rng, i, needle):
    lines = ["/* generated file %d */" % i, "#include <stddef.h>", ""]
    for j in range(rng.randint(6, 18)):
        lines.append("static int fn_%d_%d(int a, int b) {" % (i, j))
        lines.append("    int acc = a * %d + b;" % rng.randint(1, 999))
        for k in range(rng.randint(2, 6)):
            lines.append("    if (acc > %d) acc -= b * %d; else acc += a ^ %d;" % (
                rng.randint(1, 9999), rng.randint(1, 99), rng.randint(1, 999)))
        if needle and j == 3:
            lines.append("    /* bench_needle: found here */")
        lines.append("    return acc;")
        lines.append("}")
    return ("\n".join(lines) + "\n").encode()


def compile_unit(rng, j, nheaders):
    lines = ["#include <stdio.h>", "#include <stdlib.h>", "#include <string.h>"]
    for h in range(nheaders):
        lines.append('#include "../include/h%02d.h"' % h)
    lines.append("")
    for f in range(30):
        lines.append("int unit%d_f%d(int *v, int n) {" % (j, f))
        lines.append("    int s = 0; char buf[64];")
        lines.append("    for (int i = 0; i < n; i++) { s += v[i] * %d ^ (s >> %d); }" % (
            rng.randint(1, 99), rng.randint(1, 7)))
        lines.append('    snprintf(buf, sizeof buf, "%%d-%d", s); s += (int)strlen(buf);' % f)
        lines.append("    s += H%02d_CALL(s);" % (f % nheaders))
        lines.append("    return s;")
        lines.append("}")
    return ("\n".join(lines) + "\n").encode()


def gen_spec(P):
    rng = random.Random(5)
    up = Layer("upper")
    L = [up] + [Layer("L%d" % k) for k in range(1, 5)]
    nd, ns = P["ndirs"], P["nsubs"]

    def blob(size):
        return rng.randbytes(size)

    # small-file tree: merged dirs on all four layers, some names on every layer
    for k in range(1, 5):
        for d in range(nd):
            for s in range(ns):
                base = "tree/d%02d/s%d" % (d, s)
                for i in range(P["uniq"]):
                    L[k].add("%s/u%d_%03d" % (base, k, i), blob(rng.randint(512, 4096)))
                for i in range(P["shared"]):
                    L[k].add("%s/c_%03d" % (base, i),
                             ("L%d\n" % k).encode() + blob(rng.randint(508, 4092)))
    # whiteouts in L1 and L2 (they hide only L2/L3 entries, never L4)
    for d in range(nd):
        for s in range(ns):
            base = "tree/d%02d/s%d" % (d, s)
            L[1].whiteout(base + "/u2_000")
            L[1].whiteout(base + "/u3_000")
            L[2].whiteout(base + "/u3_001")
    for i in range(20):
        L[3].add("tree/d03/x3/f%02d" % i, blob(1000))
    L[1].whiteout("tree/d03/x3")
    # opaque directory in L1 over L2/L3 copies
    L[1].opaque("tree/opq")
    for i in range(10):
        L[1].add("tree/opq/o1_%02d" % i, blob(700))
    for k in (2, 3):
        for i in range(50):
            L[k].add("tree/opq/o%d_%02d" % (k, i), blob(700))
    for i in range(5):
        L[2].add("tree/opq/sub/z%d" % i, blob(300))
    # the rw upper layer (a fresh copy per trial): marker, a whiteout, an opaque dir
    up.add(".bench/marker", b"upper\n")
    L[1].add(".bench/marker", b"L1\n")
    L[4].add(".bench/marker", b"L4\n")
    up.whiteout("tree/d00/s0/u3_002")
    up.opaque("opq_up")
    up.add("opq_up/up_00", b"up\n")
    for i in range(20):
        L[2].add("opq_up/l2_%02d" % i, blob(200))
    # the big merged directory
    for k in range(1, 5):
        for i in range(P["many"] // 4):
            L[k].add("many/e%d_%05d" % (k, i), b"")
    # source tree (grep) split over L2 and L3
    for i in range(P["src"]):
        k = 2 if i % 2 == 0 else 3
        L[k].add("src/lib%02d/f%04d.c" % (i % 10, i), c_source(rng, i, i % 10 == 0))
    # compile set: sources + Makefile in L3, headers in L4
    nh = 20
    for h in range(nh):
        L[4].add("src/include/h%02d.h" % h, (
            "#ifndef H%02d_H\n#define H%02d_H\nstatic inline int h%02d_fn(int x) "
            "{ return x * %d + %d; }\n#define H%02d_CALL(x) h%02d_fn(x)\n#endif\n" % (
                h, h, h, rng.randint(2, 99), h, h, h)).encode())
    objs = []
    for j in range(P["ncompile"]):
        L[3].add("src/build/unit%d.c" % j, compile_unit(rng, j, nh))
        objs.append("unit%d.o" % j)
    L[3].add("src/build/Makefile", (
        "CFLAGS = -O2 -Wall\nOBJS = %s\nall: $(OBJS)\n%%.o: %%.c\n\t$(CC) $(CFLAGS) -c -o $@ $<\n"
        % " ".join(objs)).encode())
    # the big file, bottom layer
    L[4].add("big/big.bin", ("big", P["big_mib"] << 20))
    for ly in L:
        for w in ly.wh:
            assert w not in ly.files and w not in ly.dirs, w
    return L


def flatten(layers):
    """Union view by applying layers bottom-up (whiteouts and opaque dirs
    of a layer act on everything below it). Returns nested dict."""
    root = {}

    def node(rel, create):
        cur = root
        if rel == "":
            return cur
        for part in rel.split("/"):
            nxt = cur.get(part)
            if not isinstance(nxt, dict):
                if not create:
                    return None
                nxt = {}
                cur[part] = nxt
            cur = nxt
        return cur

    for ly in reversed(layers):
        for w in ly.wh:
            parent, _, name = w.rpartition("/")
            p = node(parent, False)
            if p is not None:
                p.pop(name, None)
        for o in ly.opq:
            p = node(o, False)
            if p is not None:
                p.clear()
        for d in sorted(ly.dirs):
            node(d, True)
        for rel, data in ly.files.items():
            parent, _, name = rel.rpartition("/")
            node(parent, True)[name] = data
    return root


def walk_flat(tree, prefix=""):
    for name, v in tree.items():
        rel = prefix + name
        if isinstance(v, dict):
            yield rel, "d", v
            yield from walk_flat(v, rel + "/")
        else:
            yield rel, "f", v


def hidden_by(layers, k, rel):
    """True if entry rel of layer k is hidden by a marker of a higher layer."""
    parts = rel.split("/")
    anc = ["/".join(parts[:i]) for i in range(1, len(parts))]
    for j in range(k):
        ly = layers[j]
        if rel in ly.wh or any(a in ly.wh for a in anc) or any(a in ly.opq for a in anc):
            return True
    return False


def write_data(path, data, bigsrc=None):
    if isinstance(data, tuple):
        if bigsrc:
            run(["cp", "--reflink=never", bigsrc, path])
        else:
            nbytes = data[1]
            with open("/dev/urandom", "rb") as r, open(path, "wb") as w:
                left = nbytes
                while left:
                    b = r.read(min(left, 1 << 20))
                    w.write(b)
                    left -= len(b)
    else:
        with open(path, "wb") as f:
            f.write(data)


def write_layer(ly, dest, fmt, layers=None, k=None, bigsrc=None):
    os.makedirs(dest)
    for d in sorted(ly.dirs):
        if fmt == "none" and hidden_by(layers, k, d):
            continue
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    for rel, data in sorted(ly.files.items()):
        if fmt == "none" and hidden_by(layers, k, rel):
            continue
        write_data(os.path.join(dest, rel), data, bigsrc)
    if fmt == "none":
        return
    for rel in sorted(ly.wh):
        parent, _, name = rel.rpartition("/")
        if fmt == "aufs":
            p = os.path.join(dest, parent, ".wh." + name)
            open(p, "w").close()
            os.chmod(p, 0o444)
        elif fmt == "ovl":
            os.mknod(os.path.join(dest, rel), stat.S_IFCHR | 0o000, os.makedev(0, 0))
        elif fmt == "unionfs":
            p = os.path.join(dest, ".unionfs-fuse", rel + "_HIDDEN~")
            os.makedirs(os.path.dirname(p), exist_ok=True)
            open(p, "w").close()
    for rel in sorted(ly.opq):
        if fmt == "aufs":
            p = os.path.join(dest, rel, ".wh..wh..opq")
            open(p, "w").close()
            os.chmod(p, 0o444)
        elif fmt == "ovl":
            os.setxattr(os.path.join(dest, rel), "trusted.overlay.opaque", b"y")
        elif fmt == "unionfs":
            p = os.path.join(dest, ".unionfs-fuse", rel + "_HIDDEN~")
            os.makedirs(os.path.dirname(p), exist_ok=True)
            open(p, "w").close()


FORMATS = ["aufs", "ovl", "unionfs", "none"]


class Fixture:
    def __init__(self, workdir, mode, P):
        self.P = P
        self.dir = os.path.join(workdir, "fixture-" + mode)
        self.stamp = os.path.join(self.dir, "stamp.json")
        want = {"version": FIXTURE_VERSION,
                "params": {k: v for k, v in P.items() if k in FIXTURE_KEYS}}
        have = None
        if os.path.exists(self.stamp):
            try:
                with open(self.stamp) as f:
                    have = json.load(f)
            except ValueError:
                have = None
        if have != want:
            self.build(want)
        with open(os.path.join(self.dir, "manifest.json")) as f:
            m = json.load(f)
        self.manifest = m["entries"]
        self.info = m["info"]

    def layers(self, fmt):
        """branch dirs for a format, top first, without the rw upper"""
        return [os.path.join(self.dir, fmt, "L1"), os.path.join(self.dir, fmt, "L2"),
                os.path.join(self.dir, fmt, "L3"), os.path.join(self.dir, "shared", "L4")]

    def upper_tmpl(self, fmt):
        return os.path.join(self.dir, fmt, "upper")

    @property
    def plain(self):
        return os.path.join(self.dir, "plain")

    def mbr(self, i):
        return os.path.join(self.dir, "mbr", "b%03d" % i)

    @property
    def mbr_upper(self):
        return os.path.join(self.dir, "mbr", "upper")

    def build(self, want):
        P = self.P
        log("building fixture in %s (cached for later runs)" % self.dir)
        rmtree(self.dir)
        os.makedirs(self.dir)
        L = gen_spec(P)
        # L4 is shared by all formats (nothing in it is ever hidden)
        for rel in list(L[4].files) + list(L[4].dirs):
            assert not hidden_by(L, 4, rel), rel
        write_layer(L[4], os.path.join(self.dir, "shared", "L4"), "ovl")
        bigsrc = os.path.join(self.dir, "shared", "L4", "big", "big.bin")
        for fmt in FORMATS:
            for k in range(0, 4):
                write_layer(L[k], os.path.join(self.dir, fmt, "upper" if k == 0 else "L%d" % k),
                            fmt, L, k)
        flat = flatten(L)
        # plain: the flattened union (real copy of the big file too)
        entries = {}
        for rel, t, v in walk_flat(flat):
            p = os.path.join(self.plain, rel)
            if t == "d":
                os.makedirs(p, exist_ok=True)
                entries[rel] = ["d", 0]
            else:
                os.makedirs(os.path.dirname(p), exist_ok=True)
                write_data(p, v, bigsrc)
                entries[rel] = ["f", v[1] if isinstance(v, tuple) else len(v)]
        # git repository of the source tree (lives in L4; plain gets a copy)
        tmp = os.path.join(self.dir, "gittmp")
        shutil.copytree(os.path.join(self.plain, "src"), tmp)
        genv = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
                "GIT_COMMITTER_EMAIL": "b@b"}
        run(["git", "init", "-q"], cwd=tmp)
        run(["git", "add", "-A"], cwd=tmp)
        run(["git", "commit", "-q", "-m", "fixture"], cwd=tmp, env=genv)
        run(["git", "gc", "-q"], cwd=tmp)
        shutil.copytree(os.path.join(tmp, ".git"), os.path.join(self.dir, "shared", "L4", "src", ".git"),
                        symlinks=True)
        shutil.copytree(os.path.join(tmp, ".git"), os.path.join(self.plain, "src", ".git"), symlinks=True)
        rmtree(tmp)
        for dp, dns, fns in os.walk(os.path.join(self.plain, "src", ".git")):
            rel = os.path.relpath(dp, self.plain)
            entries[rel] = ["d", 0]
            for fn in fns:
                entries[rel + "/" + fn] = ["f", os.lstat(os.path.join(dp, fn)).st_size]
        # pristine copy of the rm -rf tree, to restore the plain target
        rmrel = "tree/d%02d" % (P["ndirs"] - 1)
        shutil.copytree(os.path.join(self.plain, rmrel), os.path.join(self.dir, "plain_rmtree"))
        # lists
        paths = sorted(entries)
        with open(os.path.join(self.dir, "lstat.list"), "w") as f:
            f.write("\n".join(paths) + "\n")
        chm = sorted(r for r in paths if entries[r][0] == "f" and
                     (r.startswith("tree/d01/") or r.startswith("tree/d02/")))[:P["chmod_n"]]
        assert len(chm) == P["chmod_n"], len(chm)
        with open(os.path.join(self.dir, "chmod.list"), "w") as f:
            f.write("\n".join(chm) + "\n")
        # tarball for untar
        rng = random.Random(7)
        with tarfile.open(os.path.join(self.dir, "untar.tar"), "w") as tf:
            for i in range(P["untar_n"]):
                data = rng.randbytes(rng.randint(200, 2000))
                ti = tarfile.TarInfo("untar/p%02d/f%04d" % (i % 50, i))
                ti.size = len(data)
                ti.mtime = 1700000000
                ti.mode = 0o644
                tf.addfile(ti, io.BytesIO(data))
        # many-branch fixture: 127 branches, names in the rw upper's top/
        for b in range(NBRANCHES_MAX):
            d = self.mbr(b)
            os.makedirs(os.path.join(d, "common"))
            with open(os.path.join(d, "common", "b%03d" % b), "w") as f:
                f.write("%d\n" % b)
            with open(os.path.join(d, "only_b%03d" % b), "w") as f:
                f.write("%d\n" % b)
        os.makedirs(os.path.join(self.mbr_upper, "top"))
        os.makedirs(os.path.join(self.mbr_upper, ".bench"))
        with open(os.path.join(self.mbr_upper, ".bench", "marker"), "w") as f:
            f.write("upper\n")
        for i in range(P["lookup_n"]):
            open(os.path.join(self.mbr_upper, "top", "n%05d" % i), "w").close()
        info = {
            "union_paths": len(paths),
            "union_files": sum(1 for r in paths if entries[r][0] == "f"),
            "tree_paths": sum(1 for r in paths if r.startswith("tree/")) + 1,
            "small_files_tree": sum(1 for r in paths if entries[r][0] == "f" and r.startswith("tree/")),
            "layer_files": {ly.name: len(ly.files) for ly in L},
            "whiteouts": {ly.name: len(ly.wh) for ly in L},
            "opaque_dirs": {ly.name: sorted(ly.opq) for ly in L},
            "many_entries": sum(1 for r in paths if r.startswith("many/")),
            "src_files": sum(1 for r in paths if r.startswith("src/") and not r.startswith("src/.git")
                             and entries[r][0] == "f"),
            "big_file_mib": P["big_mib"],
            "rm_tree": rmrel,
            "rm_tree_entries": sum(1 for r in paths if r.startswith(rmrel + "/")),
        }
        with open(os.path.join(self.dir, "manifest.json"), "w") as f:
            json.dump({"entries": entries, "info": info}, f)
        os.sync()
        with open(self.stamp, "w") as f:
            json.dump(want, f)
        log("fixture ready: %d union paths" % len(paths))


# --------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------

class Mount:
    def __init__(self, target, mnt, proc=None):
        self.target = target
        self.mnt = mnt
        self.proc = proc
        self.pid = proc.pid if proc else None
        self.mount_time = None
        self.rss_base_kib = None
        self.hwm_kib = None
        ACTIVE[mnt] = self

    def status(self):
        return proc_status(self.pid) if self.pid else {}

    def unmount(self, quiet=False):
        if self.pid:
            st = self.status()
            if st:
                self.hwm_kib = kib(st.get("VmHWM", ""))
        if os.path.ismount(self.mnt):
            ok = False
            for attempt in range(20):
                p = subprocess.run(["umount", self.mnt], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
                if p.returncode == 0:
                    ok = True
                    break
                time.sleep(0.1)
            if not ok:
                if self.target.fuse:
                    subprocess.run(["fusermount3", "-u", "-z", self.mnt],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                subprocess.run(["umount", "-l", self.mnt], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                if not quiet:
                    log("warning: %s needed a lazy unmount" % self.mnt)
        if self.proc:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                if not quiet:
                    log("warning: daemon %d of %s had to be killed" % (self.pid, self.target.name))
        ACTIVE.pop(self.mnt, None)


class Target:
    fuse = True
    union = True
    writes = True
    fmt = None
    fstype = None

    def __init__(self, name, bench):
        self.name = name
        self.bench = bench
        self.logf = os.path.join(bench.workdir, "logs", name + ".log")

    def available(self):
        return True, ""

    def version(self):
        return ""

    def cmd(self, upper, work, lowers, mnt):
        raise NotImplementedError

    def mount(self, upper, work, lowers, mnt, cwd=None):
        """mount and wait until the root answers; returns Mount with mount_time"""
        os.makedirs(mnt, exist_ok=True)
        if os.path.ismount(mnt):
            raise RuntimeError("%s is already a mount point" % mnt)
        pdev = os.stat(mnt).st_dev
        cmd = self.cmd(upper, work, lowers, mnt)
        lf = open(self.logf, "ab")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=lf, stderr=lf, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=cwd)
        lf.close()
        m = Mount(self, mnt, proc)
        deadline = t0 + 60
        while True:
            try:
                if os.stat(mnt).st_dev != pdev:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                m.unmount(quiet=True)
                raise RuntimeError("%s exited with %s before mounting: %s" % (
                    self.name, proc.returncode, " ".join(cmd)[:300]))
            if time.perf_counter() > deadline:
                m.unmount(quiet=True)
                raise RuntimeError("%s: mount timed out" % self.name)
            time.sleep(0.0005)
        m.mount_time = time.perf_counter() - t0
        ft = fstype_of(mnt)
        if self.fstype and ft != self.fstype:
            m.unmount(quiet=True)
            raise RuntimeError("%s: mounted as %s, expected %s" % (self.name, ft, self.fstype))
        m.rss_base_kib = kib(m.status().get("VmRSS", ""))
        return m


def first_line(cmd, want=None):
    """first output line of cmd (the first one containing want, if given)"""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        lines = p.stdout.decode(errors="replace").strip().splitlines()
        if want:
            lines = [x for x in lines if want in x] or lines
        return lines[0].strip()
    except Exception as e:
        return "?(%s)" % e


class Plain(Target):
    fuse = False
    union = False
    fmt = "plain"

    def version(self):
        return "no union: flattened copy of the union on the work directory's file system"


class Overlay(Target):
    fuse = False
    fmt = "ovl"
    fstype = "overlay"

    def available(self):
        with open("/proc/filesystems") as f:
            if "overlay" not in f.read():
                run(["modprobe", "overlay"], check=False)
        with open("/proc/filesystems") as f:
            return ("overlay" in f.read()), "kernel has no overlay"

    def version(self):
        params = {}
        for p in glob.glob("/sys/module/overlay/parameters/*"):
            try:
                with open(p) as f:
                    params[os.path.basename(p)] = f.read().strip()
            except OSError:
                pass
        return "kernel %s overlay (%s)" % (platform.release(),
                                           ",".join("%s=%s" % kv for kv in sorted(params.items())))

    def mount(self, upper, work, lowers, mnt, cwd=None):
        os.makedirs(mnt, exist_ok=True)
        if os.path.ismount(mnt):
            raise RuntimeError("%s is already a mount point" % mnt)
        opts = "lowerdir=%s,upperdir=%s,workdir=%s" % (":".join(lowers), upper, work)
        t0 = time.perf_counter()
        p = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, mnt], cwd=cwd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise RuntimeError("overlay mount failed: %s" % p.stderr.decode(errors="replace"))
        m = Mount(self, mnt)
        os.stat(mnt)
        m.mount_time = time.perf_counter() - t0
        if fstype_of(mnt) != "overlay":
            m.unmount(quiet=True)
            raise RuntimeError("overlay: not mounted")
        return m


class PassthroughHp(Target):
    """libfuse's example/passthrough_hp over the plain copy: the FUSE floor"""
    union = False
    fmt = "plain"
    fstype = "fuse"

    def __init__(self, name, bench):
        super().__init__(name, bench)
        self.bin = None
        self.why = ""

    def available(self):
        # built once per work directory from Debian's fuse3 source package
        script = os.path.join(HERE, "passthrough-hp.sh")
        with open(self.logf, "ab") as lf:
            p = subprocess.run([script, self.bench.workdir], stdout=subprocess.PIPE, stderr=lf)
        path = p.stdout.decode().strip().splitlines()[-1:] if p.returncode == 0 else []
        if path and os.access(path[0], os.X_OK):
            self.bin = path[0]
            return True, ""
        return False, "cannot build passthrough_hp (see %s)" % self.logf

    def version(self):
        v = first_line(["dpkg-query", "-W", "-f", "${Version}", "libfuse3-3"])
        return ("libfuse %s example/passthrough_hp (Debian source package, built with g++ -O2; "
                "defaults: 86400 s timeouts, writeback cache, keep_cache, an fd per inode, "
                "soft RLIMIT_NOFILE raised to the hard one by itself) over the plain copy" % v)

    def cmd(self, upper, work, lowers, mnt):
        return [self.bin, lowers[0], mnt, "--foreground"]


class FuseOverlayfs(Target):
    fmt = "ovl"
    fstype = "fuse.fuse-overlayfs"

    def available(self):
        return bool(shutil.which("fuse-overlayfs")), "fuse-overlayfs not installed"

    def version(self):
        return first_line(["fuse-overlayfs", "--version"], "fuse-overlayfs: version")

    def cmd(self, upper, work, lowers, mnt):
        return ["fuse-overlayfs", "-f", "-o", "lowerdir=%s,upperdir=%s,workdir=%s" % (
            ":".join(lowers), upper, work), mnt]


class UnionfsFuse(Target):
    fmt = "unionfs"
    fstype = "fuse.unionfs"

    def available(self):
        return bool(shutil.which("unionfs")), "unionfs-fuse not installed"

    def version(self):
        return first_line(["unionfs", "--version"], "unionfs-fuse version") + " (-o cow,hide_meta_files)"

    def cmd(self, upper, work, lowers, mnt):
        br = ":".join([upper + "=RW"] + [lo + "=RO" for lo in lowers])
        return ["unionfs", "-f", "-o", "cow,hide_meta_files", br, mnt]


class Mergerfs(Target):
    fmt = "none"
    fstype = "fuse.mergerfs"
    writes = False

    def available(self):
        return bool(shutil.which("mergerfs")), "mergerfs not installed"

    def version(self):
        return first_line(["mergerfs", "--version"]) + " (defaults, all branches RO, " \
            "whiteouts pre-applied to its copy of the layers)"

    def cmd(self, upper, work, lowers, mnt):
        br = ":".join([upper + "=RO"] + [lo + "=RO" for lo in lowers])
        return ["mergerfs", "-f", "-o", "fsname=mergerfs", br, mnt]


class AufsFuse(Target):
    fmt = "aufs"
    fstype = "fuse.aufs"
    extra = ""
    bin_attr = "aufs_bin"  # which binary: --aufs-bin, or --aufs-bin-318 for the 3.18 targets

    def binary(self):
        return getattr(self.bench, self.bin_attr)

    def available(self):
        b = self.binary()
        flag = "--aufs-bin" if self.bin_attr == "aufs_bin" else "--aufs-bin-318"
        return bool(b and os.access(b, os.X_OK)), "aufs-fuse binary not found (%s)" % flag

    def version(self):
        b = self.binary()
        v = first_line([b, "--version"])
        bt = "?"
        bdir = os.path.dirname(os.path.dirname(os.path.abspath(b)))
        try:
            with open(os.path.join(bdir, "meson-info", "intro-buildoptions.json")) as f:
                for o in json.load(f):
                    if o["name"] == "buildtype":
                        bt = o["value"]
        except (OSError, ValueError, KeyError):
            pass
        st = os.stat(b)
        return "%s (%s, buildtype=%s, built %s%s)" % (
            v, b, bt, datetime.datetime.fromtimestamp(st.st_mtime).isoformat(timespec="seconds"),
            (", options " + self.extra) if self.extra else ", default options")

    def cmd(self, upper, work, lowers, mnt):
        br = ":".join([upper + "=rw"] + [lo + "=ro+wh" for lo in lowers])
        opts = "br=" + br + ("," + self.extra if self.extra else "")
        return [self.binary(), "-f", "-o", opts, mnt]


class AufsFuseNone(AufsFuse):
    extra = "udba=none"


class AufsFuseNotify(AufsFuse):
    extra = "udba=notify"


class AufsFuseVolatile(AufsFuse):
    extra = "volatile"  # copy-ups not synced before they are published


class AufsFuse318(AufsFuse):
    """The same code linked with libfuse 3.18 (passthrough on, its default rw)."""
    bin_attr = "aufs_bin_318"


class AufsFuse318NoPassthrough(AufsFuse318):
    extra = "passthrough=none"


class AufsFuse318PassthroughAll(AufsFuse318):
    extra = "passthrough=all"  # lower files too: open readers not re-pointed at copy-up


class AufsFuse318Uring(AufsFuse318):
    extra = "io_uring"
    PARAM = "/sys/module/fuse/parameters/enable_uring"

    def available(self):
        ok, why = AufsFuse318.available(self)
        if ok and not os.path.exists(self.PARAM):
            return False, "the kernel has no FUSE over io_uring (%s)" % self.PARAM
        return ok, why

    saved = None  # the parameter's value before the run, put back at exit

    def cmd(self, upper, work, lowers, mnt):
        try:  # root may switch it on; otherwise the daemon warns and uses /dev/fuse
            if AufsFuse318Uring.saved is None:
                with open(self.PARAM) as f:
                    AufsFuse318Uring.saved = f.read().strip()
                atexit.register(AufsFuse318Uring.restore)
            with open(self.PARAM, "w") as f:
                f.write("Y")
        except OSError:
            pass
        return AufsFuse318.cmd(self, upper, work, lowers, mnt)

    @staticmethod
    def restore():
        try:
            with open(AufsFuse318Uring.PARAM, "w") as f:
                f.write(AufsFuse318Uring.saved)
        except OSError:
            pass


TARGET_CLASSES = {"plain": Plain, "overlay": Overlay, "passthrough_hp": PassthroughHp,
                  "fuse-overlayfs": FuseOverlayfs,
                  "unionfs-fuse": UnionfsFuse, "mergerfs": Mergerfs, "aufs-fuse": AufsFuse,
                  "aufs-fuse-notify": AufsFuseNotify, "aufs-fuse-none": AufsFuseNone,
                  "aufs-fuse-volatile": AufsFuseVolatile, "aufs-fuse-318": AufsFuse318,
                  "aufs-fuse-318-nopt": AufsFuse318NoPassthrough,
                  "aufs-fuse-318-ptall": AufsFuse318PassthroughAll,
                  "aufs-fuse-318-uring": AufsFuse318Uring}


# --------------------------------------------------------------------------
# workloads
# --------------------------------------------------------------------------

class Ctx:
    """what a workload run gets: the root of the view and the fixture"""

    def __init__(self, bench, target, root, mount):
        self.b = bench
        self.fx = bench.fx
        self.t = target
        self.root = root
        self.mount = mount

    def p(self, rel):
        return os.path.join(self.root, rel)


class Workload:
    def __init__(self, name, desc, fn, cold=False, warm=False, writes=False,
                 reset_plain=None, fixture="main", nbr=None, group=None, after=None):
        self.name, self.desc, self.fn = name, desc, fn
        self.cold, self.warm, self.writes = cold, warm, writes
        # after=NAME: runs on the same mount right after workload NAME (its
        # cold partner), so the cold run is the warm-up
        self.after = after
        self.reset_plain = reset_plain
        self.fixture, self.nbr = fixture, nbr
        self.group = group

    def applies(self, t):
        if self.fixture == "mbr":
            return t.union
        if self.writes and not t.writes:
            return False
        return True


def w_find(c):
    return timed(["find", c.root])


def w_lstat(c):
    el, n = c.b.helper("lstat", c.root, os.path.join(c.fx.dir, "lstat.list"),
                       expect=c.fx.info["union_paths"])
    return el


def w_lslR(c):
    return timed(["ls", "-lR", c.p("tree")])


def w_readdir(c):
    el, n = c.b.helper("readdir", c.p("many"))
    if n not in (c.fx.info["many_entries"], c.fx.info["many_entries"] + 2):
        raise RuntimeError("readdir returned %d entries, expected %d" % (n, c.fx.info["many_entries"]))
    return el


def w_tar(c):
    # /dev/zero, not /dev/null: GNU tar skips reading file data when the
    # archive is /dev/null.  Exit 1 ("file changed as we read it", which
    # kernel overlayfs triggers on merged directories) is only a warning.
    return timed(["tar", "--warning=no-file-changed", "-C", c.root, "-cf", "/dev/zero", "tree"],
                 ok=(0, 1))


def w_seqread(c):
    el, n = c.b.helper("read", c.p("big/big.bin"), expect=c.fx.P["big_mib"] << 20)
    return el


def w_fio(c):
    P = c.fx.P
    p = run(["fio", "--name=randread", "--filename=" + c.p("big/big.bin"), "--readonly",
             "--rw=randread", "--bs=4k", "--ioengine=psync", "--invalidate=1",
             "--number_ios=%d" % P["fio_ios"], "--size=%dM" % P["big_mib"],
             "--randrepeat=1", "--output-format=json"])
    j = json.loads(p.stdout.decode()[p.stdout.decode().index("{"):])
    r = j["jobs"][0]["read"]
    if r["total_ios"] < P["fio_ios"] * 0.99 or r["bw_bytes"] <= 0:
        raise RuntimeError("fio did %s ios" % r["total_ios"])
    return r["io_bytes"] / r["bw_bytes"]


def w_grep(c):
    return timed(["grep", "-r", "-l", "--exclude-dir=.git", "bench_needle", c.p("src")])


def w_git(c):
    return timed(["git", "-c", "safe.directory=*", "-C", c.p("src"), "status", "--porcelain"])


def w_make(c):
    return timed(["make", "-s", "-j2", "-C", c.p("src/build")])


def r_make(root, fx):
    for o in glob.glob(os.path.join(root, "src/build/*.o")):
        os.unlink(o)


def w_append(c):
    el, n = c.b.helper("append", c.p("big/big.bin"), expect=1)
    return el


def r_append(root, fx):
    os.truncate(os.path.join(root, "big/big.bin"), fx.P["big_mib"] << 20)


def w_chmod(c):
    el, n = c.b.helper("chmod", c.root, os.path.join(c.fx.dir, "chmod.list"), "0600",
                       expect=c.fx.P["chmod_n"])
    return el


def r_chmod(root, fx):
    with open(os.path.join(fx.dir, "chmod.list")) as f:
        for line in f:
            if line.strip():
                os.chmod(os.path.join(root, line.strip()), 0o644)


def w_untar(c):
    return timed(["tar", "-xf", os.path.join(c.fx.dir, "untar.tar"), "-C", c.root])


def r_untar(root, fx):
    rmtree(os.path.join(root, "untar"))


def w_create(c):
    d = c.p("created")
    os.mkdir(d)
    el, n = c.b.helper("create", d, c.fx.P["create_n"], 4096, expect=c.fx.P["create_n"])
    return el


def r_create(root, fx):
    rmtree(os.path.join(root, "created"))


def w_seqwrite(c):
    el, n = c.b.helper("write", c.p("seqwrite.bin"), c.fx.P["seqwrite_mib"],
                       expect=c.fx.P["seqwrite_mib"])
    return el


def r_seqwrite(root, fx):
    rmtree(os.path.join(root, "seqwrite.bin"))


def w_rmrf(c):
    return timed(["rm", "-rf", c.p(c.fx.info["rm_tree"])])


def r_rmrf(root, fx):
    d = os.path.join(root, fx.info["rm_tree"])
    rmtree(d)
    shutil.copytree(os.path.join(fx.dir, "plain_rmtree"), d)


def w_mount(c):
    return c.mount.mount_time


def w_lookup(c):
    el, n = c.b.helper("statn", c.p("top"), c.fx.P["lookup_n"], expect=c.fx.P["lookup_n"])
    return el


def make_workloads(P, info):
    n = info["union_paths"]
    W = Workload
    return [
        W("find_cold", "`find` over the whole union (%d paths), page/dentry caches dropped" % n,
          w_find, cold=True, group="cold find"),
        W("find_warm", "the same `find` again, right after find_cold on the same mount", w_find,
          warm=True, after="find_cold"),
        W("lstat_cold", "lstat(2) of every path (%d), cold" % n, w_lstat, cold=True,
          group="lstat-all cold"),
        W("lstat_warm", "the same lstat pass again, right after lstat_cold", w_lstat, warm=True,
          group="lstat-all warm", after="lstat_cold"),
        W("ls_lR_cold", "`ls -lR` of the small-file tree (%d paths: lstat + xattr reads), cold"
          % info["tree_paths"], w_lslR, cold=True, group="ls -lR"),
        W("readdir_20k_cold", "readdir (names only) of the %d-entry merged directory, cold"
          % info["many_entries"], w_readdir, cold=True),
        W("readdir_20k_warm", "the same readdir again, right after readdir_20k_cold",
          w_readdir, warm=True, after="readdir_20k_cold"),
        W("tar_small_cold", "`tar -cf /dev/zero tree` (reads all %d small files), cold"
          % info["small_files_tree"], w_tar, cold=True, group="read all small files"),
        W("tar_small_warm", "the same tar again, right after tar_small_cold", w_tar, warm=True,
          group="read all small files", after="tar_small_cold"),
        W("seqread_cold", "sequential read of the %d MiB bottom-layer file, 1 MiB reads, cold"
          % P["big_mib"], w_seqread, cold=True, group="seq read cold"),
        W("seqread_warm", "the same read again, right after seqread_cold", w_seqread, warm=True,
          group="seq read warm", after="seqread_cold"),
        W("randread_4k_cold", "fio: %d random 4 KiB reads (psync) of the big file, cold"
          % P["fio_ios"], w_fio, cold=True),
        W("grep_cold", "`grep -r` for a string over the %d-file source tree, cold"
          % info["src_files"], w_grep, cold=True, group="grep -r"),
        W("grep_warm", "the same grep again, right after grep_cold", w_grep, warm=True,
          group="grep -r", after="grep_cold"),
        W("git_status", "`git status` of the source tree after an untimed one (which "
          "refreshes the index: a copy-up)", w_git, warm=True, writes=True, group="git status"),
        W("make_j2", "`make -j2`: %d C files (sources in L3, headers in L4), objects "
          "written to the union" % P["ncompile"], w_make, writes=True, reset_plain=r_make,
          group="make"),
        W("append_copyup", "first 1-byte append to the %d MiB lower file + sync(2) "
          "(copy-up), cold" % P["big_mib"], w_append, cold=True, writes=True,
          reset_plain=r_append, group="copy-up"),
        W("chmod_%d" % P["chmod_n"], "chmod(2) of %d lower files (metadata copy-up)"
          % P["chmod_n"], w_chmod, writes=True, reset_plain=r_chmod, group="chmod copy-up"),
        W("untar_%d" % P["untar_n"], "`tar -xf` of a %d-file tarball into the union"
          % P["untar_n"], w_untar, writes=True, reset_plain=r_untar, group="untar"),
        W("create_fsync_%d" % P["create_n"], "create + write 4 KiB + fsync + close, %d files"
          % P["create_n"], w_create, writes=True, reset_plain=r_create),
        W("seqwrite", "write a new %d MiB file, 1 MiB writes, fsync" % P["seqwrite_mib"],
          w_seqwrite, writes=True, reset_plain=r_seqwrite, group="seq write"),
        W("rm_rf", "`rm -rf` of a merged lower tree (%d entries)" % info["rm_tree_entries"],
          w_rmrf, writes=True, reset_plain=r_rmrf, group="rm -rf"),
        W("mount_10", "mount with 10 branches until the root answers", w_mount,
          fixture="mbr", nbr=10),
        W("mount_127", "mount with 127 branches until the root answers", w_mount,
          fixture="mbr", nbr=127),
        W("lookup_2", "stat(2) of %d distinct names of the top branch, 2 branches, fresh mount"
          % P["lookup_n"], w_lookup, fixture="mbr", nbr=2),
        W("lookup_127", "the same with 127 branches", w_lookup, fixture="mbr", nbr=127),
    ]


ISSUE5_TARGETS = [
    # (label, workloads, max ratio)
    ("cold find", ["find_cold"], 1.5),
    ("lstat-all cold", ["lstat_cold"], 2.0),
    ("lstat-all warm", ["lstat_warm"], 1.0),
    ("ls -lR", ["ls_lR_cold"], 2.0),
    ("read all small files", ["tar_small_cold", "tar_small_warm"], 3.0),
    ("seq read warm", ["seqread_warm"], 1.1),
    ("seq read cold", ["seqread_cold"], 1.3),
    ("copy-up", ["append_copyup"], 1.0),
    ("chmod copy-up", ["chmod_*"], 0.5),
    ("untar", ["untar_*"], 1.3),
    ("seq write", ["seqwrite"], 1.5),
    ("rm -rf", ["rm_rf"], 2.0),
    ("grep -r", ["grep_cold", "grep_warm"], 1.5),
    ("git status", ["git_status"], 1.5),
    ("make", ["make_j2"], 1.1),
]


# --------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------

def newest_aufs_bin():
    c = [p for p in glob.glob(os.path.join(REPO, "build*", "src", "aufs-fuse")) if os.access(p, os.X_OK)]
    return max(c, key=lambda p: os.stat(p).st_mtime) if c else None


class Bench:
    def __init__(self, args):
        self.args = args
        self.mode = "quick" if args.quick else "full"
        self.P = dict(PARAMS[self.mode])
        self.rounds = args.rounds or self.P["rounds"]
        self.workdir = os.path.abspath(args.workdir)
        self.out = os.path.abspath(args.out)
        self.aufs_bin = os.path.abspath(args.aufs_bin) if args.aufs_bin else newest_aufs_bin()
        self.aufs_bin_318 = os.path.abspath(args.aufs_bin_318) if args.aufs_bin_318 else None
        for d in ("logs", "run", "mnt"):
            os.makedirs(os.path.join(self.workdir, d), exist_ok=True)
        self.helper = None
        self.fx = None
        self.targets = []
        self.invalid = {}     # name -> reason
        self.unavailable = {}
        self.results = {}     # wl -> target -> {"samples": [], "errors": [], ...}

    # ---- setup

    def stale_mounts(self):
        for mp, ft in mountinfo():
            if mp.startswith(self.workdir + "/"):
                log("unmounting stale %s (%s)" % (mp, ft))
                subprocess.run(["umount", "-l", mp], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)

    def setup(self):
        self.stale_mounts()
        self.helper = Helper(self.workdir)
        self.fx = Fixture(self.workdir, self.mode, self.P)
        self.workloads = make_workloads(self.P, self.fx.info)
        self.all_workloads = list(self.workloads)
        names = self.args.targets.split(",") if self.args.targets else DEFAULT_TARGETS
        for n in names:
            if n not in TARGET_CLASSES:
                raise SystemExit("unknown target %s (known: %s)" % (n, ", ".join(ALL_TARGETS)))
            t = TARGET_CLASSES[n](n, self)
            ok, why = t.available()
            if not ok:
                self.unavailable[n] = why
                log("target %s unavailable: %s" % (n, why))
                continue
            self.targets.append(t)
        if self.args.workloads:
            want = self.args.workloads.split(",")
            self.workloads = [w for w in self.workloads
                              if any(w.name == x or (x.endswith("*") and w.name.startswith(x[:-1]))
                                     for x in want)]

    # ---- per-trial view

    def paths(self, t):
        base = os.path.join(self.workdir, "run", t.name)
        return os.path.join(base, "upper"), os.path.join(base, "work"), \
            os.path.join(self.workdir, "mnt", t.name)

    def fresh_upper(self, t, tmpl):
        upper, work, mnt = self.paths(t)
        rmtree(upper)
        rmtree(work)
        os.makedirs(os.path.dirname(upper), exist_ok=True)
        run(["cp", "-a", tmpl, upper])
        os.makedirs(work)
        return upper, work, mnt

    def open_view(self, t, wl):
        """returns (root, Mount or None)"""
        if not t.union and not t.fuse:
            return self.fx.plain, None
        if not t.union:
            # a FUSE file system over the plain copy (writes go to it)
            return self.check_marker(t.mount(None, None, [self.fx.plain], self.paths(t)[2]))
        if wl is None or wl.fixture == "main":
            lowers = self.fx.layers(t.fmt)
            tmpl = self.fx.upper_tmpl(t.fmt)
            nbr = None
        else:
            nbr = wl.nbr
            lowers = [self.fx.mbr(i) for i in range(nbr - 1)]
            tmpl = self.fx.mbr_upper
        if t.writes:
            upper, work, mnt = self.fresh_upper(t, tmpl)
        else:
            upper, work, mnt = tmpl, None, self.paths(t)[2]
        cwd = None
        if nbr and nbr > 10 and not t.fuse:
            # keep the kernel's mount option string under a page: relative lower dirs
            cwd = os.path.dirname(lowers[0])
            lowers = [os.path.basename(x) for x in lowers]
        return self.check_marker(t.mount(upper, work, lowers, mnt, cwd=cwd))

    @staticmethod
    def check_marker(m):
        try:
            with open(os.path.join(m.mnt, ".bench", "marker"), "rb") as f:
                got = f.read()
            if got != b"upper\n":
                raise RuntimeError("marker reads %r, the upper layer does not win" % got)
        except BaseException:
            m.unmount(quiet=True)
            raise
        return m.mnt, m

    # ---- correctness guard

    def validate(self, t):
        """full check of the union view, once per target before any timing"""
        try:
            root, m = self.open_view(t, None)
        except Exception as e:
            return "mount failed: %s" % e
        try:
            return self._validate_main(t, root)
        except OSError as e:
            # e.g. passthrough_hp out of file descriptors (EMFILE) on the full fixture
            return "walking the view failed: %s" % e
        finally:
            if m:
                m.unmount()

    def _validate_main(self, t, root):
        got = {}
        stack = [""]
        while stack:
            rel = stack.pop()
            with os.scandir(os.path.join(root, rel)) as it:
                for e in it:
                    r = (rel + "/" + e.name) if rel else e.name
                    st = e.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        got[r] = ["d", 0]
                        stack.append(r)
                    elif stat.S_ISREG(st.st_mode):
                        got[r] = ["f", st.st_size]
                    else:
                        got[r] = ["?", st.st_mode]
        exp = self.fx.manifest
        missing = sorted(set(exp) - set(got))
        extra = sorted(set(got) - set(exp))
        wrong = sorted(r for r in set(exp) & set(got) if exp[r] != got[r])
        probs = []
        if missing:
            probs.append("%d paths missing (e.g. %s)" % (len(missing), ", ".join(missing[:4])))
        if extra:
            probs.append("%d unexpected paths, whiteouts/opaque not honoured? (e.g. %s)"
                         % (len(extra), ", ".join(extra[:4])))
        if wrong:
            probs.append("%d paths of wrong type/size (e.g. %s)" % (len(wrong), ", ".join(wrong[:4])))
        # explicit union rules
        checks = [
            ("tree/d00/s0/u2_000", False, "L1 whiteout hides an L2 file"),
            ("tree/d00/s0/u3_001", False, "L2 whiteout hides an L3 file"),
            ("tree/d00/s0/u3_002", False, "rw-upper whiteout hides an L3 file"),
            ("tree/d03/x3", False, "L1 whiteout hides an L3 directory"),
            ("tree/opq/o2_00", False, "opaque dir (L1) hides L2 content"),
            ("tree/opq/o1_00", True, "opaque dir keeps its own content"),
            ("opq_up/l2_00", False, "opaque dir (rw upper) hides L2 content"),
            ("tree/d00/s0/u4_000", True, "bottom-layer file visible in a merged dir"),
            ("many/e4_00000", True, "big merged dir holds L4 names"),
        ]
        for rel, present, what in checks:
            if os.path.lexists(os.path.join(root, rel)) != present:
                probs.append("rule broken: %s (%s)" % (what, rel))
        for rel in ("tree/d00/s0/c_000", "tree/d01/s1/c_001"):
            try:
                with open(os.path.join(root, rel), "rb") as f:
                    head = f.read(3)
                if head != b"L1\n":
                    probs.append("%s: top layer copy does not win (%r)" % (rel, head))
            except OSError as e:
                probs.append("%s: %s" % (rel, e))
        # content of a sample of files against the flattened copy
        rng = random.Random(3)
        files = sorted(r for r in exp if exp[r][0] == "f" and r.startswith(("tree/", "src/")))
        for rel in rng.sample(files, min(40, len(files))):
            try:
                with open(os.path.join(root, rel), "rb") as a, \
                        open(os.path.join(self.fx.plain, rel), "rb") as b:
                    if a.read() != b.read():
                        probs.append("content differs: " + rel)
            except OSError as e:
                probs.append("%s: %s" % (rel, e))
        return "; ".join(probs) if probs else None

    def validate_mbr(self, t):
        class _W:
            fixture = "mbr"
            nbr = NBRANCHES_MAX
        try:
            root, m = self.open_view(t, _W)
        except Exception as e:
            return "127-branch mount failed: %s" % e
        try:
            probs = []
            common = sorted(os.listdir(os.path.join(root, "common")))
            want = ["b%03d" % i for i in range(NBRANCHES_MAX - 1)]
            if common != want:
                probs.append("127 branches: common/ has %d entries, expected %d"
                             % (len(common), len(want)))
            n = len(os.listdir(os.path.join(root, "top")))
            if n != self.P["lookup_n"]:
                probs.append("top/ has %d names, expected %d" % (n, self.P["lookup_n"]))
            last = os.path.join(root, "only_b%03d" % (NBRANCHES_MAX - 2))
            if not os.path.exists(last):
                probs.append("bottom branch of 127 not visible")
            return "; ".join(probs) if probs else None
        finally:
            m.unmount()

    # ---- trials

    def rec(self, wl, t):
        return self.results.setdefault(wl.name, {}).setdefault(
            t.name, {"samples": [], "errors": [], "daemon_hwm_kib": [], "daemon_rss_base_kib": [],
                     "daemon_cpu_s": [], "requests": []})

    def steps(self):
        """workloads grouped into steps that share one fresh mount: a cold
        workload and the warm ones that follow it.  A selected warm workload
        whose partner is not selected gets the partner as an untimed warm-up;
        a warm workload without a partner runs itself once untimed first."""
        names = {w.name for w in self.workloads}
        byname = {w.name: w for w in self.all_workloads}
        steps = []
        for w in self.workloads:
            if w.after and w.after in names:
                continue
            if w.after:
                step = [(byname[w.after], False), (w, True)]
            elif w.warm:
                step = [(w, False), (w, True)]
            else:
                step = [(w, True)] + [(x, True) for x in self.workloads if x.after == w.name]
            steps.append(step)
        return steps

    def wait_idle(self):
        """before a trial: note whether something else keeps the CPUs busy,
        and with --wait-idle wait (within the budget) until it stops"""
        busy = cpu_busy()
        self.busy_checks += 1
        if busy < 0.35:
            return
        self.busy_trials += 1
        t0 = time.monotonic()
        while busy >= 0.35 and self.waited < self.args.wait_idle:
            time.sleep(1)
            busy = cpu_busy(0.2)
            self.waited = self.waited_base + (time.monotonic() - t0)
        self.waited_base = self.waited

    def trial(self, step, t):
        """one fresh mount (fresh upper), the step's workloads in order;
        returns {workload name: seconds or None}"""
        mount = None
        self.wait_idle()
        out = {}
        first = step[0][0]
        timed_wls = [wl for wl, tm in step if tm]
        try:
            root, mount = self.open_view(t, first)
            c = Ctx(self, t, root, mount)
            os.sync()
            if first.cold:
                drop_caches()
            for wl, tm in step:
                if not tm:
                    wl.fn(c)
                    continue
                counts = isinstance(t, AufsFuse)
                req0 = request_counts(root) if counts else None
                cpu0 = proc_cpu(mount.pid) if mount and mount.pid else None
                el = wl.fn(c)
                cpu1 = proc_cpu(mount.pid) if mount and mount.pid else None
                req1 = request_counts(root) if counts else None
                r = self.rec(wl, t)
                r["samples"].append(el)
                if req0 is not None and req1 is not None:
                    # less the GETXATTR of the second read
                    d = {k: v - req0.get(k, 0) - (k == "getxattr") for k, v in req1.items()}
                    r["requests"].append({k: v for k, v in d.items() if v})
                if cpu0 is not None and cpu1 is not None:
                    r["daemon_cpu_s"].append(round(cpu1 - cpu0, 3))
                out[wl.name] = el
        except subprocess.TimeoutExpired as e:
            for wl in timed_wls:
                if wl.name not in out:
                    self.rec(wl, t)["errors"].append("timeout: %s" % e)
            log("  %s/%s: timeout" % (first.name, t.name))
        except (RuntimeError, OSError) as e:
            for wl in timed_wls:
                if wl.name not in out:
                    self.rec(wl, t)["errors"].append(str(e)[:500])
            log("  %s/%s: ERROR %s" % (first.name, t.name, str(e)[:300]))
        finally:
            if mount:
                mount.unmount()
                if mount.pid and mount.hwm_kib:
                    for wl in timed_wls:
                        self.rec(wl, t)["daemon_hwm_kib"].append(mount.hwm_kib)
                        self.rec(wl, t)["daemon_rss_base_kib"].append(mount.rss_base_kib)
            if not t.union:
                for wl, _ in step:
                    if wl.writes and wl.reset_plain:
                        wl.reset_plain(self.fx.plain, self.fx)
        return out

    def run(self):
        t0 = time.monotonic()
        self.load_start = os.getloadavg()
        self.busy_checks = self.busy_trials = 0
        self.waited = self.waited_base = 0.0
        if self.load_start[0] > 1.5:
            log("warning: load average is %.1f before starting; other work on the machine "
                "will distort the results" % self.load_start[0])
        self.started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        log("targets: %s; aufs-fuse binary: %s" % (", ".join(t.name for t in self.targets),
                                                   self.aufs_bin))
        for t in self.targets:
            log("validating %s ..." % t.name)
            why = self.validate(t)
            if not why and t.union and any(w.fixture == "mbr" for w in self.workloads):
                why = self.validate_mbr(t)
            if why:
                self.invalid[t.name] = why
                log("  %s INVALID: %s" % (t.name, why))
        live = [t for t in self.targets if t.name not in self.invalid]
        for wl in self.workloads:      # the plain copy may be dirty if a run died
            if wl.writes and wl.reset_plain:
                wl.reset_plain(self.fx.plain, self.fx)
        steps = self.steps()
        self.loads = []
        for r in range(self.rounds):
            order = live[r % len(live):] + live[:r % len(live)] if live else []
            log("round %d/%d, order %s" % (r + 1, self.rounds, " ".join(t.name for t in order)))
            for step in steps:
                self.loads.append(os.getloadavg()[0])
                res = {}
                for t in order:
                    if t.name in self.invalid or not all(wl.applies(t) for wl, _ in step):
                        continue
                    res[t.name] = self.trial(step, t)
                for wl, tm in step:
                    if tm:
                        log("  r%d %-18s %s" % (r + 1, wl.name, " ".join(
                            "%s=%s" % (tn, "%.3f" % v[wl.name] if wl.name in v else "ERR")
                            for tn, v in res.items())))
        self.duration = time.monotonic() - t0
        self.load_end = os.getloadavg()

    # ---- reporting

    def machine(self):
        def rd(p):
            try:
                with open(p) as f:
                    return f.read()
            except OSError:
                return ""
        cpu = "?"
        for line in rd("/proc/cpuinfo").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = kib([x for x in rd("/proc/meminfo").splitlines() if x.startswith("MemTotal")][0].split(":")[1])
        fs = run(["findmnt", "-n", "-o", "FSTYPE,SOURCE,OPTIONS", "--target", self.workdir],
                 check=False).stdout.decode().strip()
        git = run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], check=False).stdout.decode().strip()
        dirty = run(["git", "-C", REPO, "status", "--porcelain", "--", "src", "include"],
                    check=False).stdout.decode().strip()
        return {
            "kernel": platform.release() + " " + platform.version(),
            "cpu": cpu,
            "cores": os.cpu_count(),
            "memory_gib": round(mem / 1048576, 1) if mem else None,
            "workdir": self.workdir,
            "workdir_fs": fs,
            "os": rd("/etc/os-release").split('PRETTY_NAME="')[1].split('"')[0]
            if "PRETTY_NAME" in rd("/etc/os-release") else "?",
            "libfuse": first_line(["fusermount3", "--version"]),
            "fio": first_line(["fio", "--version"]),
            "gcc": first_line(["gcc", "--version"]),
            "python": platform.python_version(),
            "repo_commit": git + (" + uncommitted changes in src/ or include/" if dirty else ""),
        }

    def summarize(self):
        S = {}
        for wl in self.workloads:
            row = {}
            base = None
            rb = self.results.get(wl.name, {}).get(BASELINE)
            if rb and rb["samples"]:
                base = statistics.median(rb["samples"])
            floor = None
            rf = self.results.get(wl.name, {}).get(FLOOR)
            if rf and rf["samples"]:
                floor = statistics.median(rf["samples"])
            for t in self.targets:
                rec = self.results.get(wl.name, {}).get(t.name)
                if not rec:
                    continue
                s = rec["samples"]
                e = {"samples": [round(x, 6) for x in s], "errors": rec["errors"]}
                if s:
                    med = statistics.median(s)
                    e.update(median=med, min=min(s), max=max(s))
                    if base:
                        e["ratio"] = med / base
                    if floor:
                        e["ratio_floor"] = med / floor
                if rec["daemon_hwm_kib"]:
                    e["daemon_peak_rss_kib"] = max(rec["daemon_hwm_kib"])
                    e["daemon_rss_after_mount_kib"] = min(x for x in rec["daemon_rss_base_kib"] if x) \
                        if any(rec["daemon_rss_base_kib"]) else None
                if rec["daemon_cpu_s"]:
                    e["daemon_cpu_s_median"] = statistics.median(rec["daemon_cpu_s"])
                if rec["requests"]:
                    # per opcode, the median over the trials (each trial in "requests_trials")
                    ops = sorted({k for d in rec["requests"] for k in d})
                    e["requests"] = {k: statistics.median(d.get(k, 0) for d in rec["requests"])
                                     for k in ops}
                    e["requests_total"] = statistics.median(sum(d.values()) for d in rec["requests"])
                    e["requests_trials"] = rec["requests"]
                row[t.name] = e
            S[wl.name] = row
        return S, self.geomean(S, "ratio")

    def geomean(self, S, key):
        geo = {}
        for t in self.targets:
            rs = [S[w.name][t.name][key] for w in self.workloads
                  if t.name in S.get(w.name, {}) and S[w.name][t.name].get(key)]
            if rs:
                geo[t.name] = {"value": math.exp(sum(math.log(r) for r in rs) / len(rs)), "n": len(rs)}
        return geo

    def issue5(self, S, geo, tname):
        rows = []

        def match(pat):
            return [w.name for w in self.workloads
                    if w.name == pat or (pat.endswith("*") and w.name.startswith(pat[:-1]))]
        g = geo.get(tname, {}).get("value")
        rows.append({"target": "geometric mean", "limit": 1.5, "ratio": g,
                     "met": g is not None and g <= 1.5})
        for label, pats, lim in ISSUE5_TARGETS:
            for p in pats:
                for w in match(p):
                    r = S.get(w, {}).get(tname, {}).get("ratio")
                    rows.append({"target": "%s (%s)" % (label, w), "limit": lim, "ratio": r,
                                 "met": r is not None and r <= lim})
        # no workload slower than the best FUSE peer
        slower = []
        for w in self.workloads:
            me = S.get(w.name, {}).get(tname, {}).get("median")
            peers = [(S[w.name][p]["median"], p) for p in FUSE_PEERS
                     if p in S.get(w.name, {}) and S[w.name][p].get("median") is not None]
            if me is None or not peers:
                continue
            best, bp = min(peers)
            if me > best * 1.005:
                slower.append({"workload": w.name, "median": me, "best_peer": bp,
                               "best_peer_median": best, "factor": me / best})
        return rows, slower

    def report(self):
        S, geo = self.summarize()
        tnames = [t.name for t in self.targets]
        meta = {
            "mode": self.mode, "rounds": self.rounds, "started": self.started,
            "duration_s": round(self.duration, 1), "params": self.P,
            "fixture": self.fx.info, "machine": self.machine(),
            "baseline": BASELINE,
            "targets": {},
            "loadavg_1min_at_steps": {
                "median": round(statistics.median(self.loads), 2) if self.loads else None,
                "max": round(max(self.loads), 2) if self.loads else None},
            "loadavg_start": [round(x, 2) for x in self.load_start],
            "trials_started_on_busy_cpu": [self.busy_trials, self.busy_checks],
            "waited_for_idle_s": round(self.waited, 1),
            "loadavg_end": [round(x, 2) for x in self.load_end],
        }
        for t in self.targets:
            meta["targets"][t.name] = {"version": t.version(), "valid": t.name not in self.invalid,
                                       "invalid_reason": self.invalid.get(t.name),
                                       "whiteout_format": t.fmt}
        for n, why in self.unavailable.items():
            meta["targets"][n] = {"available": False, "reason": why}
        lookup = {}
        for t in tnames:
            a = S.get("lookup_127", {}).get(t, {}).get("median")
            b = S.get("lookup_2", {}).get(t, {}).get("median")
            if a and b:
                lookup[t] = a / b
        rss = {}
        for t in tnames:
            peaks = [(S[w][t]["daemon_peak_rss_kib"], w) for w in S
                     if t in S[w] and S[w][t].get("daemon_peak_rss_kib")]
            if peaks:
                pk, pw = max(peaks)
                rss[t] = {"peak_vmhwm_kib": pk, "workload": pw,
                          "per_workload_kib": {w: S[w][t]["daemon_peak_rss_kib"] for w in S
                                               if t in S[w] and S[w][t].get("daemon_peak_rss_kib")}}
                lw = S.get("lstat_warm", {}).get(t, {})
                if lw.get("daemon_peak_rss_kib") and lw.get("daemon_rss_after_mount_kib"):
                    rss[t]["bytes_per_path_after_lstat_walk"] = round(
                        (lw["daemon_peak_rss_kib"] - lw["daemon_rss_after_mount_kib"]) * 1024
                        / self.fx.info["union_paths"], 1)
        i5 = {}
        for t in ("aufs-fuse", "aufs-fuse-notify", "aufs-fuse-none", "aufs-fuse-volatile"):
            if t in tnames and t not in self.invalid:
                rows, slower = self.issue5(S, geo, t)
                i5[t] = {"targets": rows, "slower_than_best_fuse_peer": slower}
        J = {"meta": meta,
             "workloads": {w.name: {"description": w.desc, "cold": w.cold, "warm": w.warm,
                                    "writes": w.writes, "unit": "seconds",
                                    "results": S.get(w.name, {})} for w in self.workloads},
             "geomean_ratio": geo, "geomean_ratio_floor": self.geomean(S, "ratio_floor"),
             "floor": FLOOR, "lookup_127_over_2": lookup, "daemon_rss": rss,
             "issue5": i5}
        md = self.markdown(J, tnames)
        os.makedirs(self.out, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        for name in ("latest", "%s-%s" % (stamp, self.mode)):
            with open(os.path.join(self.out, name + ".json"), "w") as f:
                json.dump(J, f, indent=1, sort_keys=False)
                f.write("\n")
            with open(os.path.join(self.out, name + ".md"), "w") as f:
                f.write(md)
        log("results: %s/latest.md and latest.json (also %s-%s.*)" % (self.out, stamp, self.mode))
        sys.stdout.write(md)

    def markdown(self, J, tnames):
        meta = J["meta"]
        out = []
        A = out.append
        A("# aufs-fuse benchmark (%s run, %d rounds)\n" % (meta["mode"], meta["rounds"]))
        la = meta["loadavg_1min_at_steps"]
        bt, bc = meta["trials_started_on_busy_cpu"]
        if bc and bt > 0.1 * bc:
            A("**Warning: other processes kept the CPUs busy (≥ 35 %%) before %d of %d trials "
              "(median 1-minute load %.1f at step starts, max %.1f). Times and ratios are "
              "distorted.**\n" % (bt, bc, la["median"], la["max"]))
        A("Started %s, took %.0f s. Each cell: median seconds [min–max] and, in bold, the ratio "
          "to kernel overlayfs (median / overlayfs median; < 1 is faster). `n/a`: workload not "
          "run on that target; `ERR`: every trial failed.\n" % (meta["started"], meta["duration_s"]))
        hdr = [t for t in tnames if t not in self.invalid]
        A("| workload | " + " | ".join(hdr) + " |")
        A("|---|" + "---|" * len(hdr))
        for w in self.workloads:
            cells = []
            for t in hdr:
                e = J["workloads"][w.name]["results"].get(t)
                if not e:
                    cells.append("n/a")
                elif "median" not in e:
                    cells.append("ERR")
                else:
                    c = "%s [%s–%s]" % (fmt_s(e["median"]), fmt_s(e["min"]), fmt_s(e["max"]))
                    if "ratio" in e:
                        c += " **%.2f×**" % e["ratio"]
                    if e["errors"]:
                        c += " (%d err)" % len(e["errors"])
                    cells.append(c)
            A("| %s | %s |" % (w.name, " | ".join(cells)))
        A("| **geometric mean of ratios** | " + " | ".join(
            "**%.2f×** (%d)" % (J["geomean_ratio"][t]["value"], J["geomean_ratio"][t]["n"])
            if t in J["geomean_ratio"] else "n/a" for t in hdr) + " |")
        A("")
        A("The geometric mean runs over the workloads the target ran (count in brackets); "
          "mergerfs runs read workloads only, plain and passthrough_hp have no mount or lookup "
          "rows.\n")
        self.md_floor(J, hdr, A)
        self.md_requests(J, hdr, A)
        if self.invalid:
            A("**Invalid targets (not timed):**\n")
            for t, why in self.invalid.items():
                A("- %s: %s" % (t, why))
            A("")
        if J["lookup_127_over_2"]:
            A("## Lookup scaling (lookup_127 / lookup_2)\n")
            A("| target | ratio |")
            A("|---|---|")
            for t, v in J["lookup_127_over_2"].items():
                A("| %s | %.2f× |" % (t, v))
            A("")
        if J["daemon_rss"]:
            A("## FUSE daemon memory (VmHWM read from /proc/PID/status before unmount)\n")
            A("| daemon | peak VmHWM | in workload | lstat_warm walk: bytes per path |")
            A("|---|---|---|---|")
            for t, v in J["daemon_rss"].items():
                A("| %s | %.1f MiB | %s | %s |" % (
                    t, v["peak_vmhwm_kib"] / 1024, v["workload"],
                    v.get("bytes_per_path_after_lstat_walk", "n/a")))
            A("")
        for t, v in J["issue5"].items():
            A("## Issue 5 targets for %s\n" % t)
            A("| target | limit | ratio | met |")
            A("|---|---|---|---|")
            for r in v["targets"]:
                A("| %s | ≤ %.2g | %s | %s |" % (r["target"], r["limit"],
                                                  "%.2f" % r["ratio"] if r["ratio"] is not None else "n/a",
                                                  "yes" if r["met"] else "**no**"))
            A("")
            if v["slower_than_best_fuse_peer"]:
                A("Slower than the best FUSE peer:\n")
                for s in v["slower_than_best_fuse_peer"]:
                    A("- %s: %s vs %s %s (%.2f×)" % (s["workload"], fmt_s(s["median"]),
                                                     s["best_peer"], fmt_s(s["best_peer_median"]),
                                                     s["factor"]))
                A("")
            else:
                A("Not slower than the best FUSE peer on any workload.\n")
        errs = [(w, t, e) for w, d in J["workloads"].items() for t, r in d["results"].items()
                for e in r["errors"]]
        if errs:
            A("## Errors\n")
            for w, t, e in errs[:40]:
                A("- %s / %s: %s" % (w, t, e.replace("\n", " ")[:300]))
            A("")
        A("## Workloads\n")
        for w in self.workloads:
            A("- **%s**: %s" % (w.name, w.desc))
        A("")
        A("## Machine and versions\n")
        for k, v in meta["machine"].items():
            A("- %s: %s" % (k, v))
        A("- load average (1 min) at the start of each step: median %s, max %s; at start %s, "
          "at end %s" % (meta["loadavg_1min_at_steps"]["median"], meta["loadavg_1min_at_steps"]["max"],
                         meta["loadavg_start"], meta["loadavg_end"]))
        A("- trials that found the CPUs busy with other work (≥ 35 %% over 50 ms) just before "
          "starting: %d of %d; time spent waiting for idle (--wait-idle): %.0f s" % (
              bt, bc, meta["waited_for_idle_s"]))
        A("")
        A("| target | version / options | whiteout format |")
        A("|---|---|---|")
        for t, v in meta["targets"].items():
            A("| %s | %s | %s |" % (t, v.get("version", v.get("reason", "")),
                                    v.get("whiteout_format", "")))
        A("")
        fi = meta["fixture"]
        A("Fixture: %d union paths (%d files), %d small files under tree/ in 4 lower layers, "
          "%d-entry merged directory, %d MiB bottom-layer file, %d source files, whiteouts per "
          "layer %s, opaque dirs %s." % (
              fi["union_paths"], fi["union_files"], fi["small_files_tree"], fi["many_entries"],
              fi["big_file_mib"], fi["src_files"],
              ", ".join("%s=%d" % kv for kv in fi["whiteouts"].items()),
              ", ".join("%s:%s" % (k, ",".join(v)) for k, v in fi["opaque_dirs"].items() if v)))
        A("")
        return "\n".join(out) + "\n"

    def md_floor(self, J, hdr, A):
        """the ratios to the FUSE floor (passthrough_hp), if it ran"""
        if not J["geomean_ratio_floor"]:
            return
        A("## Ratio to the FUSE floor (%s)\n" % FLOOR)
        A("median / %s median for the same workload: what a target costs over a plain FUSE "
          "passthrough of the merged tree (< 1 is faster than the floor).\n" % FLOOR)
        A("| workload | " + " | ".join(hdr) + " |")
        A("|---|" + "---|" * len(hdr))
        for w in self.workloads:
            res = J["workloads"][w.name]["results"]
            if FLOOR not in res or "median" not in res[FLOOR]:
                continue
            A("| %s | %s |" % (w.name, " | ".join(
                "%.2f×" % res[t]["ratio_floor"] if t in res and "ratio_floor" in res[t] else "n/a"
                for t in hdr)))
        A("| **geometric mean** | " + " | ".join(
            "**%.2f×** (%d)" % (J["geomean_ratio_floor"][t]["value"], J["geomean_ratio_floor"][t]["n"])
            if t in J["geomean_ratio_floor"] else "n/a" for t in hdr) + " |")
        A("")

    def md_requests(self, J, hdr, A):
        """aufs-fuse's FUSE requests per workload, by opcode"""
        rows = []
        for w in self.workloads:
            res = J["workloads"][w.name]["results"]
            for t in hdr:
                e = res.get(t, {})
                if "requests" in e:
                    ops = sorted(e["requests"].items(), key=lambda kv: (-kv[1], kv[0]))
                    rows.append("| %s | %s | %d | %s |" % (
                        w.name, t, e["requests_total"],
                        ", ".join("%s %g" % kv for kv in ops if kv[1])))
        if not rows:
            return
        A("## FUSE requests per workload\n")
        A("Counted by the daemon (`aufsctl stats`) before and after each timed run; the median over "
          "the rounds, per opcode. A cold run includes the lookups the dropped caches cost.\n")
        A("| workload | target | requests | by opcode |")
        A("|---|---|---|---|")
        for r in rows:
            A(r)
        A("")


def fmt_s(x):
    if x is None:
        return "?"
    if x >= 10:
        return "%.1f" % x
    if x >= 1:
        return "%.2f" % x
    if x >= 0.01:
        return "%.3f" % x
    return "%.4f" % x


def main():
    ap = argparse.ArgumentParser(description="aufs-fuse benchmark against kernel overlayfs and "
                                 "the FUSE union file systems")
    ap.add_argument("--quick", action="store_true", help="small fixture, 2 rounds (~2 minutes)")
    ap.add_argument("--rounds", type=int, help="rounds (default: 3 full, 2 quick)")
    ap.add_argument("--targets", help="comma list from: " + ",".join(ALL_TARGETS))
    ap.add_argument("--workloads", help="comma list of workload names (prefix* allowed); default all")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="results directory")
    ap.add_argument("--workdir", default="/var/tmp/aufs-bench", help="fixture and mount directory")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="SEC",
                    help="before each trial, wait while other processes keep the CPUs busy, "
                    "up to SEC seconds in total (default 0: only record it)")
    ap.add_argument("--aufs-bin", help="aufs-fuse binary (default: newest build*/src/aufs-fuse)")
    ap.add_argument("--aufs-bin-318", help="aufs-fuse linked with libfuse 3.18 (targets aufs-fuse-318, "
                    "aufs-fuse-318-nopt, aufs-fuse-318-ptall, aufs-fuse-318-uring)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench.py must run as root (mounts, drop_caches)")
    for tool in ("gcc", "fio", "tar", "find", "ls", "grep", "git", "make", "findmnt"):
        if not shutil.which(tool):
            raise SystemExit("missing tool: %s (apt-get install fio build-essential git)" % tool)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(cleanup_all)
    b = Bench(args)
    try:
        b.setup()
        b.run()
        b.report()
    except KeyboardInterrupt:
        log("interrupted, cleaning up")
        cleanup_all()
        sys.exit(130)
    finally:
        cleanup_all()


if __name__ == "__main__":
    main()
