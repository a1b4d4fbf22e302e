// aufsctl: inspect and change a running aufs-fuse mount through its control
// file (the /sys/fs/aufs/si_*/br* view of kernel AUFS, plus live counters).
#include <errno.h>
#include <sys/xattr.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "aufs_fuse/options.hpp"
#include "aufs_fuse/version.hpp"

namespace {

// A small JSON reader, enough for the daemon's own output.
struct J {
  enum T { Null, Bool, Num, Str, Arr, Obj } t = Null;
  bool b = false;
  double n = 0;
  std::string s;
  std::vector<J> a;
  std::map<std::string, J> o;
  const J& operator[](const std::string& k) const {
    static const J none;
    auto it = o.find(k);
    return it == o.end() ? none : it->second;
  }
  std::string str() const {
    if (t == Str) return s;
    if (t == Num) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.0f", n);
      return buf;
    }
    if (t == Bool) return b ? "yes" : "no";
    return "";
  }
};

struct Parser {
  const std::string& in;
  size_t p = 0;
  void ws() { while (p < in.size() && std::strchr(" \t\r\n", in[p])) ++p; }
  bool parse(J& v) {
    ws();
    if (p >= in.size()) return false;
    char c = in[p];
    if (c == '{') {
      v.t = J::Obj;
      ++p;
      ws();
      if (p < in.size() && in[p] == '}') { ++p; return true; }
      for (;;) {
        J k;
        if (!parse(k) || k.t != J::Str) return false;
        ws();
        if (p >= in.size() || in[p++] != ':') return false;
        if (!parse(v.o[k.s])) return false;
        ws();
        if (p < in.size() && in[p] == ',') { ++p; continue; }
        if (p < in.size() && in[p] == '}') { ++p; return true; }
        return false;
      }
    }
    if (c == '[') {
      v.t = J::Arr;
      ++p;
      ws();
      if (p < in.size() && in[p] == ']') { ++p; return true; }
      for (;;) {
        v.a.emplace_back();
        if (!parse(v.a.back())) return false;
        ws();
        if (p < in.size() && in[p] == ',') { ++p; continue; }
        if (p < in.size() && in[p] == ']') { ++p; return true; }
        return false;
      }
    }
    if (c == '"') {
      v.t = J::Str;
      ++p;
      while (p < in.size() && in[p] != '"') {
        if (in[p] == '\\' && p + 1 < in.size()) {
          char e = in[++p];
          if (e == 'u' && p + 4 < in.size()) {
            v.s += static_cast<char>(std::stoi(in.substr(p + 1, 4), nullptr, 16));
            p += 4;
          } else v.s += e == 'n' ? '\n' : e == 't' ? '\t' : e;
          ++p;
        } else v.s += in[p++];
      }
      ++p;
      return true;
    }
    if (in.compare(p, 4, "true") == 0) { v.t = J::Bool; v.b = true; p += 4; return true; }
    if (in.compare(p, 5, "false") == 0) { v.t = J::Bool; p += 5; return true; }
    if (in.compare(p, 4, "null") == 0) { p += 4; return true; }
    size_t end;
    v.t = J::Num;
    v.n = std::stod(in.substr(p), &end);
    p += end;
    return true;
  }
};

int usage(FILE* f) {
  std::fputs(
      "usage: aufsctl MNT [list] [--json]        branches, options, counters\n"
      "       aufsctl MNT which PATH [--json]    which branch serves PATH\n"
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

std::string ctl_path(const std::string& mnt) { return mnt + "/" + std::string(aufs::kControlNameForTools); }

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a == "-h" || a == "--help") return usage(stdout);
    else if (a == "-V" || a == "--version") { std::printf("aufsctl %s\n", AUFS_FUSE_VERSION); return 0; }
    else args.push_back(a);
  }
  if (args.empty()) return usage(stderr);
  std::string mnt = args[0];
  std::string cmd = args.size() > 1 ? args[1] : "list";
  if (cmd == "list" || cmd == "info") {
    std::string raw;
    if (!get(ctl_path(mnt), "user.aufs.info", raw))
      return fail(mnt + ": not an aufs-fuse mount (" + std::strerror(errno) + ")");
    if (json) { std::printf("%s\n", raw.c_str()); return 0; }
    J j;
    Parser ps{raw};
    if (!ps.parse(j)) return fail("cannot parse the daemon's answer");
    std::printf("mount point: %s\n", j["mountpoint"].str().c_str());
    for (auto& b : j["branches"].a)
      std::printf("br%s\tbrid%s\t%s=%s\n", b["index"].str().c_str(), b["id"].str().c_str(),
                  b["path"].str().c_str(), b["perm"].str().c_str());
    std::printf("xino: %s\noptions: %s\n", j["xino"].str().c_str(), j["options"].str().c_str());
    const J& c = j["counters"];
    std::printf("inodes: %s  open files: %s  copy-ups: %s (%s bytes)  whiteouts: %s  branch changes: %s\n",
                c["inodes"].str().c_str(), c["open_files"].str().c_str(), c["copyups"].str().c_str(),
                c["copyup_bytes"].str().c_str(), c["whiteouts"].str().c_str(),
                c["branch_changes"].str().c_str());
    return 0;
  }
  if (cmd == "which") {
    if (args.size() != 3) return usage(stderr);
    std::string p = args[2];
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    auto slash = p.rfind('/');
    std::string dir = slash == std::string::npos ? "" : p.substr(0, slash);
    std::string name = slash == std::string::npos ? p : p.substr(slash + 1);
    std::string raw;
    std::string target = mnt + (dir.empty() ? "" : "/" + dir);
    if (!get(target, "user.aufs.which/" + name, raw))
      return fail(p + ": " + std::strerror(errno));
    if (json) { std::printf("%s\n", raw.c_str()); return 0; }
    J j;
    Parser ps{raw};
    if (!ps.parse(j)) return fail("cannot parse the daemon's answer");
    if (j["visible"].b) {
      std::printf("%s: %s on br%s (brid%s, %s)%s\n", j["name"].str().c_str(), j["type"].str().c_str(),
                  j["branch"].str().c_str(), j["brid"].str().c_str(), j["branch_path"].str().c_str(),
                  j["copied_up"].b ? ", copied up" : "");
    } else if (j["whiteout_branch"].t == J::Num) {
      std::printf("%s: whited out on br%s\n", j["name"].str().c_str(), j["whiteout_branch"].str().c_str());
    } else {
      std::printf("%s: not present\n", j["name"].str().c_str());
    }
    return j["visible"].b ? 0 : 1;
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
  std::vector<aufs::BranchOp> parsed;
  if (auto e = aufs::parse_branch_ops(ops, false, parsed); !e.empty()) return fail(e);
  aufs::absolutize_ops(parsed);  // the daemon does not share our cwd
  ops = aufs::format_branch_ops(parsed);
  if (::setxattr(ctl_path(mnt).c_str(), "user.aufs.remount", ops.data(), ops.size(), 0) != 0) {
    int e = errno;
    if (e == EPERM || e == EACCES) return fail(mnt + ": only root or the mount's owner may change branches");
    return fail(mnt + ": " + ops + ": " + std::strerror(e));
  }
  return 0;
}
