// SPDX-License-Identifier: GPL-2.0-or-later
// Thin fd-relative syscall wrappers: every system call the core makes on a
// branch goes through one of these (so a fault-injection build can fail
// any of them, include/aufs_fuse/fault.hpp); EINTR is retried inside. Every path the daemon opens inside a
// branch goes through open_beneath(), which refuses to leave the branch root
// through "..", absolute symlinks or any symlink at all: the union resolves
// names itself, one component at a time, so a branch path never needs to
// follow a link.
#pragma once
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "aufs_fuse/result.hpp"
#include "aufs_fuse/unique_fd.hpp"

namespace aufs::sys {

// Opens `rel` (relative, "" or "." for the root itself) below `root`.
// Symlinks are never followed: a symlink as last component is only returned
// with O_PATH|O_NOFOLLOW; anywhere else it yields ELOOP. Retries EINTR/EAGAIN.
Result<UniqueFd> open_beneath(int root, const std::string& rel, int flags,
                              mode_t mode = 0);
// The same without the one-time EMFILE/ENFILE warning.
Result<UniqueFd> open_beneath_raw(int root, const std::string& rel, int flags,
                                  mode_t mode = 0);

// Splits "a/b/c" into ("a/b", "c"); ("", "c") for a top-level name.
std::pair<std::string, std::string> split_parent(const std::string& rel);
std::string join(const std::string& dir, std::string_view name);

Result<struct stat> fstat_fd(int fd);
Result<struct stat> lstat_at(int dirfd, const std::string& name);
// True if `name` exists in dirfd (lstat semantics); errors other than ENOENT
// and ENOTDIR are returned.
Result<bool> exists_at(int dirfd, const std::string& name);

Status mkdir_at(int dirfd, const std::string& name, mode_t mode);
Status unlink_at(int dirfd, const std::string& name, int flags);
Status rename_at(int olddir, const std::string& oldname, int newdir,
                 const std::string& newname, unsigned flags);
Status link_at(int olddir, const std::string& oldname, int newdir,
               const std::string& newname);
Status symlink_at(const std::string& target, int dirfd,
                  const std::string& name);
Status mknod_at(int dirfd, const std::string& name, mode_t mode, dev_t rdev);
Result<std::string> readlink_at(int dirfd, const std::string& name);
// These and the xattr calls below: an empty name means dirfd's own object
// (opened, or O_PATH; not a symlink).
Status fchownat_nofollow(int dirfd, const std::string& name, uid_t uid,
                         gid_t gid);
Status utimens_at(int dirfd, const std::string& name,
                  const struct timespec ts[2]);
Status chmod_at(int dirfd, const std::string& name, mode_t mode);
// chmod that works on the inode behind an O_PATH fd (not symlinks).
Status chmod_path_fd(int opath_fd, mode_t mode);

// openat(2) of one name (the caller adds O_NOFOLLOW as needed; O_CLOEXEC
// is added here); AT_FDCWD with an absolute path opens a branch root.
Result<UniqueFd> open_at(int dirfd, const std::string& name, int flags, mode_t mode = 0);
Status chmod_fd(int fd, mode_t mode);
Status truncate_fd(int fd, off_t size);
Status sync_fd(int fd, bool datasync = false);
// Writes all of data (short writes continue).
Status write_all(int fd, std::string_view data);
// Reads to the end, or until more than `max` bytes are read.
Result<std::string> read_all(int fd, size_t max);
Result<struct statvfs> statvfs_fd(int fd);
// The file system type of fd (fstatfs(2) f_type, a *_MAGIC of linux/magic.h).
Result<long> fs_type_fd(int fd);

// Reopens an O_PATH fd with real access flags through /proc/self/fd.
Result<UniqueFd> reopen(int opath_fd, int flags);

// xattrs of the entry `name` in directory `dirfd`, never following a final
// symlink (l* calls through /proc/self/fd/DIRFD/NAME). size 0 probes.
Result<std::vector<char>> getxattr_at(int dirfd, const std::string& name,
                                      const char* key, size_t size);
Result<std::vector<char>> listxattr_at(int dirfd, const std::string& name,
                                       size_t size);
Status setxattr_at(int dirfd, const std::string& name, const char* key,
                   const void* value, size_t size, int flags);
Status removexattr_at(int dirfd, const std::string& name, const char* key);

// Directory entries of an open directory (any order), without "." and "..".
struct RawDirent {
  std::string name;
  ino_t ino;
  unsigned char type;
};
Result<std::vector<RawDirent>> read_dir(int dirfd_opath);

// Copies data from in to out (both regular files), preserving holes.
// Tries FICLONE, then copy_file_range per data extent, then read/write.
// dense: the source has no holes (its blocks cover its size), so the
// extents need no walk. in_dev, out_dev (0: unknown): the file systems, so
// a pair that cannot share extents is not asked again.
Result<uint64_t> copy_data(int in, int out, off_t size, bool dense = false, dev_t in_dev = 0,
                           dev_t out_dev = 0);

std::string proc_fd_path(int fd);

}  // namespace aufs::sys
