// SPDX-License-Identifier: GPL-2.0-or-later
// Extended attributes (see xattr.hpp).
#include "core/xattr.hpp"

#include <cstring>

#include "aufs_fuse/control.hpp"
#include "aufs_fuse/sys.hpp"
#include "core/copy_up.hpp"
#include "core/ino.hpp"
#include "core/util.hpp"

namespace aufs::core {
namespace {

// The directory holding the node's top copy (for a change: after copy-up).
Result<ParentFd> top_parent(Mount& m, NodeId id, bool for_change) {
  NodePtr n = m.tree.node(id);
  if (!n) return Errno{ESTALE};
  if (for_change && m.ro()) return Errno{EROFS};
  auto bs = m.branches();
  AUFS_ASSIGN_OR_RETURN(Where w, for_change ? where_for_write(m, *bs, n) : where(m, *bs, n));
  return open_parent_of((*bs)[static_cast<size_t>(w.layers[0])].root.get(), w.data_rel);
}

}  // namespace

Result<std::vector<char>> xattr_reply(const std::string& v, size_t size) {
  if (size == 0) return std::vector<char>(v.size());
  if (v.size() > size) return Errno{ERANGE};
  return std::vector<char>(v.begin(), v.end());
}

Result<std::vector<char>> getxattr(Mount& m, NodeId id, const char* key, size_t size) {
  if (is_internal_xattr(key)) return Errno{ENODATA};
  AUFS_ASSIGN_OR_RETURN(ParentFd p, top_parent(m, id, false));
  return sys::getxattr_at(p.get(), p.leaf, key, size);
}

Result<std::vector<char>> listxattr(Mount& m, NodeId id, size_t size) {
  AUFS_ASSIGN_OR_RETURN(ParentFd p, top_parent(m, id, false));
  // Our own bookkeeping attribute is not the user's: leave it out.
  AUFS_ASSIGN_OR_RETURN(auto all, sys::listxattr_at(p.get(), p.leaf, 65536));
  std::string out;
  for (const char* k = all.data(); k < all.data() + all.size(); k += std::strlen(k) + 1)
    if (!is_internal_xattr(k)) out.append(k, std::strlen(k) + 1);
  return xattr_reply(out, size);
}

Status setxattr(Mount& m, NodeId id, const char* key, const void* val, size_t size, int flags) {
  if (std::string_view(key).starts_with(kXattrWhichPrefix) || is_internal_xattr(key))
    return Errno{EPERM};
  AUFS_ASSIGN_OR_RETURN(ParentFd p, top_parent(m, id, true));
  return sys::setxattr_at(p.get(), p.leaf, key, val, size, flags);
}

Status removexattr(Mount& m, NodeId id, const char* key) {
  if (id == kControlId || is_internal_xattr(key)) return Errno{EPERM};
  if (!m.tree.node(id)) return Errno{ESTALE};
  if (m.ro()) return Errno{EROFS};
  // Nothing to copy up if the attribute does not exist at all.
  AUFS_TRY(getxattr(m, id, key, 0));
  AUFS_ASSIGN_OR_RETURN(ParentFd p, top_parent(m, id, true));
  auto rs = sys::removexattr_at(p.get(), p.leaf, key);
  // It existed in the union view (checked above) but copy-up did not carry
  // it (security.capability): it is gone, which is what was asked. The
  // kernel's chown relies on this to drop file capabilities.
  if (!rs.ok() && rs.err() == ENODATA) return {};
  return rs;
}

}  // namespace aufs::core
