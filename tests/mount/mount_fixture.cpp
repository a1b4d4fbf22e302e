// SPDX-License-Identifier: GPL-2.0-or-later
#include "mount_fixture.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace aufs::mt {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> child_env() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string s = *e;
    if (s.starts_with("LC_ALL=") || s.starts_with("TZ=") || s.starts_with("LANG=") ||
        s.starts_with("LANGUAGE="))
      continue;
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

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

uint64_t fnv1a(const std::string& data) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (int k = 1; k <= 3; ++k) {
        char c = s[i + static_cast<size_t>(k)];
        if (c < '0' || c > '7') { ok = false; break; }
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

void snapshot_rec(const std::string& base, const std::string& rel, std::ostringstream& os) {
  std::string path = rel.empty() ? base : base + "/" + rel;
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) {
    os << rel << " <lstat " << errname(errno) << ">\n";
    return;
  }
  os << (rel.empty() ? "." : rel) << " ";
  switch (st.st_mode & S_IFMT) {
    case S_IFREG: os << "f"; break;
    case S_IFDIR: os << "d"; break;
    case S_IFLNK: os << "l"; break;
    case S_IFIFO: os << "p"; break;
    case S_IFSOCK: os << "s"; break;
    case S_IFCHR: os << "c"; break;
    case S_IFBLK: os << "b"; break;
    default: os << "?"; break;
  }
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  os << " " << mode << " " << st.st_uid << ":" << st.st_gid << " n" << st.st_nlink << " i"
     << st.st_ino << " m" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec << " c"
     << st.st_ctim.tv_sec << "." << st.st_ctim.tv_nsec;
  if (!S_ISDIR(st.st_mode)) os << " s" << st.st_size;
  if (S_ISREG(st.st_mode)) os << " h" << std::hex << fnv1a(read_file(path)) << std::dec;
  if (S_ISLNK(st.st_mode)) os << " -> " << readlink_of(path);
  char names[8192];
  ssize_t n = ::llistxattr(path.c_str(), names, sizeof names);
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
      ssize_t vn = ::lgetxattr(path.c_str(), k.c_str(), val, sizeof val);
      os << " x:" << k << "=" << (vn >= 0 ? std::string(val, static_cast<size_t>(vn)) : "?");
    }
  }
  os << "\n";
  if (S_ISDIR(st.st_mode)) {
    for (auto& name : list_dir(path)) snapshot_rec(base, rel.empty() ? name : rel + "/" + name, os);
  }
}

void list_tree_rec(const std::string& base, const std::string& rel, std::vector<std::string>& out) {
  std::string path = rel.empty() ? base : base + "/" + rel;
  struct stat pst;
  if (::lstat(path.c_str(), &pst) < 0) return;
  for (auto& name : list_dir(path)) {
    std::string r = rel.empty() ? name : rel + "/" + name;
    out.push_back(r);
    struct stat st;
    if (::lstat((base + "/" + r).c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
        st.st_dev == pst.st_dev)
      list_tree_rec(base, r, out);
  }
}

}  // namespace

// ---------------------------------------------------------------- commands

std::ostream& operator<<(std::ostream& os, const RunResult& r) {
  os << "exit=" << r.exit_code;
  if (r.term_signal) os << " signal=" << r.term_signal;
  if (r.timed_out) os << " (timed out)";
  os << "\n--- stdout ---\n" << r.out << "--- stderr ---\n" << r.err << "---";
  return os;
}

std::string errname(int e) {
  if (e == 0) return "0";
  const char* n = strerrorname_np(e);
  return std::string(n ? n : "E?") + " (" + std::strerror(e) + ")";
}

std::string q(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

RunResult run(const std::vector<std::string>& argv_in, const std::string& cwd, int timeout_ms) {
  RunResult r;
  if (argv_in.empty()) return r;
  std::vector<std::string> argv = argv_in;
  std::vector<std::string> env = child_env();
  auto cargv = cptrs(argv);
  auto cenv = cptrs(env);
  int outp[2], errp[2];
  if (::pipe2(outp, O_CLOEXEC) < 0) return r;
  if (::pipe2(errp, O_CLOEXEC) < 0) {
    ::close(outp[0]);
    ::close(outp[1]);
    return r;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(outp[1], 1);
    ::dup2(errp[1], 2);
    if (!cwd.empty() && ::chdir(cwd.c_str()) < 0) _exit(126);
    ::close_range(3, ~0U, 0);
    ::execvpe(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  ::close(outp[1]);
  ::close(errp[1]);
  if (pid < 0) {
    ::close(outp[0]);
    ::close(errp[0]);
    return r;
  }
  ::setpgid(pid, pid);  // also in the parent: no race with kill(-pid)
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  struct pollfd fds[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (left <= 0 && !r.timed_out) {
      r.timed_out = true;
      ::kill(-pid, SIGKILL);  // the process group this call started
      deadline = Clock::now() + std::chrono::seconds(5);
      left = 5000;
    } else if (left <= 0) {
      break;
    }
    int pr = ::poll(fds, 2, left);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) r.term_signal = WTERMSIG(status);
  return r;
}

RunResult sh(const std::string& cmd, const std::string& cwd, int timeout_ms) {
  return run({"/bin/sh", "-c", cmd}, cwd, timeout_ms);
}

RunResult sh_as(uid_t uid, gid_t gid, const std::string& cmd, const std::string& cwd) {
  return run({"setpriv", "--reuid=" + std::to_string(uid), "--regid=" + std::to_string(gid),
              "--clear-groups", "--", "/bin/sh", "-c", cmd},
             cwd);
}

int errno_as(uid_t uid, gid_t gid, const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) < 0 || ::setresgid(gid, gid, gid) < 0 ||
        ::setresuid(uid, uid, uid) < 0)
      _exit(255);
    int e = fn();
    _exit(e & 0xff);
  }
  if (pid < 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status)) return -1;
  int code = WEXITSTATUS(status);
  return code == 255 ? -1 : code;
}

// ---------------------------------------------------------------- files

std::string read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

static bool put_file(const std::string& path, const std::string& content, int flags, mode_t mode,
                     bool set_mode) {
  int fd = ::open(path.c_str(), flags | O_WRONLY | O_CLOEXEC, mode);
  if (fd < 0) {
    ADD_FAILURE() << "cannot open " << path << ": " << errname(errno);
    return false;
  }
  size_t off = 0;
  bool ok = true;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ADD_FAILURE() << "write " << path << ": " << errname(errno);
      ok = false;
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (set_mode && ::fchmod(fd, mode) < 0) ok = false;
  if (::close(fd) < 0) {
    ADD_FAILURE() << "close " << path << ": " << errname(errno);
    ok = false;
  }
  return ok;
}

bool write_file(const std::string& path, const std::string& content, mode_t mode) {
  return put_file(path, content, O_CREAT | O_TRUNC, mode, true);
}

bool append_file(const std::string& path, const std::string& content) {
  return put_file(path, content, O_APPEND, 0, false);
}

void mkdirs(const std::string& path, mode_t mode) {
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string cur = path.substr(0, pos);
    if (!cur.empty()) ::mkdir(cur.c_str(), mode);
  }
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::optional<struct stat> lstat_of(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return std::nullopt;
  return st;
}

std::optional<struct stat> stat_of(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) return std::nullopt;
  return st;
}

int lstat_errno(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 ? 0 : errno;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> list_tree(const std::string& dir) {
  std::vector<std::string> out;
  list_tree_rec(dir, "", out);
  std::sort(out.begin(), out.end());
  return out;
}

std::string snapshot(const std::string& dir) {
  std::ostringstream os;
  snapshot_rec(dir, "", os);
  return os.str();
}

std::string readlink_of(const std::string& path) {
  char buf[PATH_MAX + 1];
  ssize_t n = ::readlink(path.c_str(), buf, PATH_MAX);
  if (n < 0) return "<readlink " + errname(errno) + ">";
  return std::string(buf, static_cast<size_t>(n));
}

std::optional<std::string> get_xattr(const std::string& path, const std::string& key) {
  char buf[4096];
  ssize_t n = ::lgetxattr(path.c_str(), key.c_str(), buf, sizeof buf);
  if (n < 0) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

bool make_walkthrough_layers(const std::string& dir) {
  mkdirs(dir + "/container-layer");
  bool ok = write_file(dir + "/container-layer/container-layer.txt", "I am container layer\n");
  for (int n = 1; n <= 3; ++n) {
    std::string ns = std::to_string(n), layer = dir + "/image-layer" + ns;
    mkdirs(layer + "/subdir" + ns);
    ok = write_file(layer + "/image-layer" + ns + ".txt", "I am image layer " + ns + "\n") && ok;
    ok = write_file(layer + "/subdir" + ns + "/subdir" + ns + ".txt", "subdir " + ns + "\n") && ok;
  }
  return ok;
}

std::vector<std::string> walkthrough_tree() {
  return {"container-layer.txt", "image-layer1.txt", "image-layer2.txt", "image-layer3.txt",
          "subdir1",             "subdir1/subdir1.txt", "subdir2",       "subdir2/subdir2.txt",
          "subdir3",             "subdir3/subdir3.txt"};
}

void walkthrough_changes(const std::string& dir) {
  auto r = sh("echo more >> mnt/image-layer1.txt && rm mnt/image-layer2.txt && "
              "echo container-01 > mnt/container-test.txt",
              dir);
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(read_file(dir + "/mnt/image-layer1.txt"), "I am image layer 1\nmore\n");
  EXPECT_EQ(read_file(dir + "/container-layer/image-layer1.txt"), "I am image layer 1\nmore\n");
  EXPECT_EQ(lstat_errno(dir + "/mnt/image-layer2.txt"), ENOENT);
  auto wh = lstat_of(dir + "/container-layer/.wh.image-layer2.txt");
  ASSERT_TRUE(wh.has_value()) << "no whiteout in the container layer";
  EXPECT_TRUE(S_ISREG(wh->st_mode));
  EXPECT_EQ(read_file(dir + "/container-layer/container-test.txt"), "container-01\n");
}

void remove_tree(const std::string& path) {
  if (path.empty() || path == "/") return;
  ::nftw(
      path.c_str(),
      [](const char* p, const struct stat* st, int flag, struct FTW*) {
        if (flag == FTW_DP || flag == FTW_D) {
          ::chmod(p, 0700);
          ::rmdir(p);
        } else if (flag == FTW_DNR) {
          ::chmod(p, 0700);
          ::rmdir(p);
        } else {
          (void)st;
          ::unlink(p);
        }
        return 0;
      },
      64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

bool is_mount_point(const std::string& path) {
  struct stat a, b;
  if (::stat(path.c_str(), &a) < 0) return errno == ENOTCONN;
  std::string parent = path.substr(0, path.find_last_of('/'));
  if (parent.empty()) parent = "/";
  if (::stat(parent.c_str(), &b) < 0) return false;
  return a.st_dev != b.st_dev;
}

bool in_proc_mounts(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string f[5];
    for (auto& x : f) ls >> x;
    if (unescape_mountinfo(f[4]) == path) return true;
  }
  return false;
}

std::string daemon_binary() {
  if (const char* b = std::getenv("AUFS_FUSE_BIN"); b && *b) return b;
  char buf[PATH_MAX + 1];
  ssize_t n = ::readlink("/proc/self/exe", buf, PATH_MAX);
  if (n <= 0) return "aufs-fuse";
  std::string self(buf, static_cast<size_t>(n));
  std::string dir = self.substr(0, self.find_last_of('/'));  // build/tests/mount
  return dir + "/../../src/aufs-fuse";
}

std::string tool_binary(const char* env_var, const std::string& fallback) {
  if (const char* b = std::getenv(env_var); b && *b) return b;
  return fallback;
}

// ---------------------------------------------------------------- mount table

bool MountEntry::has_opt(const std::string& opt) const {
  for (const std::string* list : {&mount_opts, &super_opts}) {
    size_t pos = 0;
    while (pos <= list->size()) {
      size_t c = list->find(',', pos);
      if (c == std::string::npos) c = list->size();
      if (list->compare(pos, c - pos, opt) == 0 && c - pos == opt.size()) return true;
      pos = c + 1;
    }
  }
  return false;
}

namespace {

std::vector<MountEntry> all_mounts() {
  std::vector<MountEntry> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint opts [optional...] - fstype source superopts
    std::istringstream ls(line);
    std::vector<std::string> f;
    std::string w;
    while (ls >> w) f.push_back(w);
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 6 || dash == f.end() || f.end() - dash < 3) continue;
    MountEntry e;
    e.mount_point = unescape_mountinfo(f[4]);
    e.mount_opts = f[5];
    e.fstype = dash[1];
    e.source = unescape_mountinfo(dash[2]);
    e.super_opts = dash + 3 < f.end() ? dash[3] : "";
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

std::optional<MountEntry> mount_entry(const std::string& path) {
  std::optional<MountEntry> found;
  for (auto& e : all_mounts())
    if (e.mount_point == path) found = e;  // the last one is on top
  return found;
}

std::vector<MountEntry> mounts_under(const std::string& dir) {
  std::vector<MountEntry> out;
  if (dir.empty() || dir == "/") return out;
  for (auto& e : all_mounts())
    if (e.mount_point == dir || e.mount_point.starts_with(dir + "/")) out.push_back(e);
  return out;
}

SysMountGuard::~SysMountGuard() {
  if (!in_proc_mounts(mnt_)) return;
  auto r = run({"umount", mnt_}, "", 15000);
  if (in_proc_mounts(mnt_)) {
    std::fprintf(stderr, "aufs mount test: umount %s failed (%s); detaching lazily\n",
                 mnt_.c_str(), r.err.c_str());
    run({"umount", "-l", mnt_}, "", 15000);
  }
  wait_daemons_gone(mnt_, 3000);
}

std::vector<pid_t> daemon_pids_for(const std::string& mnt) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (auto* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (!end || *end || pid <= 0) continue;
    std::string cmd = read_file(std::string("/proc/") + e->d_name + "/cmdline");
    std::vector<std::string> argv;
    for (size_t p = 0; p < cmd.size();) {
      size_t z = cmd.find('\0', p);
      if (z == std::string::npos) z = cmd.size();
      argv.push_back(cmd.substr(p, z - p));
      p = z + 1;
    }
    if (argv.empty()) continue;
    std::string a0 = argv[0].substr(argv[0].find_last_of('/') + 1);
    if (a0 != "aufs-fuse") continue;
    if (std::find(argv.begin() + 1, argv.end(), mnt) != argv.end())
      out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  return out;
}

bool wait_daemons_gone(const std::string& mnt, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (daemon_pids_for(mnt).empty()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// ---------------------------------------------------------------- daemon

Daemon::Daemon(std::vector<std::string> args, std::string mnt, std::string log, std::string cwd)
    : args_(std::move(args)), mnt_(std::move(mnt)), log_(std::move(log)), cwd_(std::move(cwd)) {}

Daemon::~Daemon() {
  if (running()) {
    auto problems = stop();
    for (auto& p : problems) std::fprintf(stderr, "aufs mount test: %s\n", p.c_str());
  }
}

::testing::AssertionResult Daemon::start(int timeout_ms) {
  std::vector<std::string> argv = {daemon_binary()};
  argv.insert(argv.end(), args_.begin(), args_.end());
  std::vector<std::string> env = child_env();
  auto cargv = cptrs(argv);
  auto cenv = cptrs(env);
  int logfd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logfd < 0) return ::testing::AssertionFailure() << "cannot open " << log_;
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    // If the test process dies, the daemon unmounts and exits (SIGTERM is
    // handled by libfuse).
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) _exit(125);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(logfd, 1);
    ::dup2(logfd, 2);
    if (!cwd_.empty() && ::chdir(cwd_.c_str()) < 0) _exit(126);
    ::close_range(3, ~0U, 0);
    ::execve(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  ::close(logfd);
  if (pid < 0) return ::testing::AssertionFailure() << "fork: " << errname(errno);
  pid_ = pid;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    int status = 0;
    pid_t w = ::waitpid(pid_, &status, WNOHANG);
    if (w == pid_) {
      pid_ = -1;
      std::ostringstream os;
      os << "daemon exited before mounting (";
      if (WIFEXITED(status)) os << "exit " << WEXITSTATUS(status);
      else if (WIFSIGNALED(status)) os << "signal " << WTERMSIG(status);
      os << "); args:";
      for (auto& a : args_) os << " " << a;
      os << "\nlog:\n" << read_file(log_);
      return ::testing::AssertionFailure() << os.str();
    }
    if (is_mount_point(mnt_)) return ::testing::AssertionSuccess();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::string problems;
  for (auto& pr : stop()) problems += "\n" + pr;
  return ::testing::AssertionFailure() << "mount did not appear on " << mnt_ << " within "
                                       << timeout_ms << " ms" << problems << "\nlog:\n"
                                       << read_file(log_);
}

std::vector<std::string> Daemon::stop() {
  std::vector<std::string> problems;
  if (pid_ <= 0) return problems;
  bool lazy = false;
  if (in_proc_mounts(mnt_)) {
    auto r = run({"fusermount3", "-u", mnt_}, "", 15000);
    if (!r.ok()) {
      // Busy: an fd or cwd was left on the mount. Detach lazily.
      problems.push_back("fusermount3 -u " + mnt_ + " failed (mount busy?): " + r.err);
      lazy = true;
      auto r2 = run({"fusermount3", "-uz", mnt_}, "", 15000);
      if (!r2.ok()) {
        auto r3 = run({"umount", "-l", mnt_}, "", 15000);
        if (!r3.ok()) problems.push_back("cannot unmount " + mnt_ + ": " + r3.err);
      }
    }
  }
  // Waits up to `ms` for the daemon to exit; true if it did.
  int status = 0;
  auto wait_exit = [&](int ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      pid_t w = ::waitpid(pid_, &status, WNOHANG);
      if (w == pid_) return true;
      if (w < 0 && errno != EINTR) return true;  // not our child any more
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  // After a lazy unmount the connection lives until the last fd on it is
  // closed, so the daemon is asked to stop sooner.
  if (wait_exit(lazy ? 2000 : 10000)) {
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::ostringstream os;
      os << "daemon ended with ";
      if (WIFEXITED(status)) os << "exit status " << WEXITSTATUS(status);
      else if (WIFSIGNALED(status))
        os << "signal " << WTERMSIG(status) << " (" << strsignal(WTERMSIG(status)) << ")";
      problems.push_back(os.str());
    }
  } else {
    problems.push_back("daemon pid " + std::to_string(pid_) +
                       " did not exit after the unmount; sending SIGTERM");
    ::kill(pid_, SIGTERM);  // only the daemon this test started
    if (!wait_exit(3000)) {
      problems.push_back("daemon pid " + std::to_string(pid_) + " ignored SIGTERM; killed");
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  pid_ = -1;
  if (in_proc_mounts(mnt_)) {
    run({"umount", "-l", mnt_}, "", 15000);
    problems.push_back("mount left behind on " + mnt_);
  }
  return problems;
}

// ---------------------------------------------------------------- fixture

void MountTest::SetUp() {
  int fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) GTEST_SKIP() << "/dev/fuse cannot be opened read-write: " << errname(errno);
  ::close(fd);
  std::string bin = daemon_binary();
  ASSERT_EQ(::access(bin.c_str(), X_OK), 0) << "daemon binary not executable: " << bin
                                            << " (set AUFS_FUSE_BIN)";
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/aufs-mt-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << errname(errno);
  char real[PATH_MAX];
  ASSERT_NE(::realpath(tmpl.c_str(), real), nullptr);
  root_ = real;
  ASSERT_EQ(::chmod(root_.c_str(), 0755), 0);  // other users must reach mnt
  ASSERT_EQ(::mkdir(m().c_str(), 0755), 0);
}

std::string MountTest::branch_list(const std::string& branches) const {
  std::string br;
  size_t pos = 0;
  while (pos <= branches.size()) {
    size_t c = branches.find(':', pos);
    if (c == std::string::npos) c = branches.size();
    std::string elem = branches.substr(pos, c - pos);
    pos = c + 1;
    if (elem.empty()) continue;
    if (!br.empty()) br += ":";
    br += elem[0] == '/' ? elem : root_ + "/" + elem;
  }
  return br;
}

std::string suite_options() {
  const char* o = std::getenv("AUFS_TEST_MOUNT_OPTIONS");
  return o && *o ? std::string(",") + o : std::string();
}

::testing::AssertionResult MountTest::mount(const std::string& branches, const std::string& extra,
                                            const std::string& mnt_rel) {
  std::string o = "br=" + branch_list(branches) +
                  ",entry_timeout=0,attr_timeout=0,negative_timeout=0,threads=2" + suite_options();
  if (!extra.empty()) o += "," + extra;
  return mount_args({"-f", "-o", o, p(mnt_rel)}, mnt_rel);
}

::testing::AssertionResult MountTest::mount_cached(const std::string& branches,
                                                   const std::string& extra,
                                                   const std::string& mnt_rel) {
  std::string o = "br=" + branch_list(branches) + ",threads=2" + suite_options();
  if (!extra.empty()) o += "," + extra;
  return mount_args({"-f", "-o", o, p(mnt_rel)}, mnt_rel);
}

::testing::AssertionResult MountTest::mount_args(const std::vector<std::string>& args,
                                                 const std::string& mnt_rel) {
  std::string log = log_seq_ == 0 ? p("daemon.log") : p("daemon-" + std::to_string(log_seq_) + ".log");
  ++log_seq_;
  auto d = std::make_unique<Daemon>(args, p(mnt_rel), log, root_);
  auto r = d->start();
  daemons_.push_back(std::move(d));
  return r;
}

void MountTest::unmount(const std::string& mnt_rel) {
  for (auto it = daemons_.rbegin(); it != daemons_.rend(); ++it) {
    if (!(*it)->running()) continue;
    if (!mnt_rel.empty() && (*it)->mnt() != p(mnt_rel)) continue;
    stop_and_check(**it);
    return;
  }
  ADD_FAILURE() << "unmount(" << mnt_rel << "): no running daemon";
}

void MountTest::stop_and_check(Daemon& d) {
  for (auto& problem : d.stop()) ADD_FAILURE() << problem;
  std::istringstream in(read_file(d.log()));
  std::string line;
  while (std::getline(in, line)) {
    std::string l = lower(line);
    bool bad = l.find("error") != std::string::npos ||
               line.find("AddressSanitizer") != std::string::npos ||
               line.find("LeakSanitizer") != std::string::npos ||
               line.find("runtime error:") != std::string::npos;
    if (!bad) continue;
    bool ok = false;
    for (auto& a : allowed_)
      if (line.find(a) != std::string::npos) ok = true;
    if (!ok) {
      ADD_FAILURE() << "daemon log (" << d.log() << ") reports: " << line;
    }
  }
}

std::string MountTest::daemon_log() const {
  std::string out;
  for (auto& d : daemons_) out += "== " + d->log() + " ==\n" + read_file(d->log());
  return out;
}

void MountTest::TearDown() {
  for (auto& d : daemons_)
    if (d->running()) stop_and_check(*d);
  // Mounts made through mount(8) are not the fixture's daemons: any left
  // below the root is a defect of the test; detach it so nothing leaks.
  if (!root_.empty()) {
    for (auto& e : mounts_under(root_)) {
      ADD_FAILURE() << "mount left behind: " << e.source << " on " << e.mount_point << " type "
                    << e.fstype;
      run({"umount", e.mount_point}, "", 15000);
      if (in_proc_mounts(e.mount_point)) run({"umount", "-l", e.mount_point}, "", 15000);
    }
  }
  if (HasFailure() && !daemons_.empty()) std::fprintf(stderr, "%s", daemon_log().c_str());
  bool still_mounted = !root_.empty() && !mounts_under(root_).empty();
  for (auto& d : daemons_)
    if (in_proc_mounts(d->mnt())) still_mounted = true;
  if (!root_.empty() && !still_mounted) {
    remove_tree(root_);
    removed_ = true;
  }
}

MountTest::~MountTest() {
  std::vector<std::string> mnts;
  for (auto& d : daemons_) {
    mnts.push_back(d->mnt());
    d.reset();  // stops any daemon still running
  }
  if (!removed_ && !root_.empty()) {
    bool still_mounted = false;
    for (auto& mp : mnts)
      if (in_proc_mounts(mp)) still_mounted = true;
    if (!still_mounted) remove_tree(root_);
  }
}

}  // namespace aufs::mt
