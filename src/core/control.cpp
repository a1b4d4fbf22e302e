// SPDX-License-Identifier: GPL-2.0-or-later
// The control file (see control.hpp).
#include "core/control.hpp"

#include <limits.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "aufs_fuse/control.hpp"
#include "aufs_fuse/sys.hpp"
#include "core/branches.hpp"
#include "core/namei.hpp"
#include "core/xattr.hpp"
#include "option_table.hpp"

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

// Keeps a refused request's reason, or a done request's note, for its
// caller (user.aufs.reason/TOKEN).
void remember_reason(Mount& m, std::string token, std::string why) {
  std::lock_guard<std::mutex> g(m.reasons.mu);
  auto& q = m.reasons.by_token;
  q.emplace_back(std::move(token), std::move(why));
  if (q.size() > 64) q.pop_front();
}

Result<std::string> take_reason(Mount& m, std::string_view token) {
  std::lock_guard<std::mutex> g(m.reasons.mu);
  auto& q = m.reasons.by_token;
  for (auto it = q.begin(); it != q.end(); ++it) {
    if (it->first != token) continue;
    std::string why = std::move(it->second);
    q.erase(it);
    return why;
  }
  return Errno{ENODATA};
}

bool is_branch_item(std::string_view item) {
  if (item == "ro" || item == "rw") return true;
  std::string_view key = item.substr(0, item.find_first_of(":="));
  return key == "add" || key == "ins" || key == "append" || key == "prepend" || key == "del" ||
         key == "mod";
}

// br=/dirs= repeated by mount(8) from fstab: the branches the mount has now?
bool same_branches(const Mount& m, const std::vector<BranchSpec>& given) {
  auto bs = m.branches();
  if (given.size() != bs->size()) return false;
  for (size_t i = 0; i < given.size(); ++i) {
    char buf[PATH_MAX];
    std::string real = ::realpath(given[i].path.c_str(), buf) ? std::string(buf) : given[i].path;
    if (real != (*bs)[i].spec.path || format_perm(given[i]) != format_perm((*bs)[i].spec)) return false;
  }
  return true;
}

// A non-branch option in a remount request: "" when it asks for what the
// mount already has (mount(8) repeats the fstab line) or can change now
// (*changed set), else why it is refused.
std::string settle_option(const Mount& m, const std::string& item, bool* changed) {
  const MountOptions& now = m.opts;
  MountOptions want = now;
  want.branches.clear();
  if (auto e = apply_option_string(want, item); !e.empty()) return e;
  std::string key = item.substr(0, item.find_first_of(":="));
  if (!want.branches.empty()) {
    if (same_branches(m, want.branches)) return {};
    return "option '" + key + "' cannot be changed by remount: change branches with add:, del: "
           "and mod: (see aufsctl(8))";
  }
  want.branches = now.branches;
  want.notices = now.notices;
  want.udba_given = now.udba_given;  // the default mode given by name is no change
  // FUSE options given again (fsname=...) are no change.
  if (std::all_of(want.fuse_opts.begin(), want.fuse_opts.end(), [&](const std::string& f) {
        return std::find(now.fuse_opts.begin(), now.fuse_opts.end(), f) != now.fuse_opts.end();
      }))
    want.fuse_opts = now.fuse_opts;
  if (want.verbose != now.verbose) {
    // Verbosity is the logger's level: it changes at run time.
    bool verbose = want.verbose;
    want.verbose = now.verbose;
    if (want == now) {
      if (!now.debug) spdlog::set_level(verbose ? spdlog::level::info : spdlog::level::warn);
      *changed = true;
      return {};
    }
  }
  if (want == now) return {};
  return "option '" + key + "' cannot be changed by remount (unmount and mount again)";
}

// Pause: hold writes for at most SPEC seconds once those in flight are done;
// release: let them go on.
Status pause_request(Mount& m, bool pause, const std::string& spec, const Ctx& ctx,
                     std::string& why) {
  if (ctx.uid != 0 && ctx.uid != m.owner) {
    why = "only root or the mount's owner may pause writes";
    return Errno{EPERM};
  }
  if (!pause) {
    if (m.writes.release() != 0) {
      why = "writes are not paused (the pause timed out, or none was asked for)";
      return Errno{ENOENT};
    }
    spdlog::info("writes released");
    return {};
  }
  long long secs = 0;
  if (!parse_uint(spec, 3600, secs) || secs == 0) {
    why = "pause: '" + spec + "' is no timeout (1 to 3600 seconds)";
    return Errno{EINVAL};
  }
  int e = m.writes.pause(std::chrono::seconds(secs));
  if (e == EOPNOTSUPP) why = m.writes.refused();
  if (e == EBUSY) why = "writes are paused already";
  if (e == ETIMEDOUT)
    why = "writes in flight did not end within " + spec + " s; nothing is held";
  if (e == ETXTBSY)
    why = std::to_string(m.writes.pinned()) +
          " file(s) open for writing through FUSE passthrough, whose writes bypass the daemon "
          "and cannot be held; close them, or mount with passthrough=none";
  if (e) return Errno{e};
  spdlog::info("writes paused for at most {} s", secs);
  return {};
}

Status remount_request(Mount& m, std::string spec, const Ctx& ctx, std::string& why) {
  if (ctx.uid != 0 && ctx.uid != m.owner) {
    why = "only root or the mount's owner may change branches";
    return Errno{EPERM};
  }
  std::string branch_items;
  bool option_changed = false;
  for (const std::string& item : split_options(spec)) {
    if (item.empty() || is_mount_helper_option(item)) continue;
    if (is_branch_item(item)) {
      // Quoted whole: a branch path may hold a comma.
      branch_items += (branch_items.empty() ? "" : ",") + ("\"" + item + "\"");
    } else if (why = settle_option(m, item, &option_changed); !why.empty()) {
      return Errno{EINVAL};
    }
  }
  std::vector<BranchOp> ops;
  if (why = parse_branch_ops(branch_items, m.ro(), ops); !why.empty()) return Errno{EINVAL};
  Status st = change_branches(m, ops, &why);
  // An option changed at run time (verbose) is a change.
  if (st.ok() && option_changed && why.starts_with("nothing changed")) why.clear();
  return st;
}


}  // namespace

std::string info_json(const Mount& m) {
  auto bs = m.branches();
  Json j;
  j["mountpoint"] = m.opts.mountpoint;
  Json brs = Json::array();
  for (size_t i = 0; i < bs->size(); ++i) {
    const Branch& b = (*bs)[i];
    Json jb = {{"index", i}, {"id", b.id}, {"path", b.spec.path}, {"perm", format_perm(b.spec)}};
    if (m.opts.udba == Udba::Notify)
      jb["watched"] = !m.watcher ? "no: " + m.udba_fallback
                      : b.spec.perm == Perm::RR ? std::string("no need: rr")
                      : b.unwatchable ? std::string("no: ") + b.unwatchable +
                                            " does not report every change (udba=reval timeouts)"
                                      : std::string("yes");
    brs.push_back(std::move(jb));
  }
  j["branches"] = std::move(brs);
  j["generation"] = bs->generation;
  j["xino"] = m.opts.noxino ? "off" : "in memory";
  Json u = {{"mode", m.opts.udba == Udba::None ? "none"
                     : (m.opts.udba == Udba::Reval || !m.watcher) ? "reval" : "notify"},
            {"default", !m.opts.udba_given}};
  if (!m.udba_fallback.empty()) u["fallback"] = m.udba_fallback;
  if (m.watcher) {
    u["watches"] = m.watcher->watch_count();
    u["watch_failures"] = m.watcher->failures();
    u["events_reported"] = m.watcher->reported();
    u["own_events_dropped"] = m.watcher->own_dropped();
  }
  j["udba"] = std::move(u);
  j["options"] = options_string(m);
  j["counters"] = {{"inodes", m.tree.table.size()},
                   {"open_files", m.files.count()},
                   {"copyups", m.counters.copyups.load()},
                   {"copyup_bytes", m.counters.copyup_bytes.load()},
                   {"whiteouts", m.counters.whiteouts.load()},
                   {"branch_changes", m.counters.branch_changes.load()},
                   {"xino_aliases", m.xino.alias_count()},
                   {"listing_cache_entries", m.listings.entries()}};
  const PartCounts& pc = *m.parts.counts();
  j["dir_parts"] = {{"fds", pc.fds.load()},
                    {"fd_budget", m.parts.fd_budget()},
                    {"name_sets", pc.sets.load()},
                    {"name_set_bytes", pc.name_bytes.load()},
                    {"name_set_budget", m.parts.name_budget()},
                    {"opens", pc.opens.load()},
                    {"reuses", pc.reuses.load()},
                    {"set_builds", pc.set_builds.load()},
                    {"set_answers", pc.set_answers.load()},
                    {"evictions", pc.evictions.load()},
                    {"over_budget", pc.over_budget.load()},
                    {"unchecked_reuse_ms",
                     m.parts.window_ns() < 0 ? -1 : m.parts.window_ns() / 1'000'000}};
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

Result<std::string> stats_json(const Mount& m) {
  if (!m.request_stats.json) return Errno{ENODATA};  // no FUSE layer (core tests)
  Json j;
  j["requests"] = Json::parse(m.request_stats.json());
  return dump(j);
}

bool is_control_xattr(NodeId id, std::string_view key) {
  return id == kControlId || key.starts_with(kXattrWhichPrefix);
}

Result<std::vector<char>> control_getxattr(Mount& m, NodeId id, std::string_view key, size_t size) {
  if (id == kControlId) {
    if (key == kXattrInfo) return xattr_reply(info_json(m), size);
    if (key == kXattrStats) {
      AUFS_ASSIGN_OR_RETURN(std::string j, stats_json(m));
      return xattr_reply(j, size);
    }
    if (key.starts_with(kXattrReasonPrefix)) {
      AUFS_ASSIGN_OR_RETURN(std::string why, take_reason(m, key.substr(kXattrReasonPrefix.size())));
      return xattr_reply(why, size);
    }
    return Errno{ENODATA};
  }
  AUFS_ASSIGN_OR_RETURN(std::string j, which_json(m, id, key.substr(kXattrWhichPrefix.size())));
  return xattr_reply(j, size);
}

Result<std::vector<char>> control_listxattr(size_t size) {
  std::string names = std::string(kXattrInfo) + '\0' + std::string(kXattrRemount) + '\0' +
                      std::string(kXattrStats) + '\0';
  return xattr_reply(names, size);
}

Status control_setxattr(Mount& m, std::string_view key, const void* val, size_t size,
                        const Ctx& ctx) {
  if (key == kXattrStats) {
    // Only root or the user who mounted may reset counts someone may be
    // measuring with.
    if (ctx.uid != 0 && ctx.uid != m.owner) return Errno{EPERM};
    std::string_view v(static_cast<const char*>(val), size);
    while (!v.empty() && (v.back() == '\n' || v.back() == '\0')) v.remove_suffix(1);
    if (v != "reset") return Errno{EINVAL};
    if (!m.request_stats.reset) return Errno{ENOTSUP};
    m.request_stats.reset();
    return {};
  }
  // REQUEST or REQUEST/TOKEN.
  std::string_view request = key.substr(0, key.find('/'));
  std::string_view token = request.size() < key.size() ? key.substr(request.size() + 1) : "";
  std::string value(static_cast<const char*>(val), size);
  while (!value.empty() && (value.back() == '\n' || value.back() == '\0')) value.pop_back();
  std::string why;
  Status st;
  if (request == kXattrRemount) {
    st = remount_request(m, value, ctx, why);
    if (!st.ok()) spdlog::warn("branch change refused: {}", why.empty() ? "" : why);
  } else if (request == kXattrPause || request == kXattrRelease) {
    st = pause_request(m, request == kXattrPause, value, ctx, why);
  } else {
    return Errno{ENOTSUP};
  }
  if (!st.ok()) {
    if (why.empty()) why = std::strerror(st.err());
    if (!token.empty()) remember_reason(m, std::string(token), std::move(why));
  } else if (!why.empty()) {
    // A note on a request that went through (nothing changed, ...): the
    // caller reads it the same way.
    spdlog::info("{}", why);
    if (!token.empty()) remember_reason(m, std::string(token), std::move(why));
  }
  return st;
}

}  // namespace aufs::core
