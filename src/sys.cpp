// SPDX-License-Identifier: GPL-2.0-or-later
#include "aufs_fuse/sys.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <set>
#include <utility>

#include "aufs_fuse/fault.hpp"

#include <spdlog/spdlog.h>
#include <cstring>

namespace aufs::sys {
namespace {

std::atomic<bool> g_no_openat2{false};
std::atomic<bool> g_no_ficlone{false};
std::atomic<bool> g_no_cfr{false};

template <class F>
auto retry_eintr(F f) {
  for (;;) {
    auto r = f();
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    return r;
  }
}

// EINTR means the call failed without effect (POSIX): it is made again.
// Only close(2) must not be retried, and it is never called through here.
template <class F>
auto again(F f) {
  for (;;) {
    auto r = f();
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}
// One branch system call: counted (fault injection builds), retried on EINTR.
#define SYSCALL(name, expr) again([&] { return AUFS_SYSCALL(name, expr); })

// Component walk used when the kernel lacks openat2: every component is
// opened with O_NOFOLLOW, ".." and empty components are refused.
Result<UniqueFd> walk_beneath(int root, const std::string& rel, int flags,
                              mode_t mode) {
  UniqueFd cur(SYSCALL("openat", ::openat(root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC)));
  if (!cur.valid()) return last_errno();
  size_t pos = 0;
  std::string comp;
  while (pos <= rel.size()) {
    size_t slash = rel.find('/', pos);
    if (slash == std::string::npos) slash = rel.size();
    comp = rel.substr(pos, slash - pos);
    pos = slash + 1;
    if (comp.empty() || comp == ".") {
      if (pos > rel.size()) break;
      continue;
    }
    if (comp == "..") return Errno{EXDEV};
    bool last = pos > rel.size();
    int f = last ? (flags | O_NOFOLLOW | O_CLOEXEC)
                 : (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int fd = retry_eintr([&] { return AUFS_SYSCALL("openat", ::openat(cur.get(), comp.c_str(), f, mode)); });
    if (fd < 0) return last_errno();
    cur.reset(fd);
  }
  if (rel.empty() || rel == ".") {
    int fd = SYSCALL("openat", ::openat(root, ".", flags | O_CLOEXEC, mode));
    if (fd < 0) return last_errno();
    return UniqueFd(fd);
  }
  return cur;
}

}  // namespace

namespace {
// Running out of descriptors is worth one warning, not one per request.
void note_fd_exhaustion(int e) {
  static std::atomic<bool> said{false};
  if ((e == EMFILE || e == ENFILE) && !said.exchange(true))
    spdlog::warn("out of file descriptors ({}): requests fail with {} until some are closed",
                 e == EMFILE ? "EMFILE, process limit" : "ENFILE, system limit",
                 e == EMFILE ? "EMFILE" : "ENFILE");
}
}  // namespace

Result<UniqueFd> open_beneath(int root, const std::string& rel, int flags,
                              mode_t mode) {
  auto r = open_beneath_raw(root, rel, flags, mode);
  if (!r.ok()) note_fd_exhaustion(r.err());
  return r;
}

namespace {
// Paths longer than the kernel takes in one call (PATH_MAX) are walked in
// pieces: each piece is resolved beneath the directory the previous one
// reached, so the walk stays beneath the root.
constexpr size_t kPieceMax = 3072;
}  // namespace

Result<UniqueFd> open_beneath_raw(int root, const std::string& rel, int flags,
                                  mode_t mode) {
  if (rel.size() > kPieceMax) {
    size_t cut = rel.rfind('/', kPieceMax);
    if (cut == std::string::npos || cut == 0) return Errno{ENAMETOOLONG};
    auto mid = open_beneath_raw(root, rel.substr(0, cut), O_PATH | O_DIRECTORY);
    if (!mid.ok()) return mid;
    return open_beneath_raw(mid->get(), rel.substr(cut + 1), flags, mode);
  }
  const std::string& p = rel.empty() ? std::string(".") : rel;
  if (!g_no_openat2.load(std::memory_order_relaxed)) {
    struct open_how how {};
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long fd = retry_eintr(
        [&] { return AUFS_SYSCALL("openat2", ::syscall(SYS_openat2, root, p.c_str(), &how, sizeof how)); });
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno != ENOSYS) return last_errno();
    g_no_openat2.store(true);
  }
  return walk_beneath(root, rel, flags, mode);
}

std::pair<std::string, std::string> split_parent(const std::string& rel) {
  auto pos = rel.rfind('/');
  if (pos == std::string::npos) return {"", rel};
  return {rel.substr(0, pos), rel.substr(pos + 1)};
}

std::string join(const std::string& dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string r = dir;
  r += '/';
  r += name;
  return r;
}

Result<struct stat> fstat_fd(int fd) {
  struct stat st;
  if (SYSCALL("fstat", ::fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) < 0)
    return last_errno();
  return st;
}

Result<struct stat> lstat_at(int dirfd, const std::string& name) {
  struct stat st;
  if (SYSCALL("lstat", ::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW)) < 0)
    return last_errno();
  return st;
}

Result<bool> exists_at(int dirfd, const std::string& name) {
  struct stat st;
  if (SYSCALL("lstat", ::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW)) == 0) return true;
  if (errno == ENOENT || errno == ENOTDIR || errno == ENAMETOOLONG) return false;
  return last_errno();
}

Status mkdir_at(int dirfd, const std::string& name, mode_t mode) {
  if (SYSCALL("mkdirat", ::mkdirat(dirfd, name.c_str(), mode)) < 0) return last_errno();
  return {};
}

Status unlink_at(int dirfd, const std::string& name, int flags) {
  if (SYSCALL("unlinkat", ::unlinkat(dirfd, name.c_str(), flags)) < 0) return last_errno();
  return {};
}

Status rename_at(int olddir, const std::string& oldname, int newdir,
                 const std::string& newname, unsigned flags) {
  if (SYSCALL("renameat2", ::renameat2(olddir, oldname.c_str(), newdir, newname.c_str(), flags)) < 0)
    return last_errno();
  return {};
}

Status link_at(int olddir, const std::string& oldname, int newdir,
               const std::string& newname) {
  if (SYSCALL("linkat", ::linkat(olddir, oldname.c_str(), newdir, newname.c_str(), 0)) < 0)
    return last_errno();
  return {};
}

Status symlink_at(const std::string& target, int dirfd, const std::string& name) {
  if (SYSCALL("symlinkat", ::symlinkat(target.c_str(), dirfd, name.c_str())) < 0) return last_errno();
  return {};
}

Status mknod_at(int dirfd, const std::string& name, mode_t mode, dev_t rdev) {
  if (SYSCALL("mknodat", ::mknodat(dirfd, name.c_str(), mode, rdev)) < 0) return last_errno();
  return {};
}

Result<std::string> readlink_at(int dirfd, const std::string& name) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = SYSCALL("readlinkat", ::readlinkat(dirfd, name.c_str(), buf.data(), buf.size()));
    if (n < 0) return last_errno();
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

std::string proc_fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

Result<UniqueFd> open_at(int dirfd, const std::string& name, int flags, mode_t mode) {
  int fd = SYSCALL("openat", ::openat(dirfd, name.c_str(), flags | O_CLOEXEC, mode));
  if (fd < 0) return last_errno();
  return UniqueFd(fd);
}

Status chmod_fd(int fd, mode_t mode) {
  if (SYSCALL("fchmod", ::fchmod(fd, mode)) < 0) return last_errno();
  return {};
}

Status truncate_fd(int fd, off_t size) {
  if (SYSCALL("ftruncate", ::ftruncate(fd, size)) < 0) return last_errno();
  return {};
}

Status sync_fd(int fd, bool datasync) {
  if (SYSCALL("fsync", datasync ? ::fdatasync(fd) : ::fsync(fd)) < 0) return last_errno();
  return {};
}

Status write_all(int fd, std::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = SYSCALL("write", ::write(fd, data.data() + done, data.size() - done));
    if (n < 0) return last_errno();
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<std::string> read_all(int fd, size_t max) {
  std::string text;
  char buf[4096];
  while (text.size() <= max) {
    ssize_t k = SYSCALL("read", ::read(fd, buf, sizeof buf));
    if (k < 0) return last_errno();
    if (k == 0) break;
    text.append(buf, static_cast<size_t>(k));
  }
  return text;
}

Result<struct statvfs> statvfs_fd(int fd) {
  struct statvfs v;
  if (SYSCALL("fstatvfs", ::fstatvfs(fd, &v)) < 0) return last_errno();
  return v;
}

Result<long> fs_type_fd(int fd) {
  struct statfs s;
  if (SYSCALL("fstatfs", ::fstatfs(fd, &s)) < 0) return last_errno();
  return static_cast<long>(s.f_type);
}

Status fchownat_nofollow(int dirfd, const std::string& name, uid_t uid, gid_t gid) {
  int r = SYSCALL("fchownat", name.empty() ? ::fchownat(dirfd, "", uid, gid, AT_EMPTY_PATH)
                                           : ::fchownat(dirfd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW));
  if (r < 0) return last_errno();
  return {};
}

Status utimens_at(int dirfd, const std::string& name, const struct timespec ts[2]) {
  std::string p = name.empty() ? proc_fd_path(dirfd) : name;
  int r = SYSCALL("utimensat", name.empty() ? ::utimensat(AT_FDCWD, p.c_str(), ts, 0)
                                            : ::utimensat(dirfd, p.c_str(), ts, AT_SYMLINK_NOFOLLOW));
  if (r < 0) return last_errno();
  return {};
}

Status chmod_path_fd(int opath_fd, mode_t mode) {
  if (SYSCALL("fchmodat", ::fchmodat(AT_FDCWD, proc_fd_path(opath_fd).c_str(), mode, 0)) < 0)
    return last_errno();
  return {};
}

Status chmod_at(int dirfd, const std::string& name, mode_t mode) {
  if (name.empty()) return chmod_path_fd(dirfd, mode);
  if (SYSCALL("fchmodat", ::fchmodat(dirfd, name.c_str(), mode, 0)) < 0) return last_errno();
  return {};
}

Result<UniqueFd> reopen(int opath_fd, int flags) {
  int fd = retry_eintr([&] {
    return AUFS_SYSCALL("open", ::open(proc_fd_path(opath_fd).c_str(), flags | O_CLOEXEC));
  });
  if (fd < 0) return last_errno();
  return UniqueFd(fd);
}

namespace {
// An empty name stands for dirfd's own object (any type but a symlink): the
// magic link is followed to it.
std::string at_path(int dirfd, const std::string& name) {
  std::string p = proc_fd_path(dirfd);
  if (name.empty()) return p;
  p += '/';
  p += name;
  return p;
}
}  // namespace

Result<std::vector<char>> getxattr_at(int dirfd, const std::string& name,
                                      const char* key, size_t size) {
  std::string p = at_path(dirfd, name);
  std::vector<char> buf(size);
  void* out = size ? buf.data() : nullptr;
  ssize_t n = SYSCALL("getxattr", name.empty() ? ::getxattr(p.c_str(), key, out, size)
                                                : ::lgetxattr(p.c_str(), key, out, size));
  if (n < 0) return last_errno();
  buf.resize(static_cast<size_t>(n));  // size probe: a vector of the needed size
  return buf;
}

Result<std::vector<char>> listxattr_at(int dirfd, const std::string& name, size_t size) {
  std::string p = at_path(dirfd, name);
  std::vector<char> buf(size);
  char* out = size ? buf.data() : nullptr;
  ssize_t n = SYSCALL("listxattr", name.empty() ? ::listxattr(p.c_str(), out, size) : ::llistxattr(p.c_str(), out, size));
  if (n < 0) return last_errno();
  buf.resize(static_cast<size_t>(n));
  return buf;
}

Status setxattr_at(int dirfd, const std::string& name, const char* key,
                   const void* value, size_t size, int flags) {
  std::string p = at_path(dirfd, name);
  int r = SYSCALL("setxattr", name.empty() ? ::setxattr(p.c_str(), key, value, size, flags)
                                           : ::lsetxattr(p.c_str(), key, value, size, flags));
  if (r < 0) return last_errno();
  return {};
}

Status removexattr_at(int dirfd, const std::string& name, const char* key) {
  std::string p = at_path(dirfd, name);
  int r = SYSCALL("removexattr", name.empty() ? ::removexattr(p.c_str(), key) : ::lremovexattr(p.c_str(), key));
  if (r < 0) return last_errno();
  return {};
}

namespace {
// readdir(3) as one counted call (one per entry); EINTR is retried.
struct dirent* next_entry(DIR* d) {
  for (;;) {
    errno = 0;
#ifdef AUFS_FAULT_INJECTION
    if (fault::fire("readdir")) {
      if (errno == EINTR) continue;
      return nullptr;
    }
#endif
    struct dirent* e = ::readdir(d);
    if (!e && errno == EINTR) continue;
    return e;
  }
}
}  // namespace

Result<std::vector<RawDirent>> read_dir(int dirfd_opath) {
  int fd = SYSCALL("openat", ::openat(dirfd_opath, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd < 0) return last_errno();
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int e = errno;
    ::close(fd);
    return Errno{e};
  }
  std::vector<RawDirent> out;
  errno = 0;
  while (struct dirent* e = next_entry(d)) {
    if (e->d_name[0] == '.' &&
        (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
      continue;
    out.push_back({e->d_name, e->d_ino, e->d_type});
  }
  int e = errno;
  ::closedir(d);
  if (e) return Errno{e};
  return out;
}

namespace {

// Both return the offset reached: end, or less if the source shrank.
Result<off_t> copy_range_rw(int in, int out, off_t start, off_t end) {
  static thread_local std::vector<char> buf(1 << 20);
  off_t off = start;
  while (off < end) {
    size_t want = static_cast<size_t>(std::min<off_t>(end - off, static_cast<off_t>(buf.size())));
    ssize_t n = retry_eintr([&] { return AUFS_SYSCALL("pread", ::pread(in, buf.data(), want, off)); });
    if (n < 0) return last_errno();
    if (n == 0) break;
    ssize_t done = 0;
    while (done < n) {
      ssize_t w = retry_eintr([&] {
        return AUFS_SYSCALL("pwrite", ::pwrite(out, buf.data() + done, static_cast<size_t>(n - done), off + done));
      });
      if (w < 0) return last_errno();
      done += w;
    }
    off += n;
  }
  return off;
}

Result<off_t> copy_range(int in, int out, off_t start, off_t end) {
  if (!g_no_cfr.load(std::memory_order_relaxed)) {
    loff_t ioff = start, ooff = start;
    while (ioff < end) {
      ssize_t n = AUFS_SYSCALL("copy_file_range", ::copy_file_range(in, &ioff, out, &ooff, static_cast<size_t>(end - ioff), 0));
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
          if (errno == ENOSYS) g_no_cfr.store(true);
          return copy_range_rw(in, out, ioff, end);
        }
        return last_errno();
      }
      if (n == 0) break;  // source shrank
    }
    return ioff;
  }
  return copy_range_rw(in, out, start, end);
}

}  // namespace

namespace {
// (source device, target device) pairs where FICLONE failed: most file
// systems share no extents (ext4), none across two of them. Only a speed
// matter: a wrong entry costs the clone, never the copy.
std::mutex g_noclone_mu;
std::set<std::pair<dev_t, dev_t>> g_noclone;  // g_noclone_mu

bool may_clone(dev_t in_dev, dev_t out_dev) {
  if (g_no_ficlone.load(std::memory_order_relaxed)) return false;
  if (!in_dev || !out_dev) return true;
  std::lock_guard<std::mutex> g(g_noclone_mu);
  return !g_noclone.count({in_dev, out_dev});
}
}  // namespace

Result<uint64_t> copy_data(int in, int out, off_t size, bool dense, dev_t in_dev, dev_t out_dev) {
  if (size == 0) return uint64_t{0};
  if (may_clone(in_dev, out_dev)) {
    if (SYSCALL("ficlone", ::ioctl(out, FICLONE, in)) == 0) return static_cast<uint64_t>(size);
    if (errno == ENOTTY || errno == ENOSYS) g_no_ficlone.store(true);
    else if ((errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL) && in_dev && out_dev) {
      std::lock_guard<std::mutex> g(g_noclone_mu);
      if (g_noclone.size() < 256) g_noclone.insert({in_dev, out_dev});
    }
  }
  if (dense) {
    // No holes to keep: one copy, and no lseek or ftruncate.
    AUFS_ASSIGN_OR_RETURN(off_t end, copy_range(in, out, 0, size));
    if (end < size) AUFS_TRY(truncate_fd(out, size));
    return static_cast<uint64_t>(size);
  }
  // Walk data extents so holes stay holes.
  off_t pos = 0;
  while (pos < size) {
    off_t data = SYSCALL("lseek", ::lseek(in, pos, SEEK_DATA));
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      if (errno == EINVAL || errno == ENOTSUP) {  // no SEEK_DATA support
        if (auto r = copy_range(in, out, pos, size); !r.ok()) return Errno{r.err()};
        pos = size;
        break;
      }
      return last_errno();
    }
    if (data >= size) break;
    off_t hole = SYSCALL("lseek", ::lseek(in, data, SEEK_HOLE));
    if (hole < 0) return last_errno();
    if (hole > size) hole = size;
    if (auto r = copy_range(in, out, data, hole); !r.ok()) return Errno{r.err()};
    pos = hole;
  }
  AUFS_TRY(truncate_fd(out, size));
  return static_cast<uint64_t>(size);
}

}  // namespace aufs::sys
