// SPDX-License-Identifier: GPL-2.0-or-later
// aufsctl: inspect and change a running aufs-fuse mount through its control
// file (the /sys/fs/aufs/si_*/br* view of kernel AUFS, plus live counters).
#include <errno.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aufs_fuse/control.hpp"
#include "aufs_fuse/options.hpp"
#include "aufs_fuse/version.hpp"
#include "control_client.hpp"

namespace {

using Json = nlohmann::json;

// A value of the daemon's JSON as text (numbers without a fraction).
std::string str(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number()) return v.dump();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  return "";
}

// The daemon's answer, or null (discarded) when it is not JSON.
Json parse(const std::string& raw) { return Json::parse(raw, nullptr, false); }

int usage(FILE* f) {
  std::fputs(
      "usage: aufsctl MNT [list] [--json]        branches, options, counters\n"
      "       aufsctl MNT which PATH [--json]    which branch serves PATH\n"
      "       aufsctl MNT stats [--reset] [--json]  FUSE requests per opcode\n"
      "       aufsctl MNT append DIR[=PERM]      add a bottom branch\n"
      "       aufsctl MNT prepend DIR[=PERM]     add a top branch\n"
      "       aufsctl MNT add INDEX DIR[=PERM]   insert a branch at INDEX\n"
      "       aufsctl MNT del DIR                remove a branch\n"
      "       aufsctl MNT mod DIR=PERM           change a branch's permission\n"
      "       aufsctl MNT remount OPS            several changes, AUFS remount syntax\n"
      "See aufsctl(8).\n",
      f);
  return f == stderr ? 2 : 0;
}

int fail(const std::string& m) {
  std::fprintf(stderr, "aufsctl: %s\n", m.c_str());
  return 1;
}

bool get(const std::string& path, const std::string& key, std::string& out) {
  ssize_t n = ::getxattr(path.c_str(), key.c_str(), nullptr, 0);
  if (n < 0) return false;
  out.resize(static_cast<size_t>(n) + 4096);
  n = ::getxattr(path.c_str(), key.c_str(), out.data(), out.size());
  if (n < 0) return false;
  out.resize(static_cast<size_t>(n));
  return true;
}

std::string ctl_path(const std::string& mnt) { return mnt + "/" + std::string(aufs::kControlName); }

// PATH as a path below the mount's root: relative ones are taken from MNT,
// absolute ones must lie inside it (its directory part resolved through the
// mount; the last name is kept, as it may be whited out). Sets `why` when
// PATH is outside the mount or its root.
std::string inside_mount(const std::string& mnt, const std::string& path, std::string& why) {
  std::string p = path;
  if (!p.empty() && p[0] == '/') {
    char mbuf[PATH_MAX], dbuf[PATH_MAX];
    if (!::realpath(mnt.c_str(), mbuf)) {
      why = aufs::ctl::not_a_mount(mnt, errno);
      return {};
    }
    std::string m = mbuf;
    if (char pbuf[PATH_MAX]; ::realpath(p.c_str(), pbuf) && m == pbuf) {
      why = "the mount's root itself; name an entry inside it";
      return {};
    }
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    std::string dir = p.substr(0, p.rfind('/'));
    std::string last = p.substr(p.rfind('/') + 1);
    if (!::realpath(dir.empty() ? "/" : dir.c_str(), dbuf)) {
      why = std::strerror(errno);
      return {};
    }
    std::string d = dbuf;
    if (d != m && !(d.starts_with(m) && (m == "/" || d[m.size()] == '/'))) {
      why = "not inside the mount " + m;
      return {};
    }
    p = (d.size() > m.size() ? d.substr(m == "/" ? 1 : m.size() + 1) + "/" : "") + last;
  }
  // Relative to the root: "." and ".." are resolved by name, never above it.
  std::vector<std::string> parts;
  for (size_t pos = 0; pos <= p.size();) {
    size_t end = std::min(p.find('/', pos), p.size());
    std::string c = p.substr(pos, end - pos);
    pos = end + 1;
    if (c.empty() || c == ".") continue;
    if (c != "..") {
      parts.push_back(c);
    } else if (parts.empty()) {
      why = "not inside the mount " + mnt;
      return {};
    } else {
      parts.pop_back();
    }
  }
  if (parts.empty()) {
    why = "the mount's root itself; name an entry inside it";
    return {};
  }
  std::string out;
  for (auto& c : parts) out += (out.empty() ? "" : "/") + c;
  return out;
}

// The counts, then (--reset) zero them: requests between the two go
// uncounted.
int stats(const std::string& mnt, bool json, bool reset, size_t nargs) {
  if (nargs != 2) return usage(stderr);
  std::string raw;
  if (!get(ctl_path(mnt), std::string(aufs::kXattrStats), raw)) {
    if (errno == ENODATA) return fail(mnt + ": this daemon does not count requests");
    return fail(mnt + ": not an aufs-fuse mount (" + std::strerror(errno) + ")");
  }
  if (json) {
    std::printf("%s\n", raw.c_str());
  } else {
    Json j = parse(raw);
    if (!j.is_object() || !j["requests"].is_object()) return fail("cannot parse the daemon's answer");
    unsigned long long total = 0;
    for (auto& [k, v] : j["requests"].items()) total += v.get<unsigned long long>();
    std::printf("requests: %llu\n", total);
    for (auto& [k, v] : j["requests"].items())
      if (v.get<unsigned long long>() != 0) std::printf("  %-16s %s\n", k.c_str(), str(v).c_str());
  }
  if (reset) {
    const char v[] = "reset";
    if (::setxattr(ctl_path(mnt).c_str(), std::string(aufs::kXattrStats).c_str(), v, sizeof v - 1, 0) != 0) {
      int e = errno;
      if (e == EPERM || e == EACCES) return fail(mnt + ": only root or the mount's owner may reset the counts");
      return fail(mnt + ": reset: " + std::strerror(e));
    }
  }
  return 0;
}
// The kernel features the mount uses, each off one with its reason.
void print_fuse(const Json& f) {
  if (!f.is_object()) return;
  std::printf("libfuse: %s\n", str(f["libfuse"]).c_str());
  for (auto& [name, v] : f.items()) {
    if (!v.is_object()) continue;
    if (name == "readdirplus") {  // a choice, not a kernel feature
      std::printf("readdirplus: mode %s; replies with attributes %s, names only %s; callers "
                  "switched to attributes %s\n",
                  str(v["mode"]).c_str(), str(v["replies_with_attributes"]).c_str(),
                  str(v["replies_names_only"]).c_str(),
                  str(v["callers_switched_to_attributes"]).c_str());
      continue;
    }
    std::string line = name + ": " + (v.value("active", false) ? "active" : "off: " + str(v["why"]));
    if (v.contains("counters")) {
      const Json& c = v["counters"];
      line += "; mode " + str(c["mode"]) + ", opens " + str(c["opens"]) + ", fallbacks " +
              str(c["fallbacks"]) + ", refused " + str(c["refused"]) + ", not eligible " +
              str(c["ineligible"]) + ", conflicts " + str(c["conflicts"]);
    }
    std::printf("%s\n", line.c_str());
  }
}


}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args;
  bool json = false, reset = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a == "--reset") reset = true;
    else if (a == "-h" || a == "--help") return usage(stdout);
    else if (a == "-V" || a == "--version") { std::printf("aufsctl %s\n", AUFS_FUSE_VERSION); return 0; }
    else args.push_back(a);
  }
  if (args.empty()) return usage(stderr);
  std::string mnt = args[0];
  std::string cmd = args.size() > 1 ? args[1] : "list";
  if (reset && cmd != "stats") return usage(stderr);
  if (cmd == "stats") return stats(mnt, json, reset, args.size());
  if (cmd == "list" || cmd == "info") {
    std::string raw;
    if (!get(aufs::ctl::control_path(mnt), std::string(aufs::kXattrInfo), raw))
      return fail(aufs::ctl::not_a_mount(mnt, errno));
    if (json) { std::printf("%s\n", raw.c_str()); return 0; }
    Json j = parse(raw);
    if (!j.is_object()) return fail("cannot parse the daemon's answer");
    std::printf("mount point: %s\n", str(j["mountpoint"]).c_str());
    for (auto& b : j["branches"]) {
      std::printf("br%s\tbrid%s\t%s=%s", str(b["index"]).c_str(), str(b["id"]).c_str(),
                  str(b["path"]).c_str(), str(b["perm"]).c_str());
      if (b.contains("watched") && str(b["watched"]).starts_with("no:"))
        std::printf("\t(watched: %s)", str(b["watched"]).c_str());
      std::printf("\n");
    }
    std::printf("xino: %s\noptions: %s\n", str(j["xino"]).c_str(), str(j["options"]).c_str());
    if (j.contains("udba")) {
      const Json& u = j["udba"];
      std::printf("udba: %s%s", str(u["mode"]).c_str(), u.value("default", false) ? " (default)" : "");
      if (u.contains("fallback")) std::printf(", notify unavailable: %s", str(u["fallback"]).c_str());
      std::printf("\n");
    }
    const Json& c = j["counters"];
    std::printf("inodes: %s  open files: %s  copy-ups: %s (%s bytes)  whiteouts: %s  branch changes: %s\n",
                str(c["inodes"]).c_str(), str(c["open_files"]).c_str(), str(c["copyups"]).c_str(),
                str(c["copyup_bytes"]).c_str(), str(c["whiteouts"]).c_str(),
                str(c["branch_changes"]).c_str());
    // Caches that move with every lookup, after the counters.
    if (j.contains("udba") && j["udba"].contains("watches"))
      std::printf("inotify watches: %s (%s refused)  ", str(j["udba"]["watches"]).c_str(),
                  str(j["udba"]["watch_failures"]).c_str());
    if (j.contains("dir_parts")) {
      const Json& d = j["dir_parts"];
      std::printf("directory parts: %s/%s fds, %s name sets (%s/%s bytes)", str(d["fds"]).c_str(),
                  str(d["fd_budget"]).c_str(), str(d["name_sets"]).c_str(),
                  str(d["name_set_bytes"]).c_str(), str(d["name_set_budget"]).c_str());
    }
    std::printf("\n");
    print_fuse(j["fuse"]);
    return 0;
  }
  if (cmd == "which") {
    if (args.size() != 3) return usage(stderr);
    std::string p = args[2], why;
    std::string rel = inside_mount(mnt, p, why);
    if (!why.empty()) return fail(p + ": " + why);
    auto slash = rel.rfind('/');
    std::string dir = slash == std::string::npos ? "" : rel.substr(0, slash);
    std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
    std::string raw;
    std::string target = mnt + (dir.empty() ? "" : "/" + dir);
    if (!get(target, std::string(aufs::kXattrWhichPrefix) + name, raw))
      return fail(p + ": " + std::strerror(errno));
    if (json) { std::printf("%s\n", raw.c_str()); return 0; }
    Json j = parse(raw);
    if (!j.is_object()) return fail("cannot parse the daemon's answer");
    bool visible = j.value("visible", false);
    if (visible) {
      std::printf("%s: %s on br%s (brid%s, %s)%s\n", str(j["name"]).c_str(), str(j["type"]).c_str(),
                  str(j["branch"]).c_str(), str(j["brid"]).c_str(), str(j["branch_path"]).c_str(),
                  j.value("copied_up", false) ? ", copied up" : "");
    } else if (j.contains("whiteout_branch")) {
      std::printf("%s: whited out on br%s\n", str(j["name"]).c_str(), str(j["whiteout_branch"]).c_str());
    } else {
      std::printf("%s: not present\n", str(j["name"]).c_str());
    }
    return visible ? 0 : 1;
  }
  std::string ops;
  if (cmd == "append" || cmd == "prepend" || cmd == "del" || cmd == "mod") {
    if (args.size() != 3) return usage(stderr);
    ops = cmd + ":" + args[2];
  } else if (cmd == "add") {
    if (args.size() != 4) return usage(stderr);
    ops = "add:" + args[2] + ":" + args[3];
  } else if (cmd == "remount") {
    if (args.size() != 3) return usage(stderr);
    ops = args[2];
  } else {
    return usage(stderr);
  }
  std::string e;
  ops = aufs::absolutize_request(ops, e);
  if (!e.empty()) return fail(e);
  struct stat st;
  if (::lstat(aufs::ctl::control_path(mnt).c_str(), &st) != 0)
    return fail(aufs::ctl::not_a_mount(mnt, errno));
  auto r = aufs::ctl::request(mnt, aufs::kXattrRemount, ops);
  if (r.err == EACCES) return fail(mnt + ": only root or the mount's owner may change branches");
  if (r.err) return fail(mnt + ": " + r.reason);
  if (!r.reason.empty()) std::fprintf(stderr, "aufsctl: %s: %s\n", mnt.c_str(), r.reason.c_str());
  return 0;
}
