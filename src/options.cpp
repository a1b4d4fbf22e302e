// SPDX-License-Identifier: GPL-2.0-or-later
#include "aufs_fuse/options.hpp"

#include "option_table.hpp"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <set>

namespace aufs {
namespace {

}  // namespace

std::string format_perm(const BranchSpec& b) {
  std::string s = b.perm == Perm::RW ? "rw" : b.perm == Perm::RO ? "ro" : "rr";
  if (b.wh) s += "+wh";
  if (b.nolwh) s += "+nolwh";
  if (b.ovl) s += "+ovl";
  if (b.shared) s += "+shared";
  if (b.coo == BranchSpec::Coo::Reg) s += "+coo_reg";
  if (b.coo == BranchSpec::Coo::All) s += "+coo_all";
  if (b.coo == BranchSpec::Coo::Move) s += "+moo";
  if ((b.icex & BranchSpec::kIcexAll) == BranchSpec::kIcexAll) {
    s += "+icex";
  } else {
    if (b.icex & BranchSpec::kIcexSec) s += "+icexsec";
    if (b.icex & BranchSpec::kIcexSys) s += "+icexsys";
    if (b.icex & BranchSpec::kIcexTr) s += "+icextr";
    if (b.icex & BranchSpec::kIcexUsr) s += "+icexusr";
    if (b.icex & BranchSpec::kIcexOth) s += "+icexoth";
  }
  return s;
}

std::string parse_branches(std::string_view list, bool read_only_mount,
                           std::vector<BranchSpec>& out,
                           std::vector<std::string>& notices) {
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t colon = list.find(':', pos);
    if (colon == std::string_view::npos) colon = list.size();
    std::string_view elem = list.substr(pos, colon - pos);
    pos = colon + 1;
    if (elem.empty()) break;  // AUFS: an empty element ends the list
    BranchSpec b;
    size_t eq = elem.find('=');
    b.path = std::string(elem.substr(0, eq));
    if (b.path.empty()) return "empty branch path in '" + std::string(elem) + "'";
    bool first = out.empty();
    b.perm = (first && !read_only_mount) ? Perm::RW : Perm::RO;
    if (eq != std::string_view::npos) {
      std::string_view spec = elem.substr(eq + 1);
      size_t plus = spec.find('+');
      std::string_view perm = spec.substr(0, plus);
      if (perm == "rw") b.perm = Perm::RW;
      else if (perm == "ro") b.perm = Perm::RO;
      else if (perm == "rr") b.perm = Perm::RR;
      else
        return "branch '" + b.path + "': unknown permission '" + std::string(perm) +
               "' (expected rw, ro or rr)";
      b.perm_given = true;
      while (plus != std::string_view::npos) {
        size_t next = spec.find('+', plus + 1);
        std::string_view attr = spec.substr(plus + 1, next == std::string_view::npos
                                                          ? std::string_view::npos
                                                          : next - plus - 1);
        plus = next;
        if (attr == "wh") {
          if (b.perm == Perm::RW)
            notices.push_back("branch '" + b.path + "': attribute 'wh' ignored on an rw branch");
          else
            b.wh = true;
        } else if (attr == "ovl") {
          if (b.perm == Perm::RW)
            notices.push_back("branch '" + b.path +
                              "': attribute 'ovl' ignored on an rw branch (writes are in AUFS format)");
          else
            b.ovl = true;
        } else if (attr == "shared") {
          if (b.perm != Perm::RW)
            notices.push_back("branch '" + b.path + "': attribute 'shared' ignored on a read-only branch");
          else
            b.shared = true;
        } else if (attr == "nolwh") {
          if (b.perm != Perm::RW)
            notices.push_back("branch '" + b.path + "': attribute 'nolwh' ignored on a read-only branch");
          else
            b.nolwh = true;
        } else if (attr == "unpin") {
          notices.push_back("branch '" + b.path + "': attribute 'unpin' is obsolete and ignored");
        } else if (attr == "coo_reg" || attr == "coo_all") {
          b.coo = attr == "coo_reg" ? BranchSpec::Coo::Reg : BranchSpec::Coo::All;  // last wins
        } else if (attr == "moo") {
          if (b.perm != Perm::RW)
            notices.push_back("branch '" + b.path + "': attribute 'moo' ignored on a read-only branch");
          else
            b.coo = BranchSpec::Coo::Move;
        } else if (attr == "icex" || attr == "icexsec" || attr == "icexsys" || attr == "icextr" ||
                   attr == "icexusr" || attr == "icexoth") {
          unsigned bit = attr == "icex" ? BranchSpec::kIcexAll
                         : attr == "icexsec" ? BranchSpec::kIcexSec
                         : attr == "icexsys" ? BranchSpec::kIcexSys
                         : attr == "icextr" ? BranchSpec::kIcexTr
                         : attr == "icexusr" ? BranchSpec::kIcexUsr : BranchSpec::kIcexOth;
          b.icex |= bit;
        } else if (attr == "fhsm") {
          return "branch '" + b.path + "': attribute 'fhsm' is not supported by this version";
        } else {
          return "branch '" + b.path + "': unknown attribute '" + std::string(attr) + "'";
        }
      }
    }
    out.push_back(std::move(b));
  }
  return {};
}

std::vector<std::string> split_options(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : s) {
    if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) {
      out.push_back(std::move(cur));
      cur.clear();
    } else cur += c;
  }
  out.push_back(std::move(cur));
  return out;
}

bool is_mount_helper_option(std::string_view k) {
  return k == "defaults" || k == "auto" || k == "noauto" || k == "nofail" || k == "_netdev" ||
         k == "user" || k == "users" || k == "nouser" || k == "owner" || k == "group" ||
         k == "remount" || k.starts_with("x-") || k.starts_with("comment=") ||
         k.starts_with("helper=");
}

std::string apply_option_string(MountOptions& o, std::string_view s) {
  for (const std::string& optstr : split_options(s)) {
    std::string_view opt = optstr;
    if (opt.empty()) continue;
    if (is_mount_helper_option(opt)) continue;  // for mount(8), not for us
    // "br:..." is the same as "br=..." (the first ':' of these keys).
    size_t eq = opt.find('=');
    size_t colon = opt.find(':');
    std::string_view key = opt.substr(0, eq);
    if (colon != std::string_view::npos && (eq == std::string_view::npos || colon < eq)) {
      std::string_view k2 = opt.substr(0, colon);
      if (k2 == "br" || k2 == "dirs" || k2 == "add" || k2 == "ins" || k2 == "append" ||
          k2 == "prepend" || k2 == "del" || k2 == "mod") {
        key = k2;
        eq = colon;
      }
    }
    bool has_val = eq != std::string_view::npos;
    OptionArg a{std::string(key), has_val ? opt.substr(eq + 1) : std::string_view{}, has_val, opt};
    const OptionDef* d = find_option(a.key, has_val);
    if (!d) return "unknown option '" + std::string(opt) + "'";
    if (d->arg == OptionDef::Arg::Required && !has_val) return "option '" + a.key + "' needs a value";
    if (auto e = d->apply(o, a); !e.empty()) return e;
  }
  return {};
}

ParseResult parse_command_line(const std::vector<std::string>& args) {
  ParseResult r;
  MountOptions& o = r.opts;
  std::vector<std::string> positional;
  std::vector<std::string> ostrings;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") o.show_help = true;
    else if (a == "-V" || a == "--version") o.show_version = true;
    else if (a == "-f") o.foreground = true;
    else if (a == "-d" || a == "--debug") { o.debug = true; o.foreground = true; }
    else if (a == "-s") o.single_thread = true;
    else if (a == "-o") {
      if (i + 1 >= args.size()) { r.error = "option '-o' needs a value"; return r; }
      ostrings.push_back(args[++i]);
    } else if (a.starts_with("-o")) ostrings.push_back(a.substr(2));
    else if (a.starts_with("--threads=")) ostrings.push_back("threads=" + a.substr(10));
    else if (a.size() > 1 && a[0] == '-') { r.error = "unknown option '" + a + "'"; return r; }
    else positional.push_back(a);
  }
  if (o.show_help || o.show_version) return r;
  // "ro" decides the default permission of the first branch, so look for it
  // before the branch list is parsed.
  for (auto& s : ostrings) {
    size_t p = 0;
    while (p <= s.size()) {
      size_t c = s.find(',', p);
      if (c == std::string::npos) c = s.size();
      std::string_view t(s.data() + p, c - p);
      if (t == "ro") o.read_only = true;
      if (t == "rw") o.read_only = false;
      p = c + 1;
    }
  }
  // mount(8) style SOURCE holding the branch list: it is the base that
  // branch edits in -o apply to, unless -o gives the branches itself.
  if (positional.size() == 2 && positional[0] != "none" && !positional[0].empty()) {
    bool explicit_br = false;
    for (auto& s : ostrings)
      for (auto& t : split_options(s)) {
        std::string_view k(t);
        k = k.substr(0, k.find_first_of(":="));
        if (k == "br" || k == "dirs" || k == "lowerdir" || k == "upperdir") explicit_br = true;
      }
    if (!explicit_br) {
      std::string e = parse_branches(positional[0], o.read_only, o.branches, o.notices);
      if (!e.empty()) { r.error = e; return r; }
    }
  }
  for (auto& s : ostrings) {
    std::string e = apply_option_string(o, s);
    if (!e.empty()) { r.error = e; return r; }
  }
  if (positional.empty()) { r.error = "no mount point given"; return r; }
  if (positional.size() > 2) {
    r.error = "too many arguments: '" + positional[2] + "' (expected [SOURCE] MOUNTPOINT)";
    return r;
  }
  if (!o.ovl_lower.empty() || !o.ovl_upper.empty()) {
    if (o.ovl_lower.empty()) { r.error = "upperdir= needs lowerdir="; return r; }
    // upperdir=u,lowerdir=a:b  ->  br=u=rw:a=ro+wh+ovl:b=ro+wh+ovl: lower
    // layers written by overlayfs keep their whiteouts and opaque markers.
    std::string list;
    if (!o.ovl_upper.empty()) list = o.ovl_upper + "=rw";
    else o.read_only = true;  // like overlayfs without an upper layer
    size_t p = 0;
    while (p <= o.ovl_lower.size()) {
      size_t c = o.ovl_lower.find(':', p);
      if (c == std::string::npos) c = o.ovl_lower.size();
      std::string l = o.ovl_lower.substr(p, c - p);
      p = c + 1;
      if (l.empty()) continue;
      if (!list.empty()) list += ":";
      list += l + "=ro+wh+ovl";
    }
    std::string e = parse_branches(list, o.read_only, o.branches, o.notices);
    if (!e.empty()) { r.error = e; return r; }
    if (!o.ovl_work.empty()) o.notices.push_back("workdir= is not needed and is ignored");
  }
  // mount(8)/mount.fuse3 style: SOURCE MOUNTPOINT. A SOURCE other than
  // "none" without br= is taken as the branch list (handy in fstab).
  o.mountpoint = positional.back();
  if (positional.size() == 2) {
    o.source = positional[0];
  }
  if (o.branches.empty()) { r.error = "no branches (use -o br=DIR[=PERM]:DIR...)"; return r; }
  if (o.shwh && !o.read_only) {
    r.error = "shwh shows whiteouts and is only allowed on read-only mounts (add ro)";
    return r;
  }
  return r;
}

std::string parse_branch_ops(std::string_view s, bool read_only_mount, std::vector<BranchOp>& out) {
  for (const std::string& optstr : split_options(s)) {
    std::string_view opt = optstr;
    if (opt.empty() || is_mount_helper_option(opt)) continue;
    if (opt == "ro" || opt == "rw") {
      BranchOp m;
      m.kind = opt == "ro" ? BranchOp::Kind::SetRo : BranchOp::Kind::SetRw;
      out.push_back(m);
      continue;
    }
    size_t sep = opt.find_first_of(":=");
    std::string key(opt.substr(0, sep));
    if (sep == std::string_view::npos) return "option '" + key + "' cannot be changed by remount";
    std::string_view val = opt.substr(sep + 1);
    BranchOp op;
    std::vector<std::string> notes;
    if (key == "add" || key == "ins") {
      size_t c = val.find_first_of(":=");
      if (c == std::string_view::npos) return "'" + std::string(opt) + "': expected " + key + ":INDEX:PATH";
      long long idx = 0;
      std::string_view num = val.substr(0, c);
      bool neg = num.starts_with("-");
      if (!parse_uint(neg ? num.substr(1) : num, 1 << 20, idx))
        return "'" + std::string(opt) + "': bad branch index '" + std::string(num) + "'";
      op.index = neg ? -2 : idx;  // a negative index is refused later (EDOM)
      val = val.substr(c + 1);
    } else if (key == "append") {
      op.index = -1;
    } else if (key == "prepend") {
      op.index = 0;
    } else if (key == "del") {
      op.kind = BranchOp::Kind::Del;
    } else if (key == "mod") {
      op.kind = BranchOp::Kind::Mod;
    } else {
      return "option '" + key + "' cannot be changed by remount";
    }
    if (op.kind == BranchOp::Kind::Del) {
      if (val.empty()) return "'del': no path";
      op.spec.path = std::string(val);
    } else {
      std::vector<BranchSpec> one;
      // Default permission as AUFS: rw only when inserted at index 0.
      bool top = op.kind == BranchOp::Kind::Add && op.index == 0;
      if (!top) one.push_back(BranchSpec{});  // makes parse_branches default to ro
      std::string e = parse_branches(val, read_only_mount, one, notes);
      if (!e.empty()) return e;
      if (one.size() != (top ? 1u : 2u)) return "'" + std::string(opt) + "': exactly one branch expected";
      op.spec = one.back();
      if (op.kind == BranchOp::Kind::Mod && !op.spec.perm_given)
        return "'mod:" + op.spec.path + "': a permission is required (mod:PATH=PERM)";
    }
    out.push_back(std::move(op));
  }
  return {};
}

std::string format_branch_ops(const std::vector<BranchOp>& ops) {
  std::string out;
  for (auto& op : ops) {
    if (!out.empty()) out += ',';
    std::string perm = op.spec.perm_given ? "=" + format_perm(op.spec) : "";
    switch (op.kind) {
      case BranchOp::Kind::Add:
        out += op.index == -1 ? "append:" + op.spec.path + perm
                              : "add:" + std::to_string(op.index) + ":" + op.spec.path + perm;
        break;
      case BranchOp::Kind::Del: out += "del:" + op.spec.path; break;
      case BranchOp::Kind::Mod: out += "mod:" + op.spec.path + perm; break;
      case BranchOp::Kind::SetRo: out += "ro"; break;
      case BranchOp::Kind::SetRw: out += "rw"; break;
    }
  }
  return out;
}

void absolutize_ops(std::vector<BranchOp>& ops) {
  char cwd[PATH_MAX];
  if (!::getcwd(cwd, sizeof cwd)) return;
  for (auto& op : ops) {
    if (op.kind == BranchOp::Kind::SetRo || op.kind == BranchOp::Kind::SetRw) continue;
    if (op.spec.path.empty() || op.spec.path[0] == '/') continue;
    char buf[PATH_MAX];
    if (::realpath(op.spec.path.c_str(), buf)) op.spec.path = buf;
    else op.spec.path = std::string(cwd) + "/" + op.spec.path;
  }
}

std::string absolutize_request(std::string_view s, std::string& error) {
  std::string out;
  for (const std::string& item : split_options(s)) {
    if (item.empty()) continue;
    std::string key = item.substr(0, item.find_first_of(":="));
    std::string sent = item;
    if (key == "add" || key == "ins" || key == "append" || key == "prepend" || key == "del" ||
        key == "mod") {
      std::vector<BranchOp> ops;
      if (error = parse_branch_ops("\"" + item + "\"", false, ops); !error.empty()) return {};
      absolutize_ops(ops);  // the daemon does not share our cwd
      sent = format_branch_ops(ops);
    }
    if (!out.empty()) out += ',';
    out += sent.find(',') == std::string::npos ? sent : "\"" + sent + "\"";
  }
  return out;
}

namespace {

bool is_under(const std::string& child, const std::string& parent) {
  if (parent == "/") return child != "/";
  return child.size() > parent.size() && child.compare(0, parent.size(), parent) == 0 &&
         child[parent.size()] == '/';
}

}  // namespace

BranchDirCheck check_branch_dir(const std::string& given, const std::vector<BranchDir>& others,
                                const std::string& mnt, bool may_be_mountpoint) {
  BranchDirCheck c;
  auto fail = [&](int e, const std::string& why) {
    c.errnum = e;
    c.error = "branch '" + given + "': " + why;
    return c;
  };
  char buf[PATH_MAX];
  if (!::realpath(given.c_str(), buf)) return fail(errno, std::strerror(errno));
  struct stat st;
  if (::stat(buf, &st) < 0) return fail(errno, std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return fail(ENOTDIR, "not a directory");
  BranchDir d{buf, st.st_dev, st.st_ino};
  for (size_t j = 0; j < others.size(); ++j) {
    const BranchDir& o = others[j];
    if ((o.dev == d.dev && o.ino == d.ino) || o.path == d.path) {
      if (c.duplicate_of < 0) c.duplicate_of = static_cast<long>(j);
    } else if (is_under(d.path, o.path) || is_under(o.path, d.path)) {
      return fail(EINVAL, "overlaps branch '" + o.path + "' (one lies inside the other)");
    }
  }
  if (!mnt.empty()) {
    if (d.path == mnt && !may_be_mountpoint)
      return fail(EINVAL, "is the mount point (a live branch change cannot reach the directory "
                          "under a mount)");
    if (is_under(d.path, mnt)) return fail(EINVAL, "lies under the mount point");
    if (is_under(mnt, d.path)) return fail(EINVAL, "contains the mount point");
  }
  c.dir = std::move(d);
  return c;
}

std::string check_writable_dir(const std::string& path) {
  struct statvfs sv;
  if (::statvfs(path.c_str(), &sv) == 0) {
    if (sv.f_flag & ST_RDONLY) return "rw requested but its filesystem is read-only";
    if (sv.f_namemax < 255)
      return "rw branch filesystem allows only " + std::to_string(sv.f_namemax) +
             "-byte names (255 needed)";
  }
  if (::access(path.c_str(), W_OK) < 0)
    return std::string("rw requested but not writable: ") + std::strerror(errno);
  return {};
}

std::string validate_options(MountOptions& o) {
  auto bad_mountpoint = [&](int e) {
    if (e == ENOTCONN)  // a FUSE mount whose daemon is gone
      return "mount point '" + o.mountpoint + "': a stale FUSE mount (its daemon is gone); " +
             "clear it with 'umount " + o.mountpoint + "'";
    return "mount point '" + o.mountpoint + "': " + std::strerror(e);
  };
  char buf[PATH_MAX];
  if (!::realpath(o.mountpoint.c_str(), buf)) return bad_mountpoint(errno);
  std::string mnt = buf;
  struct stat mst;
  if (::stat(mnt.c_str(), &mst) < 0) return bad_mountpoint(errno);
  if (!S_ISDIR(mst.st_mode)) return "mount point '" + o.mountpoint + "': not a directory";
  o.mountpoint = mnt;

  std::vector<BranchDir> dirs;
  for (size_t i = 0; i < o.branches.size(); ++i) {
    BranchSpec& b = o.branches[i];
    std::string given = b.path;
    BranchDirCheck c = check_branch_dir(given, dirs, mnt, true);
    if (!c.error.empty()) return c.error;
    if (c.duplicate_of >= 0)
      return "branch '" + given + "': duplicated (same directory as branch " +
             std::to_string(c.duplicate_of) + ")";
    b.path = c.dir.path;
    dirs.push_back(std::move(c.dir));
    if (b.writable() && !o.read_only) {
      if (auto e = check_writable_dir(b.path); !e.empty()) return "branch '" + given + "': " + e;
    }
  }
  if (!o.read_only && !o.branches[0].writable())
    o.notices.push_back("first branch should be rw");
  if (o.warn_perm) {
    struct stat s0;
    if (::stat(o.branches[0].path.c_str(), &s0) == 0) {
      for (size_t i = 1; i < o.branches.size(); ++i) {
        struct stat s;
        if (::stat(o.branches[i].path.c_str(), &s) == 0 &&
            (s.st_uid != s0.st_uid || s.st_gid != s0.st_gid ||
             (s.st_mode & 07777) != (s0.st_mode & 07777)))
          o.notices.push_back("branch '" + o.branches[i].path +
                              "': owner, group or mode differs from branch 0");
      }
    }
  }
  return {};
}

std::string usage_text(std::string_view prog) {
  std::string p(prog);
  return "usage: " + p + " [-f] [-d] [-s] -o br=DIR[=PERM]:DIR[=PERM]...[,OPTIONS] MOUNTPOINT\n"
         "       " + p + " [OPTIONS] SOURCE MOUNTPOINT   (mount(8) style; SOURCE \"none\" or a branch list)\n"
         "\n"
         "AUFS-style union mount over FUSE.\n"
         "\n"
         "  -f                 stay in the foreground\n"
         "  -d                 debug: foreground and log every request\n"
         "  -s                 single-threaded\n"
         "  -h, --help         this text\n"
         "  -V, --version      print the version\n"
         "\n"
         "Branches (br=, br:, dirs=): DIR[=PERM[+ATTR]] joined by ':', top first.\n"
         "  PERM: rw (first branch default), ro (others), rr.  ATTR: wh (ro/rr), ovl (ro/rr), nolwh (rw),\n"
         "  moo (rw), shared (rw), coo_reg, coo_all, icex, icexsec, icexsys, icextr, icexusr, icexoth.\n"
         "Branch edits (applied in order): add:N:DIR[=PERM], ins:N:DIR, append:DIR, prepend:DIR,\n"
         "  del:DIR, mod:DIR=PERM.  Overlay style: lowerdir=A:B,upperdir=U[,workdir=W].\n"
         + option_help() +
         "See aufs-fuse(8).\n";
}

}  // namespace aufs
