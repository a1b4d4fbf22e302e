// SPDX-License-Identifier: GPL-2.0-or-later
// mount.aufs: the mount(8) helper. `mount -t aufs -o br=... none MNT`, fstab
// lines of type aufs (or fuse.aufs) and `mount -o remount,append:... MNT`
// end up here. Mounting runs the aufs-fuse daemon; remounting sends branch
// changes to the running daemon through its control file.
#include <errno.h>
#include <limits.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "aufs_fuse/control.hpp"
#include "aufs_fuse/options.hpp"
#include "aufs_fuse/version.hpp"
#include "control_client.hpp"

#ifndef AUFS_FUSE_DAEMON
#define AUFS_FUSE_DAEMON "/usr/local/sbin/aufs-fuse"
#endif

namespace {

int fail(const std::string& m) {
  std::fprintf(stderr, "mount.aufs: %s\n", m.c_str());
  return 32;  // mount(8): mount failure
}

std::string daemon_path() {
  if (const char* e = std::getenv("AUFS_FUSE_BIN"); e && *e) return e;
  // Next to this helper first (build trees, relocated installs).
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = 0;
    std::string dir(self);
    dir.resize(dir.rfind('/'));
    for (const char* rel : {"/aufs-fuse", "/../src/aufs-fuse"}) {
      std::string p = dir + rel;
      if (::access(p.c_str(), X_OK) == 0) return p;
    }
  }
  return AUFS_FUSE_DAEMON;
}

unsigned long current_flags(const std::string& mnt) {
  struct statvfs sv;
  unsigned long f = 0;
  if (::statvfs(mnt.c_str(), &sv) != 0) return 0;
  if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  if (sv.f_flag & ST_RDONLY) f |= MS_RDONLY;
  return f;
}

// What mount(8) repeats on a remount from the mount's current state: the
// kernel's flags and FUSE's own options. Not requests for the daemon.
bool repeated_by_mount(const std::string& o) {
  static const char* const kFlags[] = {
      "nosuid", "suid", "nodev", "dev", "noexec", "exec", "relatime", "norelatime",
      "noatime", "atime", "strictatime", "nostrictatime", "nodiratime", "diratime",
      "lazytime", "nolazytime", "sync", "async", "dirsync", "silent", "loud", "mand",
      "nomand", "iversion", "noiversion", "default_permissions", "allow_other"};
  for (const char* f : kFlags)
    if (o == f) return true;
  std::string key = o.substr(0, o.find('='));
  return key == "user_id" || key == "group_id" || key == "rootmode" || key == "blksize" ||
         key == "fd" || key == "max_read" || aufs::is_mount_helper_option(o);
}

int remount(const std::string& mnt, const std::vector<std::string>& opts, bool verbose) {
  std::string ops;
  int ro = -1;
  for (auto& o : opts) {
    if (o == "ro" || o == "rw") {
      ro = o == "ro";
      continue;
    }
    if (o.empty() || repeated_by_mount(o)) continue;
    if (!ops.empty()) ops += ',';
    ops += o.find(',') == std::string::npos ? o : "\"" + o + "\"";
  }
  auto kernel_remount = [&](bool to_ro) -> int {
    unsigned long f = current_flags(mnt);
    f = to_ro ? (f | MS_RDONLY) : (f & ~MS_RDONLY);
    if (::mount(nullptr, mnt.c_str(), nullptr, MS_REMOUNT | f, nullptr) != 0)
      return errno;
    return 0;
  };
  struct stat cst;
  if (::lstat(aufs::ctl::control_path(mnt).c_str(), &cst) != 0)
    return fail(aufs::ctl::not_a_mount(mnt, errno));
  // A read-only kernel mount refuses writes to the control file, so "rw"
  // is applied to the kernel first; "ro" is applied to the daemon first and
  // undone if the kernel refuses (files open for writing: EBUSY).
  if (ro == 0 && (current_flags(mnt) & MS_RDONLY)) {
    if (int e = kernel_remount(false)) return fail(mnt + ": remount rw: " + std::strerror(e));
  }
  if (ro >= 0) ops += std::string(ops.empty() ? "" : ",") + (ro ? "ro" : "rw");
  if (!ops.empty()) {
    std::string e;
    ops = aufs::absolutize_request(ops, e);
    if (!e.empty()) return fail(e);
    if (verbose) std::fprintf(stderr, "mount.aufs: %s: %s\n", mnt.c_str(), ops.c_str());
    auto r = aufs::ctl::request(mnt, aufs::kXattrRemount, ops);
    if (r.err == ENOTSUP || r.err == ENODATA) return fail(mnt + ": not an aufs-fuse mount");
    if (r.err) return fail(mnt + ": " + r.reason);
    if (!r.reason.empty()) std::fprintf(stderr, "mount.aufs: %s: %s\n", mnt.c_str(), r.reason.c_str());
  } else {
    std::fprintf(stderr, "mount.aufs: %s: nothing changed: no options given\n", mnt.c_str());
  }
  if (ro == 1 && !(current_flags(mnt) & MS_RDONLY)) {
    if (int e = kernel_remount(true)) {
      // keep daemon and kernel in agreement
      (void)aufs::ctl::request(mnt, aufs::kXattrRemount, "rw");
      return fail(mnt + ": remount ro: " + std::strerror(e));
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  std::string optstr;
  bool fake = false, verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-o" && i + 1 < argc) {
      if (!optstr.empty()) optstr += ',';
      optstr += argv[++i];
    } else if (a == "-t" && i + 1 < argc) {
      ++i;  // the type is implied
    } else if (a == "-N" && i + 1 < argc) {
      ++i;  // namespaces: mount(8) has already entered it
    } else if (a == "-f") fake = true;
    else if (a == "-v") verbose = true;
    else if (a == "-n" || a == "-s" || a == "-i") {
      // no mtab to write; sloppy and internal-only flags need no action
    } else if (a == "-r") optstr += optstr.empty() ? "ro" : ",ro";
    else if (a == "-w") optstr += optstr.empty() ? "rw" : ",rw";
    else if (a == "-h" || a == "--help") {
      std::puts("usage: mount.aufs SOURCE MOUNTPOINT [-fnrsvw] [-o OPTIONS]\n"
                "Called by mount(8) for type aufs (and fuse.aufs); see mount.aufs(8).");
      return 0;
    } else if (a == "-V" || a == "--version") {
      std::printf("mount.aufs %s\n", AUFS_FUSE_VERSION);
      return 0;
    } else if (a.size() > 1 && a[0] == '-') return fail("unknown option '" + a + "'");
    else pos.push_back(a);
  }
  if (pos.size() != 2) return fail("expected SOURCE and MOUNTPOINT (see mount.aufs(8))");
  std::vector<std::string> opts = aufs::split_options(optstr);
  bool is_remount = false, nofail = false;
  for (auto& o : opts) {
    if (o == "remount") is_remount = true;
    if (o == "nofail") nofail = true;
  }
  if (fake) return 0;
  if (is_remount) return remount(pos[1], opts, verbose);

  // Keep the options the daemon understands; quote values with commas.
  // As root, a union behaves like any local mount: set-id bits and device
  // nodes work unless nosuid/nodev is asked for (as mount.fuse3 does).
  std::string pass = ::getuid() == 0 ? "dev,suid" : "";
  for (auto& o : opts) {
    if (o.empty() || aufs::is_mount_helper_option(o)) continue;
    if (!pass.empty()) pass += ',';
    size_t eq = o.find('=');
    if (o.find(',') != std::string::npos && eq != std::string::npos)
      pass += o.substr(0, eq + 1) + "\"" + o.substr(eq + 1) + "\"";
    else
      pass += o;
  }
  std::string bin = daemon_path();
  std::vector<std::string> args = {bin, pos[0], pos[1]};
  if (!pass.empty()) {
    args.push_back("-o");
    args.push_back(pass);
  }
  if (verbose) {
    std::string line;
    for (auto& a : args) line += a + " ";
    std::fprintf(stderr, "mount.aufs: running %s\n", line.c_str());
  }
  pid_t pid = ::fork();
  if (pid < 0) return fail(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    ::execv(bin.c_str(), cargs.data());
    std::fprintf(stderr, "mount.aufs: cannot run %s: %s\n", bin.c_str(), std::strerror(errno));
    _exit(127);
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
  // nofail is for mount(8) and systemd (a boot does not wait for the
  // mount); like mount.fuse3 the helper still reports the failure, and
  // says so, since nofail suggests otherwise.
  if (nofail)
    std::fprintf(stderr, "mount.aufs: nothing was mounted on %s (nofail does not hide a failed mount)\n",
                 pos[1].c_str());
  return 32;
}
