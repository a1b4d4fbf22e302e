// SPDX-License-Identifier: GPL-2.0-or-later
#include "rel_support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

extern char** environ;

namespace aufs::rel {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- run modes

bool long_mode() {
  const char* v = std::getenv("AUFS_LONG");
  return v && *v && std::string(v) != "0";
}

long env_long(const char* name, long def) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  char* end = nullptr;
  long r = std::strtol(v, &end, 0);
  return end && *end == 0 ? r : def;
}

uint64_t test_seed() {
  uint64_t seed;
  const char* v = std::getenv("AUFS_FUSE_SEED");
  if (v && *v) {
    seed = std::strtoull(v, nullptr, 0);
  } else {
    std::random_device rd;
    seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "?";
  std::cout << "seed: AUFS_FUSE_SEED=" << seed << " (" << name
            << "; rerun with this environment and --gtest_filter=" << name << ")" << std::endl;
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

void report(const std::string& key, const std::string& line) {
  std::cout << "stats: " << line << std::endl;
  ::testing::Test::RecordProperty(key, line);
}

// ---------------------------------------------------------------- hashing

uint64_t hash_bytes(const void* data, size_t n) { return XXH3_64bits(data, n); }
uint64_t hash_str(const std::string& s) { return XXH3_64bits(s.data(), s.size()); }

namespace {

std::optional<uint64_t> hash_fd(int fd) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      XXH3_freeState(st);
      return std::nullopt;
    }
    if (n == 0) break;
    XXH3_64bits_update(st, buf.data(), static_cast<size_t>(n));
  }
  uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h;
}

}  // namespace

std::optional<uint64_t> hash_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  auto h = hash_fd(fd);
  ::close(fd);
  return h;
}

std::string random_bytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  for (; i < n; ++i) s[i] = static_cast<char>(rng());
  return s;
}

// ---------------------------------------------------------------- trees

std::vector<std::string> names_of(int dirfd) {
  std::vector<std::string> out;
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return out;
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return out;
  }
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

char type_char(mode_t m) {
  switch (m & S_IFMT) {
    case S_IFREG: return 'f';
    case S_IFDIR: return 'd';
    case S_IFLNK: return 'l';
    case S_IFIFO: return 'p';
    case S_IFSOCK: return 's';
    case S_IFCHR: return 'c';
    case S_IFBLK: return 'b';
  }
  return '?';
}

std::string describe(int dirfd, const std::string& name, const struct stat& st,
                     const DigestOptions& o) {
  std::ostringstream os;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  os << type_char(st.st_mode) << " " << mode;
  if (o.owner) os << " " << st.st_uid << ":" << st.st_gid;
  bool dir = S_ISDIR(st.st_mode);
  if (!dir || o.dir_nlink) os << " n" << st.st_nlink;
  if (!dir || o.dir_size) os << " s" << st.st_size;
  if (o.inodes) os << " i" << st.st_ino;
  if (o.times)
    os << " m" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec << " c" << st.st_ctim.tv_sec
       << "." << st.st_ctim.tv_nsec;
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
    os << " r" << major(st.st_rdev) << ":" << minor(st.st_rdev);
  if (S_ISREG(st.st_mode)) {
    // O_NOATIME: a digest must not change what a later digest or check sees.
    int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOATIME);
    if (fd < 0 && errno == EPERM) fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      os << " h<" << errname(errno) << ">";
    } else {
      auto h = hash_fd(fd);
      ::close(fd);
      os << " h" << std::hex << (h ? *h : 0) << std::dec;
    }
  }
  if (S_ISLNK(st.st_mode)) {
    char buf[PATH_MAX + 1];
    ssize_t n = ::readlinkat(dirfd, name.c_str(), buf, PATH_MAX);
    os << " -> " << (n >= 0 ? std::string(buf, static_cast<size_t>(n)) : "?");
  }
  if (o.xattrs) {
    std::string p = dirfd == AT_FDCWD ? name : "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
    char names[8192];
    ssize_t n = ::llistxattr(p.c_str(), names, sizeof names);
    if (n > 0) {
      std::vector<std::string> keys;
      for (ssize_t i = 0; i < n;) {
        std::string k(names + i);
        i += static_cast<ssize_t>(k.size()) + 1;
        keys.push_back(k);
      }
      std::sort(keys.begin(), keys.end());
      for (auto& k : keys) {
        char val[4096];
        ssize_t vn = ::lgetxattr(p.c_str(), k.c_str(), val, sizeof val);
        os << " x:" << k << "="
           << (vn >= 0 ? std::to_string(hash_bytes(val, static_cast<size_t>(vn))) : "?");
      }
    }
  }
  return os.str();
}

std::string rel_name(const std::string& parent_rel, const std::string& name, int depth) {
  if (depth > 64) return "<deep " + std::to_string(depth) + ">/" + name;
  return parent_rel.empty() ? name : parent_rel + "/" + name;
}

}  // namespace

void walk(const std::string& root, const Walker& w) {
  int cur = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (cur < 0) return;
  struct stat rst;
  if (::fstat(cur, &rst) < 0) {
    ::close(cur);
    return;
  }
  struct Frame {
    std::vector<std::string> names;
    size_t next = 0;
    std::string rel;
    std::string name;  // this directory's name in its parent
  };
  std::vector<Frame> stack;
  stack.push_back({names_of(cur), 0, "", ""});
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next < f.names.size()) {
      std::string name = f.names[f.next++];
      struct stat st;
      if (::fstatat(cur, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
      int depth = static_cast<int>(stack.size());
      if (w.visit) w.visit(cur, f.rel, name, st, depth);
      if (S_ISDIR(st.st_mode) && st.st_dev == rst.st_dev) {
        int sub = ::openat(cur, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) continue;
        std::string rel = depth > 64 ? "" : rel_name(f.rel, name, depth);
        ::close(cur);
        cur = sub;
        stack.push_back({names_of(cur), 0, rel, name});
      }
      continue;
    }
    std::string name = f.name;
    stack.pop_back();
    if (stack.empty()) break;
    int up = ::openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ::close(cur);
    if (up < 0) return;
    cur = up;
    if (w.post) w.post(cur, name);
  }
  ::close(cur);
}

std::vector<std::string> digest_tree(const std::string& dir, const DigestOptions& o) {
  std::vector<std::string> out;
  struct stat st;
  if (::lstat(dir.c_str(), &st) < 0) {
    out.push_back(". <" + errname(errno) + ">");
    return out;
  }
  out.push_back(". " + describe(AT_FDCWD, dir, st, o));
  Walker w;
  w.visit = [&](int dirfd, const std::string& rel, const std::string& name, const struct stat& s,
                int depth) { out.push_back(rel_name(rel, name, depth) + " " + describe(dirfd, name, s, o)); };
  walk(dir, w);
  return out;
}

std::string digest_diff(const std::vector<std::string>& a, const std::vector<std::string>& b,
                        size_t max_lines) {
  if (a == b) return "";
  std::vector<std::string> sa = a, sb = b;
  std::sort(sa.begin(), sa.end());
  std::sort(sb.begin(), sb.end());
  std::vector<std::string> only_a, only_b;
  std::set_difference(sa.begin(), sa.end(), sb.begin(), sb.end(), std::back_inserter(only_a));
  std::set_difference(sb.begin(), sb.end(), sa.begin(), sa.end(), std::back_inserter(only_b));
  std::ostringstream os;
  size_t n = 0;
  for (auto& l : only_a) {
    if (n++ >= max_lines) break;
    os << "  - " << l << "\n";
  }
  for (auto& l : only_b) {
    if (n++ >= 2 * max_lines) break;
    os << "  + " << l << "\n";
  }
  if (only_a.empty() && only_b.empty()) os << "  (same lines, different order)\n";
  return os.str();
}

bool remove_tree_any_depth(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return errno == ENOENT;
  if (!S_ISDIR(st.st_mode)) return ::unlink(path.c_str()) == 0;
  Walker w;
  w.visit = [&](int dirfd, const std::string&, const std::string& name, const struct stat& s, int) {
    if (S_ISDIR(s.st_mode)) {
      ::fchmodat(dirfd, name.c_str(), 0700, 0);
      return;
    }
    ::unlinkat(dirfd, name.c_str(), 0);
  };
  w.post = [&](int dirfd, const std::string& name) { ::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR); };
  ::chmod(path.c_str(), 0700);
  walk(path, w);
  return ::rmdir(path.c_str()) == 0;
}

bool make_deep_chain(const std::string& dir, const std::string& name, int depth) {
  int cur = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cur < 0) return false;
  for (int i = 0; i < depth; ++i) {
    if (::mkdirat(cur, name.c_str(), 0755) < 0 && errno != EEXIST) {
      ::close(cur);
      return false;
    }
    int sub = ::openat(cur, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    ::close(cur);
    if (sub < 0) return false;
    cur = sub;
  }
  ::close(cur);
  return true;
}

// ---------------------------------------------------------------- product

std::string checker_binary() {
  if (const char* b = std::getenv("AUFS_FUSE_CHECK_BIN"); b && *b) return b;
  std::string d = daemon_binary();
  auto slash = d.find_last_of('/');
  if (slash == std::string::npos) return "aufs-fuse-check";
  return d.substr(0, slash) + "/../tools/aufs-fuse-check";
}

CheckerRun run_checker(const std::vector<std::string>& branches, bool fix) {
  std::vector<std::string> argv = {checker_binary()};
  if (fix) argv.push_back("--fix");
  argv.insert(argv.end(), branches.begin(), branches.end());
  CheckerRun c;
  c.run = run(argv, "", 120000);
  // "<branch>: D dirs, E entries, I issues, L left"
  std::istringstream in(c.run.out);
  std::string line;
  while (std::getline(in, line)) {
    auto p = line.rfind(" issues, ");
    if (p == std::string::npos) continue;
    auto q = line.rfind(", ", p - 1);
    long issues = std::strtol(line.c_str() + (q == std::string::npos ? 0 : q + 2), nullptr, 10);
    long left = std::strtol(line.c_str() + p + 9, nullptr, 10);
    c.issues = std::max<long>(c.issues, 0) + issues;
    c.left = std::max<long>(c.left, 0) + left;
  }
  return c;
}

long json_number(const std::string& json, const std::string& key) {
  std::string k = "\"" + key + "\":";
  auto p = json.find(k);
  if (p == std::string::npos) return -1;
  p += k.size();
  while (p < json.size() && json[p] == ' ') ++p;
  char* end = nullptr;
  long v = std::strtol(json.c_str() + p, &end, 10);
  if (end == json.c_str() + p) return -1;
  return v;
}

std::optional<Info> mount_info(const std::string& mnt) {
  std::string ctl = mnt + "/.wh..wh.aufs-fuse";
  std::vector<char> buf(1 << 16);
  ssize_t n = ::getxattr(ctl.c_str(), "user.aufs.info", buf.data(), buf.size());
  if (n < 0) return std::nullopt;
  Info i;
  i.json.assign(buf.data(), static_cast<size_t>(n));
  i.inodes = json_number(i.json, "inodes");
  i.open_files = json_number(i.json, "open_files");
  return i;
}

// ---------------------------------------------------------------- daemon

namespace {

std::vector<std::string> daemon_env() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string s = *e;
    if (s.starts_with("LC_ALL=") || s.starts_with("TZ=") || s.starts_with("LANG=")) continue;
    env.push_back(s);
  }
  env.push_back("LC_ALL=C");
  env.push_back("TZ=UTC");
  return env;
}

std::vector<char*> cptrs(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

OwnDaemon::~OwnDaemon() {
  if (pid_ > 0) {
    for (auto& p : stop(true)) std::fprintf(stderr, "reliability: %s\n", p.c_str());
  }
  if (in_proc_mounts(c_.mnt)) run({"umount", "-l", c_.mnt}, "", 15000);
}

::testing::AssertionResult OwnDaemon::start(int timeout_ms) {
  if (pid_ > 0) return ::testing::AssertionFailure() << "already running";
  std::vector<std::string> argv = {daemon_binary()};
  argv.insert(argv.end(), c_.args.begin(), c_.args.end());
  std::vector<std::string> env = daemon_env();
  auto cargv = cptrs(argv);
  auto cenv = cptrs(env);
  int logfd = ::open(c_.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logfd < 0) return ::testing::AssertionFailure() << "cannot open " << c_.log;
  pid_t parent = ::getpid();
  rlim_t nofile = c_.nofile;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) _exit(125);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(logfd, 1);
    ::dup2(logfd, 2);
    if (!c_.cwd.empty() && ::chdir(c_.cwd.c_str()) < 0) _exit(126);
    ::close_range(3, ~0U, 0);
    if (nofile) {
      struct rlimit rl = {nofile, nofile};
      if (::setrlimit(RLIMIT_NOFILE, &rl) < 0) _exit(124);
    }
    ::execve(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  ::close(logfd);
  if (pid < 0) return ::testing::AssertionFailure() << "fork: " << errname(errno);
  pid_ = pid;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      status_ = status;
      std::ostringstream os;
      os << "daemon exited before mounting (status " << status << "); args:";
      for (auto& a : c_.args) os << " " << a;
      os << "\nlog:\n" << read_file(c_.log);
      return ::testing::AssertionFailure() << os.str();
    }
    if (is_mount_point(c_.mnt) && in_proc_mounts(c_.mnt)) return ::testing::AssertionSuccess();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::string problems;
  for (auto& p : stop(true)) problems += "\n" + p;
  return ::testing::AssertionFailure() << "mount did not appear on " << c_.mnt << problems
                                       << "\nlog:\n" << read_file(c_.log);
}

bool OwnDaemon::alive() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t w = ::waitpid(pid_, &status, WNOHANG);
  if (w == pid_) {
    status_ = status;
    pid_ = -1;
    return false;
  }
  return true;
}

namespace {
// The FUSE connection number of the mount at `mnt` (the minor of its device
// in /proc/self/mountinfo), or -1: read without asking the daemon.
long fuse_connection(const std::string& mnt) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  long found = -1;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, dev, root, point;
    ls >> id >> parent >> dev >> root >> point;
    if (point != mnt || line.find(" - fuse") == std::string::npos) continue;
    auto colon = dev.find(':');
    if (colon != std::string::npos) found = std::stol(dev.substr(colon + 1));
  }
  return found;
}
}  // namespace

namespace {
std::atomic<int> g_kill9_aborts{0};
}  // namespace

int kill9_aborts() { return g_kill9_aborts.load(); }

std::vector<std::string> OwnDaemon::kill9() {
  std::vector<std::string> problems;
  if (pid_ > 0) {
    long conn = fuse_connection(c_.mnt);
    ::kill(pid_, SIGKILL);  // only the daemon this test started
    int status = 0;
    bool reaped = false;
    for (int i = 0; i < 100 && !reaped; ++i) {
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) reaped = true;
      else if (r < 0 && errno != EINTR) break;
      else ::usleep(10000);
    }
    // A killed daemon cannot finish dying while one of its threads waits in
    // the kernel for a directory lock that a request to this same daemon
    // holds (a cache notification racing a request not yet read): abort the
    // dead connection, as an administrator would, so those requests fail.
    // Counted: the daemon holds such notifications back while it serves a
    // request in that directory, so this should stay rare.
    if (!reaped && conn >= 0) {
      ++g_kill9_aborts;
      std::fprintf(stderr, "note: killed daemon %d still alive after 1 s; aborting its FUSE connection\n",
                   pid_);
      std::string ctl = "/sys/fs/fuse/connections/" + std::to_string(conn) + "/abort";
      // fusectl is not mounted everywhere (containers): root mounts it.
      if (::access(ctl.c_str(), W_OK) != 0 && ::geteuid() == 0)
        run({"mount", "-t", "fusectl", "fusectl", "/sys/fs/fuse/connections"}, "", 5000);
      std::ofstream abort(ctl);
      if (abort) abort << "1";
    }
    while (!reaped && ::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    status_ = status;
    pid_ = -1;
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
      problems.push_back("daemon had already exited before SIGKILL (status " +
                         std::to_string(status) + ")");
  }
  if (in_proc_mounts(c_.mnt)) {
    auto r = run({"fusermount3", "-uz", c_.mnt}, "", 15000);
    if (in_proc_mounts(c_.mnt)) {
      auto r2 = run({"umount", "-l", c_.mnt}, "", 15000);
      if (in_proc_mounts(c_.mnt))
        problems.push_back("cannot detach dead mount " + c_.mnt + ": " + r.err + r2.err);
    }
  }
  return problems;
}

std::vector<std::string> OwnDaemon::wait_exit(int timeout_ms) {
  std::vector<std::string> problems;
  if (pid_ <= 0) return problems;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  for (;;) {
    pid_t w = ::waitpid(pid_, &status, WNOHANG);
    if (w == pid_) break;
    if (Clock::now() >= deadline) {
      problems.push_back("daemon pid " + std::to_string(pid_) + " did not exit within " +
                         std::to_string(timeout_ms) + " ms");
      return problems;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  status_ = status;
  pid_ = -1;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::ostringstream os;
    os << "daemon ended with ";
    if (WIFEXITED(status)) os << "exit status " << WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) os << "signal " << WTERMSIG(status) << " (" << strsignal(WTERMSIG(status)) << ")";
    problems.push_back(os.str());
  }
  return problems;
}

namespace {
// Who keeps a mount busy: processes with a cwd, root or open file in it.
std::string users_of(const std::string& mnt) {
  std::string out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  auto inside = [&](const std::string& link) {
    char buf[PATH_MAX];
    ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
    if (n <= 0) return std::string();
    std::string t(buf, static_cast<size_t>(n));
    return t == mnt || t.starts_with(mnt + "/") ? t : std::string();
  };
  while (dirent* e = ::readdir(d)) {
    if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
    std::string pd = std::string("/proc/") + e->d_name;
    std::vector<std::string> hits;
    for (const char* what : {"cwd", "root"})
      if (auto t = inside(pd + "/" + what); !t.empty()) hits.push_back(std::string(what) + " " + t);
    if (DIR* fds = ::opendir((pd + "/fd").c_str())) {
      while (dirent* f = ::readdir(fds))
        if (auto t = inside(pd + "/fd/" + f->d_name); !t.empty()) hits.push_back("fd " + t);
      ::closedir(fds);
    }
    if (hits.empty()) continue;
    std::ifstream comm(pd + "/comm");
    std::string name;
    std::getline(comm, name);
    out += "\n  pid " + std::string(e->d_name) + " (" + name + "):";
    for (auto& h : hits) out += " " + h;
  }
  ::closedir(d);
  return out.empty() ? "\n  (no process has a file, cwd or root in it)" : out;
}
}  // namespace

std::vector<std::string> OwnDaemon::stop(bool lazy_ok) {
  std::vector<std::string> problems;
  if (pid_ <= 0) {
    if (in_proc_mounts(c_.mnt)) {
      run({"umount", "-l", c_.mnt}, "", 15000);
      problems.push_back("mount without daemon left on " + c_.mnt);
    }
    return problems;
  }
  bool lazy = false;
  if (in_proc_mounts(c_.mnt)) {
    auto r = run({"fusermount3", "-u", c_.mnt}, "", 15000);
    if (!r.ok()) {
      if (!lazy_ok)
        problems.push_back("fusermount3 -u " + c_.mnt + " failed: " + r.err + users_of(c_.mnt));
      lazy = true;
      run({"fusermount3", "-uz", c_.mnt}, "", 15000);
      if (in_proc_mounts(c_.mnt)) run({"umount", "-l", c_.mnt}, "", 15000);
    }
  }
  auto w = wait_exit(lazy ? 3000 : 15000);
  if (!w.empty() && pid_ > 0) {
    problems.insert(problems.end(), w.begin(), w.end());
    ::kill(pid_, SIGTERM);
    auto w2 = wait_exit(3000);
    if (pid_ > 0) {
      problems.push_back("daemon ignored SIGTERM; killed");
      ::kill(pid_, SIGKILL);
      int status;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
  } else {
    problems.insert(problems.end(), w.begin(), w.end());
  }
  if (in_proc_mounts(c_.mnt)) {
    run({"umount", "-l", c_.mnt}, "", 15000);
    problems.push_back("mount left behind on " + c_.mnt);
  }
  return problems;
}

std::vector<std::string> log_errors(const std::string& log_path,
                                    const std::vector<std::string>& allowed) {
  std::vector<std::string> out;
  std::istringstream in(read_file(log_path));
  std::string line;
  while (std::getline(in, line)) {
    std::string l = line;
    for (auto& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool bad = l.find("error") != std::string::npos || line.find("Sanitizer") != std::string::npos ||
               line.find("runtime error:") != std::string::npos;
    if (!bad) continue;
    bool ok = false;
    for (auto& a : allowed)
      if (line.find(a) != std::string::npos) ok = true;
    if (!ok) out.push_back(line);
  }
  return out;
}

// ---------------------------------------------------------------- fixture

OwnDaemon* RelTest::start_own(const std::string& branches, const std::string& extra,
                              bool test_defaults, rlim_t nofile, const std::string& mnt_rel) {
  std::string o = "br=" + branch_list(branches);
  if (test_defaults) o += ",entry_timeout=0,attr_timeout=0,negative_timeout=0,threads=2";
  if (!extra.empty()) o += "," + extra;
  OwnDaemon::Config c;
  c.args = {"-f", "-o", o, p(mnt_rel)};
  c.mnt = p(mnt_rel);
  c.log = p("own-" + std::to_string(own_seq_++) + ".log");
  c.cwd = root();
  c.nofile = nofile;
  own_.push_back(std::make_unique<OwnDaemon>(c));
  auto r = own_.back()->start();
  if (!r) {
    ADD_FAILURE() << r.message();
    return nullptr;
  }
  return own_.back().get();
}

void RelTest::check_own_log(const OwnDaemon& d) {
  for (auto& l : log_errors(d.log(), own_allowed_))
    ADD_FAILURE() << "daemon log (" << d.log() << ") reports: " << l;
}

void RelTest::stop_own(OwnDaemon* d, bool lazy_ok) {
  if (!d) return;
  for (auto& pr : d->stop(lazy_ok)) ADD_FAILURE() << pr;
  check_own_log(*d);
}

::testing::AssertionResult RelTest::mount_tmpfs(const std::string& rel, const std::string& opts) {
  mkdirs(p(rel));
  auto r = run({"mount", "-t", "tmpfs", "-o", opts, "tmpfs", p(rel)});
  if (!r.ok()) return ::testing::AssertionFailure() << "mount -t tmpfs: " << r;
  tmpfs_.push_back(rel);
  return ::testing::AssertionSuccess();
}

void RelTest::umount_tmpfs(const std::string& rel) {
  auto it = std::find(tmpfs_.begin(), tmpfs_.end(), rel);
  if (it == tmpfs_.end()) return;
  tmpfs_.erase(it);
  auto r = run({"umount", p(rel)});
  if (in_proc_mounts(p(rel))) {
    run({"umount", "-l", p(rel)});
    ADD_FAILURE() << "umount " << p(rel) << " failed: " << r;
  }
}

void RelTest::TearDown() {
  while (!cleanups_.empty()) {
    auto f = std::move(cleanups_.back());
    cleanups_.pop_back();
    f();
  }
  for (auto& d : own_) {
    if (d->alive()) stop_own(d.get(), true);
  }
  // Any own mount still present (a dead daemon's mount) is detached.
  for (auto& d : own_)
    if (in_proc_mounts(d->mnt())) {
      ADD_FAILURE() << "mount left on " << d->mnt();
      run({"umount", "-l", d->mnt()});
    }
  while (!tmpfs_.empty()) umount_tmpfs(tmpfs_.back());
  if (HasFailure())
    for (auto& d : own_) std::fprintf(stderr, "== %s ==\n%s", d->log().c_str(), read_file(d->log()).c_str());
  // Deep trees defeat nftw(3) (PATH_MAX); remove everything but the logs
  // the fixture still reads.
  if (!root().empty() && mounts_under(root()).empty()) {
    int fd = ::open(root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      for (auto& n : names_of(fd)) {
        if (n.ends_with(".log")) continue;
        remove_tree_any_depth(root() + "/" + n);
      }
      ::close(fd);
    }
    mkdirs(m());
  }
  MountTest::TearDown();
}

}  // namespace aufs::rel
