// SPDX-License-Identifier: GPL-2.0-or-later
// Union inode numbers (see ino.hpp).
#include "core/ino.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "aufs_fuse/creds.hpp"
#include "aufs_fuse/sys.hpp"

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
