// SPDX-License-Identifier: GPL-2.0-or-later
// The daemon's -o options (see option_table.hpp).
#include "option_table.hpp"

#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <charconv>

namespace aufs {
namespace {

using Arg = OptionDef::Arg;

bool parse_seconds(std::string_view s, double& out) {
  if (s.empty()) return false;
  std::string tmp(s);
  char* end = nullptr;
  double v = std::strtod(tmp.c_str(), &end);
  if (!end || *end || v < 0 || v > 1e9) return false;
  out = v;
  return true;
}

template <bool MountOptions::*F, bool V>
std::string set(MountOptions& o, const OptionArg&) {
  o.*F = V;
  return {};
}

std::string nothing(MountOptions&, const OptionArg&) { return {}; }

std::string fuse_flag(MountOptions& o, const OptionArg& a) {
  o.fuse_opts.push_back(a.key);
  return {};
}

std::string notice_ignored(MountOptions& o, const OptionArg& a) {
  o.notices.push_back("option '" + a.key + "' tunes kernel AUFS memory use and is ignored");
  return {};
}

std::string notice_obsolete(MountOptions& o, const OptionArg& a) {
  o.notices.push_back("option '" + a.key + "' is obsolete and ignored");
  return {};
}

std::string unsupported(MountOptions&, const OptionArg& a) {
  return "option '" + a.key + "' is not supported by this version";
}

std::string overlay_dir(MountOptions& o, const OptionArg& a) {
  // overlayfs-style drop-in: mapped to br= once all three are seen.
  if (!o.branches.empty()) return "'" + a.key + "' cannot be combined with br=";
  (a.key == "lowerdir" ? o.ovl_lower : a.key == "upperdir" ? o.ovl_upper : o.ovl_work) =
      std::string(a.val);
  return {};
}

std::string branches(MountOptions& o, const OptionArg& a) {
  if (!o.branches.empty()) return "branches given twice ('" + a.key + "')";
  if (!o.ovl_lower.empty() || !o.ovl_upper.empty())
    return "'" + a.key + "' cannot be combined with lowerdir=/upperdir=";
  if (a.val.empty()) return "no branches";
  std::string e = parse_branches(a.val, o.read_only, o.branches, o.notices);
  if (!e.empty()) return e;
  if (o.branches.empty()) return "no branches";
  return {};
}

// AUFS accepts branch edits at mount too, applied to the list so far.
std::string branch_edit(MountOptions& o, const OptionArg& a) {
  const std::string& k = a.key;
  if (o.branches.empty() && k != "append" && k != "prepend" && k != "add" && k != "ins")
    return "'" + k + "' needs branches given before it (br=...)";
  std::vector<BranchOp> ops;
  std::string e = parse_branch_ops(a.item, o.read_only, ops);
  if (!e.empty()) return e;
  std::string item(a.item);
  for (auto& op : ops) {
    if (op.kind == BranchOp::Kind::Add) {
      long idx = op.index == -1 ? static_cast<long>(o.branches.size()) : op.index;
      if (idx < 0 || idx > static_cast<long>(o.branches.size()))
        return "'" + item + "': branch index out of range";
      if (!op.spec.perm_given) op.spec.perm = (idx == 0 && !o.read_only) ? Perm::RW : Perm::RO;
      o.branches.insert(o.branches.begin() + idx, op.spec);
    } else if (op.kind == BranchOp::Kind::Del || op.kind == BranchOp::Kind::Mod) {
      // Paths are compared as written, less "./" and trailing slashes.
      auto norm = [](std::string p) {
        while (p.size() > 1 && p.back() == '/') p.pop_back();
        if (p.starts_with("./")) p = p.substr(2);
        return p;
      };
      auto it = std::find_if(o.branches.begin(), o.branches.end(),
                             [&](const BranchSpec& b) { return norm(b.path) == norm(op.spec.path); });
      if (it == o.branches.end()) return "'" + item + "': no such branch";
      if (op.kind == BranchOp::Kind::Del) {
        o.branches.erase(it);
      } else {
        it->perm = op.spec.perm;
        it->wh = op.spec.wh;
        it->nolwh = op.spec.nolwh;
      }
    }
  }
  return {};
}

std::string udba(MountOptions& o, const OptionArg& a) {
  o.udba_given = true;
  if (a.val == "none") o.udba = Udba::None;
  else if (a.val == "reval") o.udba = Udba::Reval;
  else if (a.val == "notify" || a.val == "fsnotify" || a.val == "inotify") o.udba = Udba::Notify;
  else return a.bad("none, reval or notify");
  return {};
}

std::string diropq(MountOptions& o, const OptionArg& a) {
  if (a.val == "w" || a.val == "whiteouted") o.diropq_always = false;
  else if (a.val == "a" || a.val == "always") o.diropq_always = true;
  else return a.bad("w or a");
  return {};
}

std::string dirwh(MountOptions& o, const OptionArg& a) {
  long long v;
  if (!parse_uint(a.val, INT_MAX, v)) return a.bad("a number");
  o.dirwh = static_cast<int>(v);
  return {};
}

std::string rdcache(MountOptions& o, const OptionArg& a) {
  long long v;
  if (!parse_uint(a.val, 3600, v)) return a.bad("seconds, at most 3600");
  o.rdcache = static_cast<int>(v);
  return {};
}

std::string xino(MountOptions& o, const OptionArg& a) {
  if (a.val.empty()) return a.bad("a file path");
  o.xino_path = std::string(a.val);
  o.noxino = false;
  return {};
}

std::string noxino(MountOptions& o, const OptionArg&) {
  o.noxino = true;
  o.xino_path.clear();
  return {};
}

std::string timeout(MountOptions& o, const OptionArg& a) {
  double v;
  if (!parse_seconds(a.val, v)) return a.bad("seconds");
  (a.key == "entry_timeout" ? o.entry_timeout
   : a.key == "attr_timeout" ? o.attr_timeout
                             : o.negative_timeout) = v;
  return {};
}

std::string threads(MountOptions& o, const OptionArg& a) {
  long long v;
  if (!parse_uint(a.val, 256, v) || v == 0) return a.bad("1 to 256");
  o.max_threads = static_cast<unsigned>(v);
  return {};
}

std::string passthrough(MountOptions& o, const OptionArg& a) {
  if (a.val == "none") o.passthrough = PassthroughMode::None;
  else if (a.val == "rw") o.passthrough = PassthroughMode::Rw;
  else if (a.val == "all") o.passthrough = PassthroughMode::All;
  else return a.bad("none, rw or all");
  return {};
}

std::string readdirplus(MountOptions& o, const OptionArg& a) {
  if (a.val == "auto") o.readdirplus = PlusMode::Auto;
  else if (a.val == "full") o.readdirplus = PlusMode::Full;
  else if (a.val == "off") o.readdirplus = PlusMode::Off;
  else return a.bad("auto, full or off");
  return {};
}

std::string uring_depth(MountOptions& o, const OptionArg& a) {
  long long v;
  if (!parse_uint(a.val, 65536, v) || v == 0) return a.bad("1 to 65536");
  o.io_uring_q_depth = static_cast<unsigned>(v);
  return {};
}

std::string fuse_key(MountOptions& o, const OptionArg& a) {
  if (a.val.empty()) return a.bad("non-empty");
  o.fuse_opts.push_back(std::string(a.item));
  return {};
}

// libfuse's other generic options (high-level API, FUSE 2, mount(8)'s FUSE
// keys): none changes anything here, so each is accepted with a notice
// saying why, or refused when the user would expect an effect it cannot have.
struct FuseRule {
  std::string_view names;
  bool refuse;
  std::string_view why;
};
constexpr FuseRule kFuseRules[] = {
    {"nonempty", false, "FUSE 3 mounts over a non-empty directory anyway"},
    {"kernel_cache|auto_cache|noauto_cache", false,
     "the page cache of a file is kept while its data is unchanged, as auto_cache does"},
    {"use_ino|readdir_ino", false, "inode numbers always come from the branches (xino)"},
    {"hard_remove|noforget|remember|intr|intr_signal", false,
     "an option of libfuse's high-level API, which aufs-fuse does not use"},
    {"big_writes|max_write|max_readahead|async_read|sync_read|atomic_o_trunc|no_remote_lock|"
     "no_remote_flock|no_remote_posix_lock|splice_read|splice_write|splice_move|no_splice_read|"
     "no_splice_write|no_splice_move",
     false, "a FUSE 2 option: libfuse 3 and the kernel negotiate it"},
    {"umask|uid|gid", true, "it would override the owners and modes the branches have"},
    {"modules|subdir|iconv", true, "libfuse's stacking modules need its high-level API"},
    {"direct_io", true, "use the AUFS option dio"},
    {"blkdev|blksize", true, "block-device FUSE mounts (fuseblk) are not supported"},
    {"user_id|group_id|rootmode|fd", true, "libfuse sets it itself when mounting"},
};

bool has_name(std::string_view names, std::string_view key);

std::string fuse_generic(MountOptions& o, const OptionArg& a) {
  for (const FuseRule& r : kFuseRules) {
    if (!has_name(r.names, a.key)) continue;
    std::string line = "FUSE option '" + a.key + "' ";
    if (r.refuse) return line + "is not supported: " + std::string(r.why);
    o.notices.push_back(line + "ignored: " + std::string(r.why));
    return {};
  }
  return {};
}

std::string fuse_debug(MountOptions& o, const OptionArg&) {
  o.debug = o.foreground = true;  // -o debug is -d in every FUSE tool
  return {};
}

std::string nodio(MountOptions& o, const OptionArg&) {
  o.notices.push_back("nodio is ignored (O_DIRECT is always passed through, as in aufs 6.10+)");
  return {};
}

std::string policy_create(MountOptions& o, const OptionArg& a) { return parse_create_policy(a.val, o.policy); }
std::string policy_cpup(MountOptions& o, const OptionArg& a) { return parse_cpup_policy(a.val, o.policy); }

using M = MountOptions;
// In --help's order; entries without help are aliases or unlisted.
const std::vector<OptionDef> kTable = {
    {"lowerdir|upperdir|workdir", Arg::Required, "", overlay_dir},
    {"br|dirs", Arg::Required, "", branches},
    {"add|ins|append|prepend|del|mod", Arg::Any, "", branch_edit},
    {"udba", Arg::Any, "udba=none|reval|notify", udba},
    {"create|create_policy", Arg::Required, "create=POLICY", policy_create},
    {"cpup|copyup|copyup_policy", Arg::Required, "cpup=POLICY", policy_cpup},
    {"diropq", Arg::Any, "diropq=w|a", diropq},
    {"sum", Arg::Ignored, "sum", set<&M::sum, true>},
    {"nosum", Arg::Ignored, "nosum", set<&M::sum, false>},
    {"plink", Arg::Ignored, "plink", set<&M::plink, true>},
    {"noplink", Arg::Ignored, "noplink", set<&M::plink, false>},
    {"dirren", Arg::None, "dirren", set<&M::dirren, true>},
    {"nodirren", Arg::None, "nodirren", set<&M::dirren, false>},
    {"dirperm1", Arg::Ignored, "dirperm1", set<&M::dirperm1, true>},
    {"nodirperm1", Arg::Ignored, "nodirperm1", set<&M::dirperm1, false>},
    {"shwh", Arg::Ignored, "shwh (with ro)", set<&M::shwh, true>},
    {"noshwh", Arg::Ignored, "", set<&M::shwh, false>},
    {"acl", Arg::Ignored, "acl", set<&M::acl, true>},
    {"noacl", Arg::Ignored, "", set<&M::acl, false>},
    {"dirwh", Arg::Any, "dirwh=N", dirwh},
    {"cpup_caps", Arg::Ignored, "cpup_caps", set<&M::cpup_caps, true>},
    {"nocpup_caps", Arg::Ignored, "", set<&M::cpup_caps, false>},
    {"ociwh", Arg::Ignored, "ociwh (a whiteout hides only lower branches, as in OCI layers)",
     set<&M::ociwh, true>},
    {"noociwh", Arg::Ignored, "", set<&M::ociwh, false>},
    {"volatile", Arg::Ignored, "volatile (copy-ups not synced: faster, not crash-safe)",
     set<&M::volatile_mode, true>},
    {"novolatile", Arg::Ignored, "", set<&M::volatile_mode, false>},
    {"warn_perm", Arg::Ignored, "warn_perm", set<&M::warn_perm, true>},
    {"nowarn_perm", Arg::Ignored, "nowarn_perm", set<&M::warn_perm, false>},
    {"verbose|v", Arg::Ignored, "verbose", set<&M::verbose, true>},
    {"noverbose|quiet|q|silent", Arg::Ignored, "", set<&M::verbose, false>},
    {"rdcache", Arg::Any, "rdcache=SEC", rdcache},
    {"dio", Arg::Ignored, "dio", set<&M::dio, true>},
    {"nodio", Arg::Ignored, "", nodio},
    {"xino", Arg::Required, "xino=PATH", xino},
    {"noxino", Arg::Ignored, "noxino", noxino},
    {"chk", Arg::Ignored, "chk", set<&M::check, true>},
    {"nochk", Arg::Ignored, "nochk", set<&M::check, false>},
    {"ro", Arg::Ignored, "ro", set<&M::read_only, true>},
    {"rw", Arg::Ignored, "rw", set<&M::read_only, false>},
    {"entry_timeout", Arg::Any, "entry_timeout=SEC", timeout},
    {"attr_timeout", Arg::Any, "attr_timeout=SEC", timeout},
    {"negative_timeout", Arg::Any, "negative_timeout=SEC", timeout},
    {"threads|max_threads", Arg::Any, "threads=N", threads},
    {"clone_fd", Arg::Ignored, "", set<&M::clone_fd, true>},
    {"passthrough", Arg::Required, "passthrough=none|rw|all", passthrough},
    {"readdirplus", Arg::Required, "readdirplus=auto|full|off", readdirplus},
    {"io_uring", Arg::Ignored, "io_uring", set<&M::io_uring, true>},
    {"noio_uring", Arg::Ignored, "", set<&M::io_uring, false>},
    {"io_uring_q_depth", Arg::Required, "io_uring_q_depth=N", uring_depth},
    // FUSE options: libfuse's mount flags and session options, passed on.
    {"allow_other|allow_root|default_permissions|auto_unmount", Arg::None, "FUSE", fuse_flag},
    {"fsname|subtype", Arg::KeyValue, "FUSE", fuse_key},
    {"nosuid|nodev|noexec|noatime", Arg::None, "FUSE", fuse_flag},
    {"suid|dev|exec|atime|sync|async|dirsync", Arg::None, "", fuse_flag},
    {"max_read", Arg::KeyValue, "", fuse_key},
    {"debug", Arg::Ignored, "", fuse_debug},
    // AUFS options whose value is this version's fixed behaviour.
    {"notrunc_xino|notrunc_xib", Arg::None, "", nothing},
    // Tuning knobs of AUFS's in-kernel vdir allocator: meaningless here.
    {"rdblk|rdhash", Arg::Ignored, "", notice_ignored},
    // AUFS options that are obsolete; AUFS accepts and ignores them.
    {"clean_plink|delete|imap|nodlgt|relatime|si", Arg::Ignored, "", notice_obsolete},
    // AUFS options this version recognises but does not implement.
    {"list_plink|wsum|trunc_xino|itrunc_xino|trunc_xib|fhsm_sec|droplvl", Arg::Ignored, "",
     unsupported},
};

bool has_name(std::string_view names, std::string_view key) {
  for (size_t p = 0; p <= names.size();) {
    size_t bar = names.find('|', p);
    if (bar == std::string_view::npos) bar = names.size();
    if (names.substr(p, bar - p) == key) return true;
    p = bar + 1;
  }
  return false;
}

}  // namespace

const std::vector<OptionDef>& option_table() { return kTable; }

bool parse_uint(std::string_view s, long long max, long long& out) {
  if (s.empty()) return false;
  long long v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0 || v > max) return false;
  out = v;
  return true;
}


const OptionDef* find_option(std::string_view key, bool has_val) {
  for (const OptionDef& d : kTable) {
    if (!has_name(d.names, key)) continue;
    // A bare word with a value, or a KEY=VALUE option without one, is no
    // option of ours: reported as unknown.
    if (d.arg == Arg::None && has_val) return nullptr;
    if (d.arg == Arg::KeyValue && !has_val) return nullptr;
    return &d;
  }
  // libfuse's other options, each with its reason (kFuseRules).
  static const OptionDef generic{"", Arg::Any, "", fuse_generic};
  for (const FuseRule& r : kFuseRules)
    if (has_name(r.names, key)) return &generic;
  return nullptr;
}

std::string option_help() {
  std::vector<std::string> ours, fuse;
  for (const OptionDef& d : kTable) {
    if (d.help.empty()) continue;
    if (d.help != "FUSE") {
      ours.emplace_back(d.help);
      continue;
    }
    // FUSE entries list their spellings (keys with a value as KEY=NAME).
    std::string_view n = d.names;
    for (size_t p = 0; p <= n.size();) {
      size_t bar = std::min(n.find('|', p), n.size());
      std::string w(n.substr(p, bar - p));
      fuse.push_back(d.arg == Arg::KeyValue ? w + "=NAME" : w);
      p = bar + 1;
    }
  }
  // Wrapped at 90 columns, continuation lines indented by two.
  std::string out, line = "Options:";
  auto add = [&](const std::string& w, bool last) {
    std::string item = w + (last ? "." : ",");
    if (line.size() + 1 + item.size() > 90) {
      out += line + "\n";
      line = " ";
    }
    line += " " + item;
  };
  for (size_t i = 0; i < ours.size(); ++i) add(ours[i], false);
  add("and FUSE options:", false);
  line.pop_back();  // "and FUSE options:" takes no comma
  for (size_t i = 0; i < fuse.size(); ++i) add(fuse[i], i + 1 == fuse.size());
  return out + line + "\n";
}

}  // namespace aufs
