// SPDX-License-Identifier: GPL-2.0-or-later
#include "container_support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace aufs::ct {

using namespace aufs::mt;

std::optional<std::string> which(const std::string& prog) {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin";
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t c = path.find(':', pos);
    if (c == std::string::npos) c = path.size();
    std::string dir = path.substr(pos, c - pos);
    pos = c + 1;
    if (dir.empty()) continue;
    std::string full = dir + "/" + prog;
    if (::access(full.c_str(), X_OK) == 0) return full;
  }
  return std::nullopt;
}

std::string make_busybox_root(const std::string& dir) {
  auto bb = which("busybox");
  if (!bb) return "busybox not found";
  for (const char* d : {"bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc"})
    mkdirs(dir + "/" + d);
  auto r = run({"cp", *bb, dir + "/bin/busybox"});
  if (!r.ok()) return "cp busybox: " + r.err;
  // A static binary: the links must point to /bin/busybox inside the root,
  // so --install runs chrooted.
  r = run({"chroot", dir, "/bin/busybox", "--install", "-s"});
  if (!r.ok()) return "busybox --install -s: " + r.err;
  if (!write_file(dir + "/etc/passwd",
                  "root:x:0:0:root:/root:/bin/sh\n"
                  "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
    return "write passwd";
  if (!write_file(dir + "/etc/group", "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"))
    return "write group";
  if (!write_file(dir + "/etc/shadow", "root:*:19000:0:99999:7:::\n", 0640)) return "shadow";
  if (!write_file(dir + "/etc/motd", "Welcome to the busybox image layer.\n")) return "motd";
  mkdirs(dir + "/tmp");
  if (::chmod((dir + "/tmp").c_str(), 01777) < 0) return "chmod tmp";
  if (::mknod((dir + "/dev/null").c_str(), S_IFCHR | 0666, ::makedev(1, 3)) < 0 ||
      ::mknod((dir + "/dev/zero").c_str(), S_IFCHR | 0666, ::makedev(1, 5)) < 0)
    return "mknod: " + errname(errno);
  ::chmod((dir + "/dev/null").c_str(), 0666);
  ::chmod((dir + "/dev/zero").c_str(), 0666);
  return "";
}

RunResult in_namespace(const std::string& script, int timeout_ms) {
  return run({"unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
              "/bin/sh", "-c", script},
             "", timeout_ms);
}

std::string sh_start_daemon(const std::string& bin, const std::string& opts,
                            const std::string& mnt, const std::string& log) {
  std::ostringstream s;
  s << q(bin) << " -f -o " << q(opts) << " " << q(mnt) << " 2>>" << q(log) << " &\n"
    << "DPID=$!\n"
    << "i=0\n"
    << "until mountpoint -q " << q(mnt) << "; do\n"
    << "  i=$((i+1)); if [ $i -gt 400 ] || ! kill -0 $DPID 2>/dev/null; then\n"
    << "    echo 'daemon did not mount' >&2; exit 90; fi\n"
    << "  sleep 0.025\n"
    << "done\n";
  return s.str();
}

std::string sh_stop_daemon(const std::string& mnt) {
  std::ostringstream s;
  s << "umount " << q(mnt) << " || umount -l " << q(mnt) << "\n"
    << "wait $DPID; DRC=$?\n";
  return s.str();
}

std::vector<std::string> log_errors(const std::string& log_path) {
  std::vector<std::string> out;
  std::istringstream in(read_file(log_path));
  std::string line;
  while (std::getline(in, line)) {
    std::string l = line;
    for (auto& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (l.find("error") != std::string::npos || line.find("Sanitizer") != std::string::npos)
      out.push_back(line);
  }
  return out;
}

namespace {

std::string digest_of(const std::string& path) {
  // Two independent 64-bit hashes of the bytes; enough to tell files apart.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return "<open " + errname(errno) + ">";
  uint64_t h1 = 1469598103934665603ULL, h2 = 0x9E3779B97F4A7C15ULL;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return "<read " + errname(errno) + ">";
    }
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      unsigned char c = static_cast<unsigned char>(buf[i]);
      h1 = (h1 ^ c) * 1099511628211ULL;
      h2 = (h2 + c) * 0xff51afd7ed558ccdULL;
      h2 ^= h2 >> 29;
    }
  }
  ::close(fd);
  char out[40];
  std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(h1),
                static_cast<unsigned long long>(h2));
  return out;
}

void scan_rec(const std::string& base, const std::string& rel, dev_t dev,
              const std::vector<std::string>& skip, std::map<std::string, Entry>& out) {
  std::string dir = rel.empty() ? base : base + "/" + rel;
  for (auto& name : list_dir(dir)) {
    std::string r = rel.empty() ? name : rel + "/" + name;
    if (std::find(skip.begin(), skip.end(), r) != skip.end()) continue;
    std::string path = base + "/" + r;
    struct stat st;
    Entry e;
    if (::lstat(path.c_str(), &st) < 0) {
      e.content = "<lstat " + errname(errno) + ">";
      out[r] = e;
      continue;
    }
    switch (st.st_mode & S_IFMT) {
      case S_IFREG: e.type = 'f'; break;
      case S_IFDIR: e.type = 'd'; break;
      case S_IFLNK: e.type = 'l'; break;
      case S_IFCHR: e.type = 'c'; break;
      case S_IFBLK: e.type = 'b'; break;
      case S_IFIFO: e.type = 'p'; break;
      case S_IFSOCK: e.type = 's'; break;
    }
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.size = e.type == 'd' ? 0 : st.st_size;
    e.id = {st.st_dev, st.st_ino};
    e.nlink = st.st_nlink;
    if (e.type == 'f') e.content = digest_of(path);
    if (e.type == 'l') e.target = readlink_of(path);
    if (e.type == 'c' || e.type == 'b') e.rdev = st.st_rdev;
    out[r] = e;
    if (e.type == 'd' && st.st_dev == dev) scan_rec(base, r, dev, skip, out);
  }
}

std::string describe(const Entry& e) {
  std::ostringstream os;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(e.mode));
  os << e.type << " " << mode << " " << e.uid << ":" << e.gid;
  if (e.type != 'd') os << " size " << e.size;
  if (e.type == 'f') os << " data " << e.content;
  if (e.type == 'l') os << " -> " << e.target;
  if (e.type == 'c' || e.type == 'b') os << " dev " << major(e.rdev) << "," << minor(e.rdev);
  if (e.content.starts_with("<")) os << " " << e.content;
  return os.str();
}

}  // namespace

std::map<std::string, Entry> scan_tree(const std::string& dir, const std::vector<std::string>& skip) {
  std::map<std::string, Entry> out;
  struct stat st;
  if (::lstat(dir.c_str(), &st) < 0) return out;
  scan_rec(dir, "", st.st_dev, skip, out);
  return out;
}

std::vector<std::vector<std::string>> link_groups(const std::map<std::string, Entry>& tree) {
  std::map<std::pair<dev_t, ino_t>, std::vector<std::string>> by_id;
  for (auto& [name, e] : tree)
    if (e.type != 'd') by_id[e.id].push_back(name);
  std::vector<std::vector<std::string>> out;
  for (auto& [id, names] : by_id) {
    if (names.size() < 2) continue;
    std::sort(names.begin(), names.end());
    out.push_back(names);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string diff_trees(const std::map<std::string, Entry>& expected,
                       const std::map<std::string, Entry>& actual) {
  std::ostringstream os;
  for (auto& [name, e] : expected) {
    auto it = actual.find(name);
    if (it == actual.end()) {
      os << "missing: " << name << " (" << describe(e) << ")\n";
      continue;
    }
    std::string a = describe(e), b = describe(it->second);
    if (a != b) os << "differs: " << name << "\n  expected " << a << "\n  actual   " << b << "\n";
  }
  for (auto& [name, e] : actual)
    if (!expected.count(name)) os << "unexpected: " << name << " (" << describe(e) << ")\n";
  return os.str();
}

ProcUsage proc_usage(pid_t pid) {
  ProcUsage u;
  std::string base = "/proc/" + std::to_string(pid);
  std::istringstream in(read_file(base + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmHWM:")) u.hwm_kb = std::atol(line.c_str() + 6);
    if (line.starts_with("VmRSS:")) u.rss_kb = std::atol(line.c_str() + 6);
  }
  DIR* d = ::opendir((base + "/fd").c_str());
  if (d) {
    long n = 0;
    while (auto* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    u.fds = n;
  }
  return u;
}

std::vector<std::string> holders_of(const std::string& dir) {
  std::vector<std::string> out;
  auto below = [&](const std::string& target) {
    return target == dir || target.starts_with(dir + "/");
  };
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (auto* e = ::readdir(d)) {
    std::string pid = e->d_name;
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string base = "/proc/" + pid;
    std::string comm = read_file(base + "/comm");
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    for (const char* link : {"cwd", "root"}) {
      std::string t = readlink_of(base + "/" + link);
      if (below(t)) out.push_back(pid + " (" + comm + ") " + link + " " + t);
    }
    for (auto& fd : list_dir(base + "/fd")) {
      std::string t = readlink_of(base + "/fd/" + fd);
      if (below(t)) out.push_back(pid + " (" + comm + ") fd " + fd + " " + t);
    }
    std::istringstream maps(read_file(base + "/maps"));
    std::string line;
    while (std::getline(maps, line)) {
      size_t slash = line.find('/');
      if (slash != std::string::npos && below(line.substr(slash)))
        out.push_back(pid + " (" + comm + ") maps " + line.substr(slash));
    }
  }
  ::closedir(d);
  return out;
}

std::string umount_retrying(const std::string& dir, bool& still_mounted, int timeout_ms) {
  std::ostringstream report;
  auto start = std::chrono::steady_clock::now();
  for (int attempt = 1;; ++attempt) {
    auto r = run({"umount", dir}, "", 15000);
    still_mounted = in_proc_mounts(dir);
    if (!still_mounted) {
      if (attempt > 1) report << "unmounted at try " << attempt << "\n";
      return attempt > 1 ? report.str() : "";
    }
    report << "try " << attempt << ": " << r.err;
    for (auto& h : holders_of(dir)) report << "  held by " << h << "\n";
    if (std::chrono::steady_clock::now() - start > std::chrono::milliseconds(timeout_ms))
      return report.str();
    std::this_thread::sleep_for(std::chrono::milliseconds(100 * std::min(attempt, 5)));
  }
}

std::string image_tool() {
  const char* b = std::getenv("AUFS_FUSE_IMAGE_BIN");
  return b && *b ? b : "";
}

bool long_tests() {
  const char* v = std::getenv("AUFS_LONG");
  return v && *v && std::string(v) != "0";
}

}  // namespace aufs::ct
