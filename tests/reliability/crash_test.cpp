// SPDX-License-Identifier: GPL-2.0-or-later
// Crash safety: the daemon is killed with SIGKILL (only the pid this test
// started) at seeded random points inside copy-ups of large files, unlink
// and rmdir with whiteouts, renames and mkdir over whiteouts; the dead mount
// is detached and the union is mounted again (chk repairs). Then:
//  * every read-only branch is byte-identical to before (digest with ctime);
//  * the visible tree is exactly the state before or after the operation
//    that was running (never a half-copied file, never a resurrected name);
//  * the checker finds nothing on the rw branch (no leftover, no name
//    together with its whiteout);
//  * every record written and fsync'd before the kill is there.
// The same for `umount -l` while writers are active.
//
// Short form: 20 kills (AUFS_CRASH_KILLS overrides); AUFS_LONG=1: 300.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "rel_support.hpp"

namespace aufs::rel {
namespace {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- model

struct Obj {
  char type = 'f';  // 'f' file, 'd' directory, 'l' symlink
  mode_t mode = 0644;
  std::shared_ptr<const std::string> data;  // file content / link target
  bool upper_only = false;                  // directory made through the union
  mutable uint64_t h = 0;
  mutable bool have_h = false;
  uint64_t hash() const {
    if (!have_h) {
      h = data ? hash_str(*data) : hash_str("");
      have_h = true;
    }
    return h;
  }
  size_t size() const { return data ? data->size() : 0; }
};

// Union-relative path -> object. The root and the journal are not in it.
using Model = std::map<std::string, Obj>;

bool same(const Obj& a, const Obj& b) {
  if (a.type != b.type || (a.mode & 07777) != (b.mode & 07777)) return false;
  if (a.type == 'd') return true;
  return a.size() == b.size() && a.hash() == b.hash();
}

std::string show(const Obj& o) {
  std::ostringstream os;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", o.mode & 07777);
  os << o.type << " " << mode;
  if (o.type != 'd') os << " size " << o.size() << " hash " << std::hex << o.hash() << std::dec;
  return os.str();
}

// Differences between a model and an observed state ("" if equal).
std::string model_diff(const Model& want, const Model& got, size_t max = 12) {
  std::ostringstream os;
  size_t n = 0;
  for (auto& [k, v] : want) {
    auto it = got.find(k);
    if (it == got.end()) {
      if (n++ < max) os << "    missing " << k << " (" << show(v) << ")\n";
    } else if (!same(v, it->second)) {
      if (n++ < max) os << "    differs " << k << ": want " << show(v) << ", got " << show(it->second) << "\n";
    }
  }
  for (auto& [k, v] : got)
    if (!want.count(k) && n++ < max) os << "    extra   " << k << " (" << show(v) << ")\n";
  return os.str();
}

bool equal_models(const Model& a, const Model& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
    if (ia->first != ib->first || !same(ia->second, ib->second)) return false;
  return true;
}

// The visible tree under mnt (without the journal and the root).
Model observe(const std::string& mnt, std::string* problem) {
  Model m;
  Walker w;
  w.visit = [&](int dirfd, const std::string& rel, const std::string& name, const struct stat& st, int) {
    std::string path = rel.empty() ? name : rel + "/" + name;
    if (path == "journal") return;
    Obj o;
    o.mode = st.st_mode & 07777;
    if (S_ISDIR(st.st_mode)) {
      o.type = 'd';
    } else if (S_ISLNK(st.st_mode)) {
      o.type = 'l';
      char buf[4096];
      ssize_t n = ::readlinkat(dirfd, name.c_str(), buf, sizeof buf);
      o.data = std::make_shared<std::string>(n >= 0 ? std::string(buf, static_cast<size_t>(n)) : "?");
    } else if (S_ISREG(st.st_mode)) {
      o.type = 'f';
      int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        if (problem) *problem += "cannot open " + path + ": " + errname(errno) + "\n";
        return;
      }
      std::string content;
      char buf[1 << 16];
      for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
          if (problem) *problem += "read " + path + ": " + errname(errno) + "\n";
          break;
        }
        if (n == 0) break;
        content.append(buf, static_cast<size_t>(n));
      }
      ::close(fd);
      if (static_cast<off_t>(content.size()) != st.st_size && problem)
        *problem += "size of " + path + ": stat " + std::to_string(st.st_size) + ", read " +
                    std::to_string(content.size()) + "\n";
      o.data = std::make_shared<std::string>(std::move(content));
    } else {
      o.type = '?';
    }
    m[path] = o;
  };
  walk(mnt, w);
  return m;
}

// ---------------------------------------------------------------- steps

enum class K { OpenRw, Pwrite, Fsync, Close, Chmod, Truncate, Unlink, Rmdir, Rename, Mkdir, Create, Symlink };

const char* kname(K k) {
  switch (k) {
    case K::OpenRw: return "open-rw(copy-up)";
    case K::Pwrite: return "pwrite";
    case K::Fsync: return "fsync";
    case K::Close: return "close";
    case K::Chmod: return "chmod";
    case K::Truncate: return "truncate";
    case K::Unlink: return "unlink";
    case K::Rmdir: return "rmdir";
    case K::Rename: return "rename";
    case K::Mkdir: return "mkdir";
    case K::Create: return "create";
    case K::Symlink: return "symlink";
  }
  return "?";
}
constexpr int kKinds = 12;

struct Step {
  Step(K kind, std::string pa, std::string pb = {}) : k(kind), a(std::move(pa)), b(std::move(pb)) {}
  K k;
  std::string a, b;  // paths (union-relative)
  mode_t mode = 0;
  off_t off = 0;
  std::shared_ptr<const std::string> data;
  bool big = false;  // on a large file
};

std::string show(const Step& s) {
  std::ostringstream os;
  os << kname(s.k) << " " << s.a;
  if (!s.b.empty()) os << " -> " << s.b;
  if (s.k == K::Chmod || s.k == K::Mkdir) os << " mode " << std::oct << s.mode << std::dec;
  if (s.k == K::Truncate) os << " size " << s.off;
  if (s.k == K::Pwrite) os << " off " << s.off << " len " << (s.data ? s.data->size() : 0);
  return os.str();
}

// Runs one step through the mount; 0 or an errno.
int exec_step(const std::string& mnt, const Step& s, int& fd) {
  std::string a = mnt + "/" + s.a, b = mnt + "/" + s.b;
  auto rc = [](long r) { return r < 0 ? errno : 0; };
  switch (s.k) {
    case K::OpenRw:
      fd = ::open(a.c_str(), O_RDWR | O_CLOEXEC);
      return fd < 0 ? errno : 0;
    case K::Pwrite: {
      ssize_t n = ::pwrite(fd, s.data->data(), s.data->size(), s.off);
      if (n < 0) return errno;
      return n == static_cast<ssize_t>(s.data->size()) ? 0 : EIO;
    }
    case K::Fsync: return rc(::fsync(fd));
    case K::Close: {
      int r = ::close(fd);
      fd = -1;
      return rc(r);
    }
    case K::Chmod: return rc(::chmod(a.c_str(), s.mode));
    case K::Truncate: return rc(::truncate(a.c_str(), s.off));
    case K::Unlink: return rc(::unlink(a.c_str()));
    case K::Rmdir: return rc(::rmdir(a.c_str()));
    case K::Rename: return rc(::rename(a.c_str(), b.c_str()));
    case K::Mkdir: return rc(::mkdir(a.c_str(), s.mode));
    case K::Symlink: return rc(::symlink(s.data->c_str(), a.c_str()));
    case K::Create: {
      int f = ::open(a.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, s.mode);
      if (f < 0) return errno;
      ssize_t n = ::write(f, s.data->data(), s.data->size());
      int e = n < 0 ? errno : (n == static_cast<ssize_t>(s.data->size()) ? 0 : EIO);
      if (e == 0 && ::fsync(f) < 0) e = errno;
      if (::close(f) < 0 && e == 0) e = errno;
      return e;
    }
  }
  return EINVAL;
}

void move_subtree(Model& m, const std::string& from, const std::string& to) {
  std::vector<std::pair<std::string, Obj>> moved;
  for (auto it = m.begin(); it != m.end();) {
    if (it->first == from || it->first.starts_with(from + "/")) {
      moved.emplace_back(to + it->first.substr(from.size()), it->second);
      it = m.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [k, v] : moved) m[k] = v;
}

// The model after the step.
void apply_step(Model& m, const Step& s) {
  switch (s.k) {
    case K::OpenRw: case K::Fsync: case K::Close: break;
    case K::Pwrite: {
      Obj& o = m[s.a];
      auto d = std::make_shared<std::string>(*o.data);
      size_t end = static_cast<size_t>(s.off) + s.data->size();
      if (d->size() < end) d->resize(end, '\0');
      d->replace(static_cast<size_t>(s.off), s.data->size(), *s.data);
      o.data = d;
      o.have_h = false;
      break;
    }
    case K::Chmod: m[s.a].mode = s.mode; break;
    case K::Truncate: {
      Obj& o = m[s.a];
      auto d = std::make_shared<std::string>(*o.data);
      d->resize(static_cast<size_t>(s.off), '\0');
      o.data = d;
      o.have_h = false;
      break;
    }
    case K::Unlink: case K::Rmdir: m.erase(s.a); break;
    case K::Rename: {
      m.erase(s.b);
      move_subtree(m, s.a, s.b);
      break;
    }
    case K::Mkdir: {
      Obj o;
      o.type = 'd';
      o.mode = s.mode;
      o.upper_only = true;
      m[s.a] = o;
      break;
    }
    case K::Create: {
      Obj o;
      o.type = 'f';
      o.mode = s.mode;
      o.data = s.data;
      m[s.a] = o;
      break;
    }
    case K::Symlink: {
      Obj o;
      o.type = 'l';
      o.mode = 0777;
      o.data = s.data;
      m[s.a] = o;
      break;
    }
  }
}

// States a step may leave besides "before" and "after" when interrupted.
std::vector<Model> extra_states(const Model& before, const Step& s) {
  std::vector<Model> out;
  if (s.k == K::Create) {
    // Interrupted between open(O_CREAT) and the write: an empty new file.
    Model e = before;
    Obj o;
    o.type = 'f';
    o.mode = s.mode;
    o.data = std::make_shared<std::string>();
    e[s.a] = o;
    out.push_back(std::move(e));
  }
  return out;
}

bool interesting(K k) {
  return k == K::OpenRw || k == K::Chmod || k == K::Truncate || k == K::Unlink || k == K::Rmdir ||
         k == K::Rename || k == K::Mkdir || k == K::Create;
}

// ---------------------------------------------------------------- generator

struct Gen {
  Gen(std::mt19937_64& r, Model start) : rng(r), m(std::move(start)) {}
  std::mt19937_64& rng;
  Model m;
  int serial = 0;
  std::vector<std::string> removed;  // names whited out during this script
  std::vector<Step> out;

  size_t pick(size_t n) { return static_cast<size_t>(rng() % n); }
  bool chance(int pct) { return static_cast<int>(rng() % 100) < pct; }

  std::vector<std::string> of_type(char t, bool big_ok = true) {
    std::vector<std::string> v;
    for (auto& [k, o] : m)
      if (o.type == t && (big_ok || !k.starts_with("big/"))) v.push_back(k);
    return v;
  }
  std::vector<std::string> big_files() {
    std::vector<std::string> v;
    for (auto& [k, o] : m)
      if (o.type == 'f' && k.starts_with("big/")) v.push_back(k);
    return v;
  }
  std::string some_dir() {
    auto d = of_type('d');
    if (d.empty() || chance(20)) return "";
    return d[pick(d.size())];
  }
  std::string new_name(const std::string& dir) {
    std::string n = "n" + std::to_string(serial++) + "_" + std::to_string(rng() % 1000);
    return dir.empty() ? n : dir + "/" + n;
  }
  void emit(Step s) {
    apply_step(m, s);
    out.push_back(std::move(s));
  }
  // A name for something new: often one whited out before (create/mkdir
  // over a whiteout), else a fresh one.
  std::string target_name() {
    while (!removed.empty() && chance(70)) {
      size_t i = pick(removed.size());
      std::string n = removed[i];
      removed.erase(removed.begin() + static_cast<long>(i));
      auto slash = n.find_last_of('/');
      std::string parent = slash == std::string::npos ? "" : n.substr(0, slash);
      if (!m.count(n) && (parent.empty() || (m.count(parent) && m[parent].type == 'd'))) return n;
    }
    return new_name(some_dir());
  }

  void big_write() {
    auto b = big_files();
    if (b.empty()) return;
    std::string f = b[pick(b.size())];
    size_t size = m[f].size();
    Step s{K::OpenRw, f};
    s.big = true;
    emit(s);
    Step w{K::Pwrite, f};
    w.big = true;
    w.off = static_cast<off_t>(size ? (rng() % size) & ~size_t{4095} : 0);
    w.data = std::make_shared<std::string>(random_bytes(rng, 4096));
    emit(w);
    emit(Step{K::Fsync, f});
    emit(Step{K::Close, f});
  }
  void chmod_some() {
    auto f = of_type('f');
    if (f.empty()) return;
    Step s{K::Chmod, f[pick(f.size())]};
    static const mode_t modes[] = {0600, 0640, 0644, 0664, 0755, 0700, 0444};
    s.mode = modes[pick(7)];
    s.big = s.a.starts_with("big/");
    emit(s);
  }
  void truncate_some() {
    auto f = of_type('f');
    if (f.empty()) return;
    Step s{K::Truncate, f[pick(f.size())]};
    size_t size = m[s.a].size();
    s.off = chance(75) ? static_cast<off_t>(size ? rng() % size : 0)
                       : static_cast<off_t>(size + rng() % 65536);
    s.big = s.a.starts_with("big/");
    emit(s);
  }
  void unlink_some() {
    std::vector<std::string> f = of_type('f', chance(30));
    for (auto& l : of_type('l')) f.push_back(l);
    if (f.empty()) return;
    Step s{K::Unlink, f[pick(f.size())]};
    s.big = s.a.starts_with("big/");
    removed.push_back(s.a);
    emit(s);
  }
  // Empties a directory (children first) and removes it.
  void rmdir_some() {
    std::vector<std::string> cands;
    for (auto& d : of_type('d')) {
      if (d == "big") continue;
      size_t n = 0;
      for (auto& [k, o] : m)
        if (k.starts_with(d + "/")) ++n;
      if (n <= 10) cands.push_back(d);
    }
    if (cands.empty()) return;
    std::string d = cands[pick(cands.size())];
    std::vector<std::string> inside;
    for (auto& [k, o] : m)
      if (k.starts_with(d + "/")) inside.push_back(k);
    std::sort(inside.begin(), inside.end(), std::greater<>());  // children before parents
    for (auto& k : inside) emit(Step{m[k].type == 'd' ? K::Rmdir : K::Unlink, k});
    removed.push_back(d);
    emit(Step{K::Rmdir, d});
  }
  void rename_some() {
    std::vector<std::string> src = of_type('f', chance(40));
    for (auto& d : of_type('d'))
      if (m[d].upper_only) src.push_back(d);
    if (src.empty()) return;
    std::string a = src[pick(src.size())];
    bool dir = m[a].type == 'd';
    std::string b;
    auto files = of_type('f', false);
    if (!dir && !files.empty() && chance(40)) {
      b = files[pick(files.size())];  // replace an existing file
      if (b == a) return;
    } else {
      b = target_name();
      if (b.starts_with(a + "/")) return;
    }
    Step s{K::Rename, a, b};
    s.big = a.starts_with("big/");
    removed.push_back(a);
    emit(s);
  }
  void mkdir_some() {
    Step s{K::Mkdir, target_name()};
    s.mode = 0755;
    emit(s);
  }
  void create_some() {
    Step s{K::Create, target_name()};
    s.mode = 0644;
    s.data = std::make_shared<std::string>(random_bytes(rng, 1 + rng() % 4096));
    emit(s);
  }
  // The atomic-replace pattern: write a new file completely, fsync, rename
  // it over the old one.
  void replace_some() {
    auto f = of_type('f', chance(30));
    if (f.empty()) return;
    std::string target = f[pick(f.size())];
    auto slash = target.find_last_of('/');
    std::string tmp = new_name(slash == std::string::npos ? "" : target.substr(0, slash));
    Step c{K::Create, tmp};
    c.mode = 0644;
    c.data = std::make_shared<std::string>(random_bytes(rng, 1 + rng() % 4096));
    emit(c);
    emit(Step{K::Rename, tmp, target});
  }
  void symlink_some() {
    Step s{K::Symlink, target_name()};
    s.data = std::make_shared<std::string>(chance(50) ? "/etc/passwd" : "../x/" + std::to_string(rng() % 100));
    emit(s);
  }

  void generate(int nops) {
    for (int i = 0; i < nops; ++i) {
      switch (rng() % 11) {
        case 0: case 1: big_write(); break;
        case 2: chmod_some(); break;
        case 3: truncate_some(); break;
        case 4: unlink_some(); break;
        case 5: rmdir_some(); break;
        case 6: rename_some(); break;
        case 7: mkdir_some(); break;
        case 8: create_some(); break;
        case 9: replace_some(); break;
        case 10: symlink_some(); break;
      }
    }
  }
};

// ---------------------------------------------------------------- fixture

std::string journal_record(uint64_t seed, long i) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "journal %08ld seed %016llx", i % 100000000,
                static_cast<unsigned long long>(seed));
  std::string r = buf;
  r.resize(63, '.');
  return r + "\n";
}

class Crash : public RelTest {
 protected:
  void SetUp() override {
    RelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ::umask(022);
    seed_ = test_seed();
    rng_.seed(seed_);
    mkdirs(p("rw"));
    build_lower();
    for (auto b : {"l1", "l2"}) ro_before_[b] = digest_tree(p(b));
  }

  // l2 (bottom) and l1: large files, merged directories, whiteouts on l1
  // hiding l2 names, an opaque directory.
  void build_lower() {
    int nbig = long_mode() ? 4 : 2;
    size_t big_size = static_cast<size_t>(env_long("AUFS_CRASH_BIG_MB", long_mode() ? 48 : 32)) << 20;
    mkdirs(p("l2/big"));
    for (int i = 0; i < nbig; ++i)
      ASSERT_TRUE(write_file(p("l2/big/big" + std::to_string(i)), random_bytes(rng_, big_size - static_cast<size_t>(i) * 4096 * 7)));
    for (int d = 0; d < 6; ++d) {
      std::string dir = "tree/d" + std::to_string(d);
      mkdirs(p("l2/" + dir + "/sub"));
      for (int f = 0; f < 4; ++f)
        ASSERT_TRUE(write_file(p("l2/" + dir + "/f" + std::to_string(f)), random_bytes(rng_, 100 + rng_() % 5000)));
      ASSERT_TRUE(write_file(p("l2/" + dir + "/sub/s"), random_bytes(rng_, 300)));
      if (d < 3) {
        mkdirs(p("l1/" + dir));
        for (int f = 0; f < 2; ++f)
          ASSERT_TRUE(write_file(p("l1/" + dir + "/g" + std::to_string(f)), random_bytes(rng_, 200 + rng_() % 3000)));
        ASSERT_TRUE(write_file(p("l1/" + dir + "/f0"), random_bytes(rng_, 777)));  // overrides l2
      }
    }
    mkdirs(p("l1/tree/d4"));
    ASSERT_TRUE(write_file(p("l1/tree/d4/.wh..wh..opq"), "", 0444));
    ASSERT_TRUE(write_file(p("l1/tree/d4/o0"), "opaque dir's own file\n"));
    mkdirs(p("l1/tree/d5"));
    ASSERT_TRUE(write_file(p("l1/tree/d5/.wh.f0"), "", 0444));
    mkdirs(p("l2/small"));
    mkdirs(p("l1/small"));
    for (int f = 0; f < 10; ++f)
      ASSERT_TRUE(write_file(p("l2/small/s" + std::to_string(f)), random_bytes(rng_, 10 + rng_() % 2000)));
    for (int f = 0; f < 3; ++f)
      ASSERT_TRUE(write_file(p("l1/small/s" + std::to_string(f)), random_bytes(rng_, 50)));
    ASSERT_TRUE(write_file(p("l1/small/.wh.s9"), "", 0444));
    ASSERT_EQ(::symlink("../small/s1", p("l2/tree/d1/link").c_str()), 0);
  }

  std::string branches() const { return "rw:l1=ro+wh:l2=ro+wh"; }

  void check_ro_branches(const std::string& when) {
    for (auto& [b, before] : ro_before_) {
      auto now = digest_tree(p(b));
      EXPECT_TRUE(now == before) << "read-only branch " << b << " changed (" << when << "):\n"
                             << digest_diff(before, now);
    }
  }

  // Empties the rw branch (the daemon is not running).
  void wipe_rw() {
    int fd = ::open(p("rw").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    for (auto& n : names_of(fd)) remove_tree_any_depth(p("rw/" + n));
    ::close(fd);
  }

  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  std::map<std::string, std::vector<std::string>> ro_before_;
};

// One background writer: 64-byte records appended and fsync'd.
struct Journal {
  std::atomic<long> sent{0}, acked{0};
  std::atomic<bool> stop{false};
  std::atomic<int> err{0};
  std::thread th;
  void start(const std::string& path, uint64_t seed) {
    th = std::thread([this, path, seed] {
      int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) {
        err = errno;
        return;
      }
      while (!stop) {
        long i = sent.load();
        std::string r = journal_record(seed, i);
        sent = i + 1;
        if (::write(fd, r.data(), r.size()) != static_cast<ssize_t>(r.size())) {
          err = errno ? errno : EIO;
          break;
        }
        if (::fsync(fd) < 0) {
          err = errno;
          break;
        }
        acked = i + 1;
        std::this_thread::sleep_for(std::chrono::microseconds(300));
      }
      ::close(fd);
    });
  }
  void join() {
    stop = true;
    if (th.joinable()) th.join();
  }
};

bool connection_errno(int e) { return e == ENOTCONN || e == ECONNABORTED; }

TEST_F(Crash, KillDuringCopyUpWhiteoutsRenameMkdir) {
  const int kills = static_cast<int>(env_long("AUFS_CRASH_KILLS", long_mode() ? 300 : 20));
  allow_own_log("and its whiteout both exist");  // (a warning; never an error line)

  OwnDaemon* d = start_own(branches());
  ASSERT_NE(d, nullptr);
  const Model lower_view = observe(m(), nullptr);
  // The lower view is what the branches say.
  ASSERT_TRUE(lower_view.count("big/big0"));
  ASSERT_FALSE(lower_view.count("small/s9")) << "whiteout on l1 ignored";
  ASSERT_FALSE(lower_view.count("tree/d5/f0")) << "whiteout on l1 ignored";
  ASSERT_TRUE(lower_view.count("tree/d4/o0"));
  ASSERT_FALSE(lower_view.count("tree/d4/f1")) << "opaque directory merged";
  ASSERT_TRUE(lower_view.count("tree/d0/g1") && lower_view.count("tree/d0/f3"));

  double est_us[kKinds];
  for (auto& e : est_us) e = 2000;
  std::map<std::string, long> stats;
  auto t_start = Clock::now();

  for (int iter = 0; iter <= kills && !HasFatalFailure(); ++iter) {
    bool calibration = iter == 0;  // runs to the end: measures and checks the model
    Gen g(rng_, lower_view);
    g.generate(calibration ? 16 : 4 + static_cast<int>(rng_() % 6));
    if (calibration) {
      g.big_write();
      g.rmdir_some();
      g.mkdir_some();
    }
    std::vector<Step> steps = std::move(g.out);
    std::vector<Model> states{lower_view};
    for (auto& s : steps) {
      Model n = states.back();
      apply_step(n, s);
      states.push_back(std::move(n));
    }
    // Kill point: a step (interesting kinds weighted x4) and a delay within
    // its usual duration.
    size_t target = steps.size();
    double delay_us = 0;
    if (!calibration && !steps.empty()) {
      std::vector<size_t> w;
      for (size_t i = 0; i < steps.size(); ++i)
        for (int k = 0; k < (interesting(steps[i].k) ? 4 : 1); ++k) w.push_back(i);
      target = w[rng_() % w.size()];
      delay_us = std::uniform_real_distribution<double>(0, 1.2 * est_us[static_cast<int>(steps[target].k)])(rng_);
    }

    Journal journal;
    journal.start(m("journal"), seed_ + static_cast<uint64_t>(iter));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::atomic<long> started{-1}, done{0};
    std::atomic<bool> finished{false};
    std::atomic<int> werr{0};
    std::atomic<long> werr_step{-1};
    std::atomic<int64_t> werr_time{0};
    std::vector<double> took(steps.size(), -1);
    std::thread worker([&] {
      int fd = -1;
      for (size_t i = 0; i < steps.size(); ++i) {
        started = static_cast<long>(i);
        auto t0 = Clock::now();
        int e = exec_step(m(), steps[i], fd);
        if (e) {
          werr_time = Clock::now().time_since_epoch().count();
          werr_step = static_cast<long>(i);
          werr = e;
          break;
        }
        took[i] = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
        done = static_cast<long>(i + 1);
      }
      if (fd >= 0) ::close(fd);
      finished = true;
    });

    int64_t kill_time = 0;
    if (!calibration) {
      while (!finished && started.load() < static_cast<long>(target))
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      auto until = Clock::now() + std::chrono::microseconds(static_cast<long>(delay_us));
      if (delay_us > 2000) std::this_thread::sleep_for(std::chrono::microseconds(static_cast<long>(delay_us) - 1000));
      while (Clock::now() < until) {
      }
      kill_time = Clock::now().time_since_epoch().count();
      long at_done = done.load(), at_started = started.load();
      bool was_finished = finished.load();
      int aborts_before = kill9_aborts();
      for (auto& pr : d->kill9()) ADD_FAILURE() << "kill " << iter << ": " << pr;
      stats["kills"]++;
      if (kill9_aborts() != aborts_before) stats["kills that needed the connection aborted"]++;
      if (!was_finished && at_started == at_done && at_started >= 0 &&
          at_started < static_cast<long>(steps.size())) {
        stats[std::string("killed during ") + kname(steps[static_cast<size_t>(at_started)].k) +
              (steps[static_cast<size_t>(at_started)].big ? " (large file)" : "")]++;
      } else {
        stats["killed between operations"]++;
      }
    }
    worker.join();
    journal.join();
    for (size_t i = 0; i < steps.size(); ++i)
      if (took[i] >= 0) {
        double& e = est_us[static_cast<int>(steps[i].k)];
        e = std::max(e * 0.9, took[i]);
      }
    long nd = done.load();
    std::ostringstream ctx;
    ctx << "iteration " << iter << " (AUFS_FUSE_SEED=" << seed_ << "), " << nd << " of "
        << steps.size() << " steps done";
    if (werr) ctx << "; step " << werr_step << " failed: " << errname(werr);
    ctx << "; steps:";
    for (size_t i = 0; i < steps.size(); ++i)
      ctx << "\n  " << i << (static_cast<long>(i) < nd ? " done " : " ---- ") << show(steps[i]);
    if (werr && (calibration || werr_time.load() < kill_time || !connection_errno(werr))) {
      ADD_FAILURE() << "operation failed before the kill: " << ctx.str();
    }
    if (journal.err && (calibration || !connection_errno(journal.err)))
      ADD_FAILURE() << "journal writer: " << errname(journal.err) << "; " << ctx.str();

    if (!calibration) {
      // What the crash left on the rw branch (for the statistics only).
      auto pre = run_checker({p("rw")});
      if (pre.issues > 0) stats["kills leaving leftovers for chk"]++;
      if (pre.run.out.find("temporary-leftover") != std::string::npos) stats["  of which temporaries"]++;
      if (pre.run.out.find("name-and-whiteout") != std::string::npos) stats["  of which name+whiteout"]++;
      check_own_log(*d);
      d = start_own(branches());
      ASSERT_NE(d, nullptr) << ctx.str();
    }

    // ---- checks
    check_ro_branches(ctx.str());
    std::string problem;
    Model now = observe(m(), &problem);
    EXPECT_EQ(problem, "") << ctx.str();
    std::vector<const Model*> ok{&states[static_cast<size_t>(nd)]};
    std::vector<Model> extras;
    if (static_cast<size_t>(nd) < steps.size()) {
      ok.push_back(&states[static_cast<size_t>(nd) + 1]);
      extras = extra_states(states[static_cast<size_t>(nd)], steps[static_cast<size_t>(nd)]);
      for (auto& e : extras) ok.push_back(&e);
    }
    if (calibration) ok.resize(1);
    bool match = false;
    for (size_t i = 0; i < ok.size() && !match; ++i)
      if (equal_models(*ok[i], now)) {
        match = true;
        if (calibration) break;
        bool no_change = ok.size() > 1 && equal_models(*ok[0], *ok[1]);
        stats[no_change ? "state: step without visible effect"
              : i == 0  ? "state: before the interrupted step"
              : i == 1  ? "state: after the interrupted step"
                        : "state: interrupted create (empty file)"]++;
      }
    if (!match) {
      std::ostringstream os;
      os << "visible tree is neither the state before nor after the interrupted step; " << ctx.str()
         << "\n  vs before:\n" << model_diff(*ok[0], now);
      if (ok.size() > 1) os << "  vs after:\n" << model_diff(*ok[1], now);
      ADD_FAILURE() << os.str();
    }
    // fsync'd journal records.
    {
      std::string j = read_file(m("journal"));
      long n = static_cast<long>(j.size() / 64);
      EXPECT_EQ(j.size() % 64, 0u) << "journal has a partial record; " << ctx.str();
      EXPECT_GE(n, journal.acked.load()) << "fsync'd records lost; " << ctx.str();
      EXPECT_LE(n, journal.sent.load()) << ctx.str();
      for (long i = 0; i < n; ++i)
        if (j.compare(static_cast<size_t>(i) * 64, 64, journal_record(seed_ + static_cast<uint64_t>(iter), i)) != 0) {
          ADD_FAILURE() << "journal record " << i << " corrupt; " << ctx.str();
          break;
        }
      stats["journal records fsync'd"] += journal.acked.load();
    }
    auto chk = run_checker({p("rw")});
    EXPECT_EQ(chk.run.exit_code, 0) << "checker after remount: " << chk.run << ctx.str();
    EXPECT_EQ(chk.issues, 0) << chk.run.out << ctx.str();
    stats["steps run"] += nd;

    // Back to the lower view for the next round.
    stop_own(d);
    d = nullptr;
    if (HasFailure()) break;
    wipe_rw();
    if (iter < kills) {
      d = start_own(branches());
      ASSERT_NE(d, nullptr);
    }
  }
  double secs = std::chrono::duration<double>(Clock::now() - t_start).count();
  std::ostringstream os;
  os << "crash: " << stats["kills"] << " kills in " << secs << " s (seed " << seed_ << ")";
  for (auto& [k, v] : stats)
    if (k != "kills") os << "; " << k << ": " << v;
  report("crash", os.str());
  EXPECT_EQ(stats["kills"], kills);
}

// `umount -l` while writers are active: writers that work relative to an
// open directory keep going on the detached mount; when the last one closes
// its files the daemon exits (status 0). After a new mount everything they
// fsync'd is there and the branches are consistent.
TEST_F(Crash, LazyUnmountWhileWritersAreActive) {
  const int rounds = static_cast<int>(env_long("AUFS_LAZY_ROUNDS", long_mode() ? 20 : 3));
  for (int round = 0; round < rounds && !HasFailure(); ++round) {
    OwnDaemon* d = start_own(branches());
    ASSERT_NE(d, nullptr);
    const Model before = observe(m(), nullptr);
    int dirfd = ::open(m().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dirfd, 0);
    constexpr int kWriters = 4;
    std::atomic<bool> stop{false};
    std::atomic<int> errors{0};
    // Per writer: files whose content was written and fsync'd.
    std::vector<std::map<std::string, std::string>> acked(kWriters);
    std::vector<std::string> first_error(kWriters);
    std::vector<std::thread> ws;
    for (int w = 0; w < kWriters; ++w) {
      ws.emplace_back([&, w] {
        std::mt19937_64 r(seed_ + static_cast<uint64_t>(round * 16 + w));
        int sub = ::openat(dirfd, "tree", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        for (int i = 0; !stop; ++i) {
          std::string name = "w" + std::to_string(w) + "_" + std::to_string(i % 8);
          std::string tmp = name + ".tmp";
          std::string content = random_bytes(r, 1 + r() % 8192);
          int base = (w % 2 && sub >= 0) ? sub : dirfd;
          int fd = ::openat(base, tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
          bool ok = fd >= 0 && ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
                    ::fsync(fd) == 0;
          if (fd >= 0) ::close(fd);
          ok = ok && ::renameat(base, tmp.c_str(), base, name.c_str()) == 0 && ::fsync(base) == 0;
          if (!ok) {
            if (first_error[w].empty()) first_error[w] = name + ": " + errname(errno);
            errors++;
            break;
          }
          acked[w][(base == dirfd ? "" : "tree/") + name] = content;
          if (w == 0 && i % 5 == 0) {
            // A copy-up of a large lower file with the writers running.
            int big = ::openat(dirfd, "big/big0", O_RDWR | O_CLOEXEC);
            if (big >= 0) {
              ::pwrite(big, "x", 1, 0);
              ::fsync(big);
              ::close(big);
            }
          }
        }
        if (sub >= 0) ::close(sub);
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + static_cast<int>(rng_() % 200)));
    auto r = run({"umount", "-l", m()});
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_FALSE(in_proc_mounts(m()));
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + static_cast<int>(rng_() % 200)));
    EXPECT_TRUE(d->alive()) << "daemon exited while the detached mount was in use";
    stop = true;
    for (auto& t : ws) t.join();
    ::close(dirfd);
    for (int w = 0; w < kWriters; ++w) EXPECT_EQ(first_error[w], "") << "writer " << w;
    // Nothing was written into the bare mount point.
    EXPECT_EQ(list_dir(m()), std::vector<std::string>{});
    for (auto& pr : d->wait_exit(10000)) ADD_FAILURE() << "after the last file was closed: " << pr;
    check_own_log(*d);

    d = start_own(branches());
    ASSERT_NE(d, nullptr);
    check_ro_branches("after umount -l");
    long files = 0;
    for (int w = 0; w < kWriters; ++w)
      for (auto& [name, content] : acked[w]) {
        ++files;
        auto got = read_file(m(name));
        EXPECT_EQ(got.size(), content.size()) << name;
        EXPECT_TRUE(got == content) << name << ": fsync'd content lost";
      }
    auto chk = run_checker({p("rw")});
    EXPECT_EQ(chk.run.exit_code, 0) << chk.run;
    EXPECT_EQ(chk.issues, 0) << chk.run.out;
    // Only the writers' names changed.
    Model now = observe(m(), nullptr);
    for (auto& [k, v] : before) {
      if (k == "big/big0") continue;
      auto it = now.find(k);
      EXPECT_TRUE(it != now.end() && same(v, it->second)) << k << " changed";
    }
    report("lazy-umount-" + std::to_string(round),
           "umount -l round " + std::to_string(round) + ": " + std::to_string(files) +
               " fsync'd files checked");
    stop_own(d);
    wipe_rw();
  }
}

}  // namespace
}  // namespace aufs::rel
