// SPDX-License-Identifier: GPL-2.0-or-later
// The control file (see control.hpp).
#include "core/control.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "aufs_fuse/control.hpp"
#include "aufs_fuse/sys.hpp"
#include "core/branches.hpp"
#include "core/namei.hpp"
#include "core/xattr.hpp"

namespace aufs::core {
namespace {

using Json = nlohmann::ordered_json;  // keys in the order written

// Branch paths need not be UTF-8: invalid bytes are replaced, not fatal.
std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string options_string(const Mount& m) {
  const MountOptions& o = m.opts;
  std::string s = "udba=";
  s += o.udba == Udba::None ? "none" : (o.udba == Udba::Reval || !m.watcher) ? "reval" : "notify";
  s += o.diropq_always ? ",diropq=a" : ",diropq=w";
  s += o.sum ? ",sum" : ",nosum";
  s += o.plink ? ",plink" : ",noplink";
  s += o.check ? ",chk" : ",nochk";
  s += o.dirperm1 ? ",dirperm1" : ",nodirperm1";
  if (o.shwh) s += ",shwh";
  if (o.acl) s += ",acl";
  if (o.cpup_caps) s += ",cpup_caps";
  if (o.ociwh) s += ",ociwh";
  if (o.dirren) s += ",dirren";
  if (o.volatile_mode) s += ",volatile";
  s += ",dirwh=" + std::to_string(o.dirwh) + ",rdcache=" + std::to_string(o.rdcache);
  s += "," + format_policies(o.policy);
  if (m.ro()) s += ",ro";
  if (!o.xino_path.empty()) s += ",xino=" + o.xino_path;
  return s;
}

const char* type_name(mode_t fmt) {
  switch (fmt) {
    case S_IFDIR: return "dir";
    case S_IFREG: return "file";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    default: return "device";
  }
}

}  // namespace

std::string info_json(const Mount& m) {
  auto bs = m.branches();
  Json j;
  j["mountpoint"] = m.opts.mountpoint;
  Json brs = Json::array();
  for (size_t i = 0; i < bs->size(); ++i) {
    const Branch& b = (*bs)[i];
    brs.push_back({{"index", i}, {"id", b.id}, {"path", b.spec.path}, {"perm", format_perm(b.spec)}});
  }
  j["branches"] = std::move(brs);
  j["generation"] = bs->generation;
  j["xino"] = m.opts.noxino ? "off" : "in memory";
  j["options"] = options_string(m);
  j["counters"] = {{"inodes", m.tree.table.size()},
                   {"open_files", m.files.count()},
                   {"copyups", m.counters.copyups.load()},
                   {"copyup_bytes", m.counters.copyup_bytes.load()},
                   {"whiteouts", m.counters.whiteouts.load()},
                   {"branch_changes", m.counters.branch_changes.load()},
                   {"xino_aliases", m.xino.alias_count()},
                   {"listing_cache_entries", m.listings.entries()}};
  if (m.frontend_info) {
    Json f = Json::parse(m.frontend_info(), nullptr, false);
    if (f.is_object()) j["fuse"] = std::move(f);
  }
  return dump(j);
}

Result<std::string> which_json(Mount& m, NodeId dir, std::string_view name) {
  AUFS_ASSIGN_OR_RETURN(NameInDir d, resolve_in(m, dir, name, true));
  auto& [p, bs, pw, r] = d;
  Json j;
  j["name"] = sys::join(pw.rel, std::string(name));
  j["visible"] = r.positive();
  if (r.positive()) {
    const Hit& top = r.hits[0];
    const Branch& b = (*bs)[static_cast<size_t>(top.branch)];
    j["type"] = type_name(top.st.st_mode & S_IFMT);
    j["branch"] = top.branch;
    j["brid"] = b.id;
    j["branch_path"] = b.spec.path;
    j["copied_up"] = b.writable() && r.lower_exists;
    j["lower_exists"] = r.lower_exists;
    Json layers = Json::array();
    for (auto& h : r.hits) layers.push_back(h.branch);
    j["layers"] = std::move(layers);
    if (r.opaque_branch >= 0) j["opaque_branch"] = r.opaque_branch;
  }
  if (r.whiteout) j["whiteout_branch"] = r.whiteout_branch;
  return dump(j);
}

bool is_control_xattr(NodeId id, std::string_view key) {
  return id == kControlId || key.starts_with(kXattrWhichPrefix);
}

Result<std::vector<char>> control_getxattr(Mount& m, NodeId id, std::string_view key, size_t size) {
  if (id == kControlId) {
    if (key == kXattrInfo) return xattr_reply(info_json(m), size);
    return Errno{ENODATA};
  }
  AUFS_ASSIGN_OR_RETURN(std::string j, which_json(m, id, key.substr(kXattrWhichPrefix.size())));
  return xattr_reply(j, size);
}

Result<std::vector<char>> control_listxattr(size_t size) {
  std::string names = std::string(kXattrInfo) + '\0' + std::string(kXattrRemount) + '\0';
  return xattr_reply(names, size);
}

Status control_setxattr(Mount& m, std::string_view key, const void* val, size_t size,
                        const Ctx& ctx) {
  if (key != kXattrRemount) return Errno{ENOTSUP};
  // Only root or the user who mounted may change branches.
  if (ctx.uid != 0 && ctx.uid != m.owner) return Errno{EPERM};
  std::vector<BranchOp> ops;
  std::string spec(static_cast<const char*>(val), size);
  while (!spec.empty() && (spec.back() == '\n' || spec.back() == '\0')) spec.pop_back();
  std::string e = parse_branch_ops(spec, m.ro(), ops);
  if (!e.empty()) {
    spdlog::warn("branch change refused: {}", e);
    return Errno{EINVAL};
  }
  std::string msg;
  auto st = change_branches(m, ops, &msg);
  if (!st.ok()) spdlog::warn("branch change refused: {}", msg);
  return st;
}

}  // namespace aufs::core
