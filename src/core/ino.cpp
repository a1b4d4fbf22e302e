// SPDX-License-Identifier: GPL-2.0-or-later
// Union inode numbers (see ino.hpp).
#include "core/ino.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <cstring>

#include "aufs_fuse/creds.hpp"
#include "aufs_fuse/sys.hpp"
#include "core/util.hpp"

namespace aufs::core {

uint64_t ino_of(const Mount& m, const BranchSet& bs, int b, const struct stat& st) {
  return m.xino.get(bs[static_cast<size_t>(b)].seed, st.st_ino);
}

uint64_t ino_at(const Mount& m, const BranchSet& bs, int b, int dirfd, const std::string& name,
                const struct stat& st) {
  const Branch& br = bs[static_cast<size_t>(b)];
  if (!br.writable() || !m.persist_ino) return m.xino.get(br.seed, st.st_ino);
  if (auto v = m.xino.find(br.seed, st.st_ino)) return *v;
  uint64_t val = hash_ino(br.seed, st.st_ino);
  auto x = sys::getxattr_at(dirfd, name, m.ino_key.c_str(), sizeof(uint64_t));
  if (x.ok() && x->size() == sizeof(uint64_t)) {
    uint64_t v;
    std::memcpy(&v, x->data(), sizeof v);
    if (v >= kFirstIno) val = v;
  }
  m.xino.remember(br.seed, st.st_ino, val);
  return val;
}

uint64_t fresh_ino(Mount& m, const BranchSet& bs, int b, const struct stat& st) {
  const Branch& br = bs[static_cast<size_t>(b)];
  if (!br.writable() || !m.persist_ino) return m.xino.get(br.seed, st.st_ino);
  uint64_t val = hash_ino(br.seed, st.st_ino);
  m.xino.remember(br.seed, st.st_ino, val);
  return val;
}

Status record_ino(const Mount& m, int dirfd, const std::string& name, uint64_t ino) {
  if (!m.persist_ino) return {};
  auto s = sys::setxattr_at(dirfd, name, m.ino_key.c_str(), &ino, sizeof ino, 0);
  if (s.ok()) return {};
  // A branch without (trusted) xattrs: numbers change after a remount. An
  // I/O error is the copy-up's: published without its number, a hard-linked
  // copy would lose its pseudo-link after a remount.
  if (s.err() != ENOTSUP && s.err() != EOPNOTSUPP && s.err() != EPERM) return s;
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true))
    spdlog::warn("cannot record inode numbers ({}): they will change after a remount",
                 std::strerror(s.err()));
  return {};
}

bool is_internal_xattr(std::string_view key) {
  return key.starts_with("trusted.aufs-fuse.") || key.starts_with("user.aufs-fuse.");
}

std::string plink_name(uint64_t ino) { return std::string(wh::kPlink) + "/" + std::to_string(ino); }

namespace {
bool no_xattrs(int e) { return e == ENODATA || e == ENOTSUP || e == EOPNOTSUPP || e == EPERM; }

// The stored difference (a decimal text, "-1"); 0 without one.
Result<int> stored_nlink_diff(const Mount& m, int fd, const std::string& name) {
  auto x = sys::getxattr_at(fd, name, m.nlink_key.c_str(), 16);
  if (!x.ok()) return no_xattrs(x.err()) ? Result<int>(0) : Result<int>(Errno{x.err()});
  int v = 0;
  auto [end, ec] = std::from_chars(x->data(), x->data() + x->size(), v);
  return ec == std::errc() && end == x->data() + x->size() ? v : 0;
}
}  // namespace

void union_nlink(const Mount& m, int fd, const std::string& name, struct stat& st, bool plinked) {
  // Only an inode with other links can have been pseudo-linked.
  if (S_ISDIR(st.st_mode) || (st.st_nlink <= 1 && !plinked) || m.nlink_key.empty()) return;
  // Unreadable: the upper inode's own count (an attribute reply is no
  // reason to fail a request).
  auto d = stored_nlink_diff(m, fd, name);
  long n = static_cast<long>(st.st_nlink) + (d.ok() ? d.value() : 0);
  // A count the branch contradicts (edited behind the union's back): the
  // upper inode's own.
  if (n >= 1) st.st_nlink = static_cast<nlink_t>(n);
}

void union_nlink_at(const Mount& m, int root, const std::string& rel, struct stat& st) {
  bool plinked = rel.starts_with(std::string(wh::kPlink) + "/");
  if (S_ISDIR(st.st_mode) || (st.st_nlink <= 1 && !plinked) || m.nlink_key.empty()) return;
  // By its parent and name: an O_PATH fd of a symlink has no xattrs.
  auto pfd = open_parent_of(root, rel);
  if (pfd.ok()) union_nlink(m, pfd->get(), pfd->leaf, st, plinked);
}

Status add_nlink(Mount& m, int fd, const std::string& name, int delta) {
  if (m.nlink_key.empty() || delta == 0) return {};
  std::lock_guard<std::mutex> g(m.nlink_mu);
  AUFS_ASSIGN_OR_RETURN(int v, stored_nlink_diff(m, fd, name));
  v += delta;
  char buf[16];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  auto s = v == 0 ? sys::removexattr_at(fd, name, m.nlink_key.c_str())
                  : sys::setxattr_at(fd, name, m.nlink_key.c_str(), buf, static_cast<size_t>(end - buf), 0);
  if (s.ok() || no_xattrs(s.err())) return {};
  return s;
}

Result<bool> add_plink_nlink(Mount& m, int root, uint64_t ino, int delta) {
  std::string pl = plink_name(ino);
  auto have = sys::lstat_at(root, pl);
  if (!have.ok()) {
    if (absent(have.err())) return false;
    return Errno{have.err()};
  }
  AUFS_TRY(add_nlink(m, root, pl, delta));
  return true;
}

struct stat present(const Node& n, const struct stat& st) {
  struct stat out = st;
  out.st_ino = n.id == kRootId ? kRootIno : n.ino;
  return out;
}

Result<struct stat> stat_at(const BranchSet& bs, int b, const std::string& rel) {
  AUFS_ASSIGN_OR_RETURN(auto fd, sys::open_beneath(bs[static_cast<size_t>(b)].root.get(), rel, O_PATH | O_NOFOLLOW));
  return sys::fstat_fd(fd.get());
}

}  // namespace aufs::core
