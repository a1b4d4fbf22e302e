#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Crash images (issue 18): what a power cut leaves of the rw branch.

The rw branch lives on a small ext4 or xfs filesystem in a loop device. While
aufs-fuse runs a copy-up heavy workload on it (appends to and chmods of lower
files, unlinks, renames, rmdir and mkdir over a whiteout), the backing image
is copied at random moments: a copy holds exactly the blocks the filesystem
had sent to its "disk" by then. The copy must be one point in time: the
image file lives on an xfs with reflink, and a reflink copy (FICLONE) takes
the file's I/O lock, so it falls between two of the loop device's writes (a
plain read of the file while it is written mixes blocks of different
moments, and showed fsynced data "lost" behind a later journal commit). Each copy is then recovered as after a power
cut (journal replay by mounting, then fsck) and checked:

  * every name the union shows is the old lower content or the complete new
    content: a copied-up file starts with the whole lower file (appended
    bytes written later may be lost, as on any filesystem), and a
    chmod-only copy equals it; never a truncated or zero-filled copy;
  * every whiteout on the rw branch hides something of the lower branch;
  * aufs-fuse-check finds nothing but temporaries (and repairs only those);
  * the lower branch is unchanged.

Durable mounts (the default) must pass every check; with -o volatile the
copies are not synced, and the script reports how many images showed a short
copy instead of failing. Needs root, losetup, mkfs.ext4 and mkfs.xfs (skips
what is missing). AUFS_LONG=1 takes many more images.

Usage: crash_images.py AUFS_FUSE_BIN AUFS_FUSE_CHECK_BIN
Prints 'N passed, M failed' (one per image checked) and exits non-zero on a
failure of a durable mount.
"""
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

LONG = os.environ.get("AUFS_LONG") == "1"
SEED = int(os.environ.get("AUFS_FUSE_SEED", str(int(time.time()))))
IMAGES = 60 if LONG else 8        # per (filesystem, mode)
NFILES = 600 if LONG else 240


def run(*args, check=True, **kw):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def have(cmd):
    return shutil.which(cmd) is not None


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tree_digest(root):
    """(relative path, type, mode, content hash) of everything under root."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.lstat(p)
            h = sha(p) if os.path.isfile(p) and not os.path.islink(p) else ""
            out.append((os.path.relpath(p, root), st.st_mode, h))
    return out


class Mounted:
    """A mount that is always undone (by unmounting, then killing the daemon)."""

    def __init__(self, mnt, proc=None):
        self.mnt, self.proc = mnt, proc

    def close(self):
        for cmd in (["umount", self.mnt], ["umount", "-l", self.mnt]):
            if subprocess.run(cmd, stderr=subprocess.DEVNULL).returncode == 0:
                break
        if self.proc:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def mount_union(aufs, rw, lower, mnt, extra):
    opts = f"br={rw}=rw:{lower}=ro,udba=reval" + ("," + extra if extra else "")
    proc = subprocess.Popen([aufs, "-f", "-o", opts, mnt], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(200):
        if os.path.ismount(mnt):
            return Mounted(mnt, proc)
        if proc.poll() is not None:
            raise RuntimeError(f"aufs-fuse exited {proc.returncode} ({opts})")
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("aufs-fuse did not mount")


def make_lower(lower, rnd):
    """Lower files f<i> in a few directories; returns {rel: content}."""
    files = {}
    for i in range(NFILES):
        d = f"d{i % 6}"
        os.makedirs(os.path.join(lower, d), exist_ok=True)
        data = rnd.randbytes(rnd.choice([1, 4096, 65536, 300_000, 1_000_000]))
        rel = f"{d}/f{i}"
        with open(os.path.join(lower, rel), "wb") as f:
            f.write(data)
        files[rel] = data
    os.makedirs(os.path.join(lower, "gone/sub"), exist_ok=True)
    with open(os.path.join(lower, "gone/sub/x"), "wb") as f:
        f.write(b"lower x")
    return files


def workload(mnt, files, rnd, stop, log):
    """Copy-up heavy changes through the union, until stop is set."""
    names = sorted(files)
    rnd.shuffle(names)
    for step, rel in enumerate(names):
        if stop.is_set():
            return
        time.sleep(0.01)  # spread over several journal commits
        p = os.path.join(mnt, rel)
        kind = step % 5
        try:
            if kind in (0, 1):
                with open(p, "ab") as f:  # copy-up with data, then an append
                    f.write(b"appended")
                log[rel] = "append"
            elif kind == 2:
                os.chmod(p, 0o600)  # copy-up for metadata only
                log[rel] = "chmod"
            elif kind == 3:
                os.unlink(p)  # a whiteout
                log[rel] = "unlink"
            else:
                os.rename(p, p + ".moved")  # copy-up, then a whiteout
                log[rel] = "rename"
            if step == len(names) // 2:
                shutil.rmtree(os.path.join(mnt, "gone"))
                os.mkdir(os.path.join(mnt, "gone"))  # opaque over a whiteout
        except OSError as e:
            log[rel] = f"error {e.errno}"


def check_image(img, fstype, work, lower, files, aufs, checker):
    """Recovers a copy of the image and checks it; returns a list of problems."""
    problems = []
    disk = os.path.join(work, "recovered")
    os.makedirs(disk, exist_ok=True)
    if fstype == "ext4":
        run("e2fsck", "-fy", img, check=False)  # replays the journal, repairs
    # (xfs replays its log when mounted.)
    loop = Mounted(disk)
    run("mount", "-o", "loop", img, disk)
    try:
        rw = os.path.join(disk, "rw")
        # A power cut may leave what a daemon crash leaves: temporaries, and
        # a name beside its whiteout (an unlink or create cut in the middle,
        # where the entry wins). Anything else is damage.
        rep = json.loads(run(checker, "--json", rw, check=False).stdout)
        for br in rep:
            for issue in br.get("issues", []):
                if issue["kind"] not in ("temporary-leftover", "name-and-whiteout"):
                    problems.append(f"checker: {issue['kind']} {issue['path']}")
            if "error" in br:
                problems.append(f"checker: {br['error']}")
        run(checker, "--fix", rw, check=False)
        mnt = os.path.join(work, "check-mnt")
        os.makedirs(mnt, exist_ok=True)
        union = mount_union(aufs, rw, lower, mnt, "nochk")
        try:
            for rel, data in files.items():
                for name in (rel, rel + ".moved"):
                    p = os.path.join(mnt, name)
                    if not os.path.exists(p):
                        continue
                    with open(p, "rb") as f:
                        got = f.read()
                    if got == data:
                        continue
                    if len(got) < len(data) or got[:len(data)] != data:
                        problems.append(f"{name}: {len(got)} bytes that do not start with the "
                                        f"lower {len(data)} (a short or zero-filled copy)")
            for d, _, names in os.walk(rw):
                for n in names:
                    if not n.startswith(".wh.") or n.startswith(".wh..wh."):
                        continue
                    rel = os.path.relpath(os.path.join(d, n[4:]), rw)
                    if not os.path.lexists(os.path.join(lower, rel)):
                        problems.append(f"whiteout {rel} hides nothing")
        finally:
            union.close()
    finally:
        loop.close()
    return problems


def one_config(fstype, mode, aufs, checker, rnd, root):
    work = tempfile.mkdtemp(prefix=f"crash-{fstype}-{mode}-", dir=root)
    img = os.path.join(work, "disk.img")
    size = 320 << 20  # xfs wants 300 MiB at least
    with open(img, "wb") as f:
        f.truncate(size)
    run(f"mkfs.{fstype}", *(["-q", "-F"] if fstype == "ext4" else ["-q", "-f"]), img)
    disk, lower, mnt = (os.path.join(work, n) for n in ("disk", "lower", "mnt"))
    for d in (disk, lower, mnt):
        os.makedirs(d)
    files = make_lower(lower, rnd)
    before = tree_digest(lower)
    loop = Mounted(disk)
    # ext4 commits its journal every second (not 5): metadata such as a
    # publishing rename reaches the disk well before delayed data would.
    run("mount", "-o", "loop" + (",commit=1" if fstype == "ext4" else ""), img, disk)
    union = None
    copies = []
    try:
        os.makedirs(os.path.join(disk, "rw"))
        run("sync", "-f", disk)  # the branch itself exists on every image
        union = mount_union(aufs, os.path.join(disk, "rw"), lower, mnt,
                            "volatile" if mode == "volatile" else "")
        stop, log = threading.Event(), {}
        t = threading.Thread(target=workload, args=(mnt, files, rnd, stop, log))
        t.start()
        for i in range(IMAGES):
            time.sleep(rnd.uniform(0.1, 0.6))
            c = os.path.join(work, f"image{i}.img")
            run("cp", "--reflink=always", img, c)  # what reached the "disk", atomically
            copies.append(c)
            if not t.is_alive():
                break
        stop.set()
        t.join()
    finally:
        if union:
            union.close()
        loop.close()
    passed = failed = 0
    for c in copies:
        problems = check_image(c, fstype, work, lower, files, aufs, checker)
        os.unlink(c)
        if problems:
            failed += 1
            print(f"  {fstype}/{mode} {os.path.basename(c)}: " + "; ".join(problems[:3]))
        else:
            passed += 1
    if tree_digest(lower) != before:
        print(f"  {fstype}/{mode}: the lower branch changed")
        failed += 1
    shutil.rmtree(work, ignore_errors=True)  # nothing is mounted under it now
    return passed, failed


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    aufs, checker = sys.argv[1:]
    if os.geteuid() != 0:
        print("SKIP: needs root (loop devices)")
        return 0
    if not have("mkfs.xfs"):
        print("SKIP: mkfs.xfs not installed (the images live on an xfs with reflink)")
        return 0
    top = tempfile.mkdtemp(prefix="aufs-crash-")
    host_img = os.path.join(top, "host.img")
    with open(host_img, "wb") as f:
        f.truncate(3 << 30)
    run("mkfs.xfs", "-q", "-f", "-m", "reflink=1", host_img)
    root = os.path.join(top, "host")
    os.makedirs(root)
    host = Mounted(root)
    run("mount", "-o", "loop", host_img, root)
    rnd = random.Random(SEED)
    print(f"crash images: seed {SEED} (AUFS_FUSE_SEED={SEED} replays)")
    totals = {"durable": [0, 0], "volatile": [0, 0]}
    try:
        for fstype in ("ext4", "xfs"):
            if not have(f"mkfs.{fstype}"):
                print(f"SKIP {fstype}: mkfs.{fstype} not installed")
                continue
            for mode in ("durable", "volatile"):
                p, f = one_config(fstype, mode, aufs, checker, rnd, root)
                totals[mode][0] += p
                totals[mode][1] += f
                print(f"{fstype}/{mode}: {p} images clean, {f} with problems")
    finally:
        host.close()
        if not os.path.ismount(root):
            shutil.rmtree(top, ignore_errors=True)
    dp, df = totals["durable"]
    vp, vf = totals["volatile"]
    print(f"volatile (informational): {vp} clean, {vf} with problems")
    print(f"{dp} passed, {df} failed")
    return 1 if df else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
