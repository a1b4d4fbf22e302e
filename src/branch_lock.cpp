// SPDX-License-Identifier: GPL-2.0-or-later
// Branch locks (see branch_lock.hpp).
#include "aufs_fuse/branch_lock.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "aufs_fuse/options.hpp"

namespace aufs {
namespace {

// Does a /proc/locks-style line hold a flock on inode (dev, ino)?
// "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters have "->".
bool flock_on(const std::string& line, dev_t dev, ino_t ino, pid_t* pid) {
  std::istringstream ls(line);
  std::string id, kind, adv, rw, p, where;
  ls >> id >> kind;
  if (kind != "FLOCK") return false;
  ls >> adv >> rw >> p >> where;
  unsigned maj = 0, min = 0;
  unsigned long long i = 0;
  if (std::sscanf(where.c_str(), "%x:%x:%llu", &maj, &min, &i) != 3) return false;
  if (pid) *pid = std::atoi(p.c_str());
  return maj == major(dev) && min == minor(dev) && i == ino;
}

// The aufs-fuse process holding a flock on inode (dev, ino); 0 if none.
// /proc/locks names the process that took the lock, which is gone when the
// daemon went to the background since: the fds' own lock lines say who has
// it now.
pid_t flock_owner(dev_t dev, ino_t ino) {
  DIR* d = ::opendir("/proc");
  if (!d) return 0;
  pid_t found = 0;
  while (dirent* e = ::readdir(d)) {
    if (found || !std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
    std::string dir = std::string("/proc/") + e->d_name;
    std::ifstream comm(dir + "/comm");
    std::string name;
    if (!std::getline(comm, name) || name != "aufs-fuse") continue;
    DIR* fds = ::opendir((dir + "/fdinfo").c_str());
    if (!fds) continue;
    while (dirent* f = ::readdir(fds)) {
      std::ifstream info(dir + "/fdinfo/" + f->d_name);
      std::string line;
      while (!found && std::getline(info, line))
        if (line.starts_with("lock:") && flock_on(line.substr(5), dev, ino, nullptr))
          found = std::atoi(e->d_name);
    }
    ::closedir(fds);
  }
  ::closedir(d);
  if (found) return found;
  std::ifstream in("/proc/locks");
  std::string line;
  pid_t pid = 0;
  while (std::getline(in, line))
    if (flock_on(line, dev, ino, &pid)) return pid;
  return 0;
}

std::string read_proc(pid_t pid, const char* what) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + what);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The mount point on an aufs-fuse daemon's command line ("" if none).
std::string daemon_mountpoint(pid_t pid) {
  std::string raw = read_proc(pid, "cmdline");
  std::vector<std::string> args;
  for (size_t pos = 0; pos < raw.size();) {
    size_t end = raw.find('\0', pos);
    if (end == std::string::npos) end = raw.size();
    args.push_back(raw.substr(pos, end - pos));
    pos = end + 1;
  }
  if (args.empty()) return {};
  args.erase(args.begin());
  auto pr = parse_command_line(args);
  return pr.ok() ? pr.opts.mountpoint : "";
}

// The clean-release mark on a branch root: private to aufs-fuse (never
// listed through the union, like its other keys).
const char* clean_key() {
  return ::geteuid() == 0 ? "trusted.aufs-fuse.clean" : "user.aufs-fuse.clean";
}

bool has_clean_mark(int root) {
  char v[8];
  return ::fgetxattr(root, clean_key(), v, sizeof v) >= 0;
}

}  // namespace

bool BranchLock::begin_writing() {
  if (!fd.valid() || !has_clean_mark(fd.get())) return true;
  return ::fremovexattr(fd.get(), clean_key()) == 0 && ::fsync(fd.get()) == 0;
}

bool BranchLock::mark_clean(bool sync) {
  if (!checked || (shared && !alone) || !fd.valid()) return false;
  if (::fsetxattr(fd.get(), clean_key(), "1", 1, 0) != 0) return false;
  // A journalling file system commits the mark after every earlier change
  // (the renames that took the last temporaries away): never before them.
  return !sync || ::fsync(fd.get()) == 0;
}

std::string branch_lock_holder(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return "another process";
  pid_t pid = flock_owner(st.st_dev, st.st_ino);
  if (pid <= 0) return "another process";
  std::string comm = read_proc(pid, "comm");
  while (!comm.empty() && comm.back() == '\n') comm.pop_back();
  std::string mnt = comm == "aufs-fuse" ? daemon_mountpoint(pid) : "";
  if (!mnt.empty()) return "the aufs-fuse mount on " + mnt + " (pid " + std::to_string(pid) + ")";
  return "pid " + std::to_string(pid) + (comm.empty() ? "" : " (" + comm + ")");
}

void BranchLock::share() {
  if (!alone) return;
  alone = false;
  // Not atomic (flock(2)): a plain rw mount may take the branch meanwhile,
  // then the new mount keeps its exclusive lock and this one writes
  // unlocked; both were asked for by the user.
  while (::flock(fd.get(), LOCK_SH) != 0 && errno == EINTR) {
  }
}

BranchLockPtr lock_branch(const std::string& path, std::string& why, int root_fd, bool shared) {
  auto l = std::make_shared<BranchLock>();
  l->shared = shared;
  l->fd.reset(root_fd >= 0 ? ::openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                           : ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!l->fd.valid()) {
    why = "branch '" + path + "': " + std::strerror(errno);
    return nullptr;
  }
  if (shared && ::flock(l->fd.get(), LOCK_EX | LOCK_NB) == 0) {
    l->alone = true;
    l->was_clean = has_clean_mark(l->fd.get());
    return l;
  }
  while (::flock(l->fd.get(), (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK)
      why = "branch '" + path + "' is written by " + branch_lock_holder(path) +
            "; a branch can be writable in one mount only, unless each of them gives it as "
            "rw+shared";
    else
      why = "branch '" + path + "': cannot lock: " + std::strerror(errno);
    return nullptr;
  }
  // A shared lock among others: their run may be mid-operation, so the
  // mark means nothing to this one.
  l->was_clean = !shared && has_clean_mark(l->fd.get());
  return l;
}

}  // namespace aufs
