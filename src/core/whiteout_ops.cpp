// Whiteouts and opaque markers (see whiteout_ops.hpp).
#include "core/whiteout_ops.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "core/util.hpp"

namespace aufs::core {

Status make_whiteout(Mount& m, const BranchSet& bs, int bw, int dirfd, std::string_view name) {
  const Branch& b = bs[static_cast<size_t>(bw)];
  std::string whname = name == wh::kOpaque ? std::string(name) : wh::whiteout_of(name);
  if (!b.spec.nolwh && b.base_ok) {
    if (::linkat(b.root.get(), std::string(wh::kBase).c_str(), dirfd, whname.c_str(), 0) == 0) {
      m.counters.whiteouts++;
      return {};
    }
    if (errno == EEXIST) return {};
    // EMLINK, missing base, ...: fall back to a plain whiteout file.
  }
  auto s = create_readonly_file(dirfd, whname);
  if (!s.ok()) return s.err() == EEXIST ? Status{} : s;
  m.counters.whiteouts++;
  return {};
}

Status make_opaque(Mount& m, const BranchSet& bs, int bw, int dirfd) {
  return make_whiteout(m, bs, bw, dirfd, wh::kOpaque);
}

Status remove_whiteout_if_any(int dirfd, std::string_view name, bool* removed) {
  std::string whname = wh::whiteout_of(name);
  if (::unlinkat(dirfd, whname.c_str(), 0) == 0) {
    if (removed) *removed = true;
    return {};
  }
  if (errno == ENOENT) return {};
  return last_errno();
}

}  // namespace aufs::core
