// SPDX-License-Identifier: GPL-2.0-or-later
// POSIX conformance: one script of system calls (chmod, chown, link, mkdir,
// mkfifo, mknod, open, rename, rmdir, symlink, truncate, unlink, utimensat,
// set-id clearing, sticky directories, ELOOP, ENAMETOOLONG, O_EXCL,
// O_APPEND, O_TRUNC, O_TMPFILE) runs on three targets holding the same tree:
// a plain directory (the kernel's own answer), kernel overlayfs and
// aufs-fuse, both with the tree in a read-only lower layer, so every change
// goes through copy-up or a whiteout. Each call's errno and the resulting
// state make one transcript line. aufs-fuse must match the plain directory
// line by line, except for the lines listed in kAufsRules: the differences
// the man page documents (AUFS rules, FUSE limits). The overlayfs column is
// reported beside them as a second reference.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "rel_support.hpp"

namespace aufs::rel {
namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;
constexpr uid_t kOther = 1000;

// Transcript lines where aufs-fuse differs from a plain directory on
// purpose, with the man page's reason (aufs-fuse(8) "Differences").
const std::map<std::string, std::string> kAufsRules = {
    {"mkdir 250-byte name", "names are limited to 242 bytes, as in AUFS (room for .wh. prefixes)"},
    {"rename dir with lower entries",
     "a directory with entries on a lower branch cannot be renamed: EXDEV, as in AUFS "
     "without dirren (mv copies)"},
    {"after rename dir with lower entries", "follows from the EXDEV rule"},
    {"open 255-byte name O_CREAT", "names are limited to 242 bytes, as in AUFS"},
    {"O_TMPFILE", "FUSE limit: libfuse 3.14 has no tmpfile request; EOPNOTSUPP, as on other FUSE file systems"},
};
// Names whose final state follows from those rules.
const std::set<std::string> kRuleNames = {std::string(40, 'm'), std::string(40, 'n'), "with_lower", "moved",
                                          "tmpdir"};

std::string ename(int e) {
  if (e == 0) return "ok";
  std::string s = errname(e);
  return s.substr(0, s.find(' '));
}

// Type, permission bits, owner, size/content or target, link count.
std::string desc(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return ename(errno);
  char buf[128];
  std::snprintf(buf, sizeof buf, "%04o %u:%u", st.st_mode & 07777, st.st_uid, st.st_gid);
  std::string out;
  switch (st.st_mode & S_IFMT) {
    case S_IFREG: {
      out = std::string("file ") + buf + " nlink=" + std::to_string(st.st_nlink);
      std::string c = read_file(path);
      out += " '" + (c.size() > 32 ? c.substr(0, 32) + "..." : c) + "' size=" + std::to_string(st.st_size);
      break;
    }
    case S_IFDIR: out = std::string("dir ") + buf + " [" ; for (auto& n : list_dir(path)) out += n + " "; out += "]"; break;
    case S_IFLNK: out = std::string("link ") + buf + " -> " + readlink_of(path); break;
    case S_IFIFO: out = std::string("fifo ") + buf; break;
    case S_IFSOCK: out = std::string("sock ") + buf; break;
    case S_IFCHR:
      out = std::string("chr ") + buf + " " + std::to_string(major(st.st_rdev)) + "," + std::to_string(minor(st.st_rdev));
      break;
    default: out = std::string("other ") + buf;
  }
  return out;
}

std::string times_of(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return ename(errno);
  return "atime=" + std::to_string(st.st_atim.tv_sec) + "." + std::to_string(st.st_atim.tv_nsec) +
         " mtime=" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

void set_times(const std::string& path, time_t a, time_t m) {
  struct timespec ts[2] = {{a, 0}, {m, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << path;
}

// The initial tree (the lower layer of the unions).
void build(const std::string& d) {
  mkdirs(d);
  auto file = [&](const std::string& n, const std::string& c, mode_t mode = 0644, uid_t u = 0, gid_t g = 0) {
    ASSERT_TRUE(write_file(d + "/" + n, c, mode));
    ASSERT_EQ(::chown((d + "/" + n).c_str(), u, g), 0);
    ASSERT_EQ(::chmod((d + "/" + n).c_str(), mode), 0);
  };
  for (auto n : {"chmod_f", "chmod_t", "chown_f", "chown_t", "link_f", "open_f", "app", "trunc",
                 "ren_a", "ren_b", "ren_file", "xa", "xb", "tr", "unl", "ut", "ut_omit", "ro444"})
    file(n, std::string("data of ") + n + "\n");
  ASSERT_EQ(::chmod((d + "/ro444").c_str(), 0444), 0);
  set_times(d + "/ut_omit", 1000000, 2000000);
  ASSERT_EQ(::symlink("chmod_t", (d + "/sym").c_str()), 0);
  ASSERT_EQ(::symlink("chown_t", (d + "/sym2").c_str()), 0);
  ASSERT_EQ(::symlink("created_through_link", (d + "/dangling").c_str()), 0);
  ASSERT_EQ(::symlink("loop2", (d + "/loop1").c_str()), 0);
  ASSERT_EQ(::symlink("loop1", (d + "/loop2").c_str()), 0);
  mkdirs(d + "/dir");
  file("dir/inner", "inner\n");
  mkdirs(d + "/empty");
  mkdirs(d + "/ren_dir");
  mkdirs(d + "/ren_empty");
  mkdirs(d + "/ren_full");
  file("ren_full/x", "x\n");
  mkdirs(d + "/with_lower");
  file("with_lower/kept", "kept\n");
  mkdirs(d + "/rm_me");
  file("rm_me/old", "old\n");
  mkdirs(d + "/tmpdir");
  // Set-id files (content does not matter) and a sticky directory.
  file("suid_chown", "s\n", 06755, 0, 50);
  file("sgid_noexec", "s\n", 02644, 0, 50);
  file("suid_write", "s\n", 06777, kOther, 50);
  mkdirs(d + "/sticky");
  ASSERT_EQ(::chmod((d + "/sticky").c_str(), 01777), 0);
  file("sticky/others", "others\n", 0666, kOther, kOther);
  file("sticky/mine", "mine\n", 0666, kNobody, kNogroup);
}

// The script: every line "what: errno | state".
std::vector<std::string> script(const std::string& b) {
  std::vector<std::string> t;
  mode_t old_umask = ::umask(022);
  auto P = [&](const std::string& r) { return b + "/" + r; };
  auto emit = [&](const std::string& what, int e, const std::string& state) {
    t.push_back(what + ": " + ename(e) + (state.empty() ? "" : " | " + state));
  };
  // The call first, then the state after it (function arguments would be
  // evaluated in no fixed order).
#define line(what, call, ...)                        \
  do {                                               \
    long rc_ = (call);                               \
    int e_ = rc_ < 0 ? errno : 0;                    \
    emit(what, e_, std::string(__VA_ARGS__));        \
  } while (0)
  auto as_nobody = [&](const std::string& what, const std::function<int()>& fn, const std::string& path) {
    int e = errno_as(kNobody, kNogroup, fn);
    t.push_back(what + ": " + ename(e) + " | " + desc(path));
  };
  std::string long255(255, 'n'), long256(256, 'n'), long250(250, 'm');

  // chmod
  line("chmod file", ::chmod(P("chmod_f").c_str(), 0600), desc(P("chmod_f")));
  line("chmod through symlink", ::chmod(P("sym").c_str(), 0640), desc(P("chmod_t")) + " / " + desc(P("sym")));
  line("fchmodat nofollow symlink", ::fchmodat(AT_FDCWD, P("sym").c_str(), 0600, AT_SYMLINK_NOFOLLOW), desc(P("sym")));
  line("chmod missing", ::chmod(P("missing").c_str(), 0600));
  line("chmod below file", ::chmod(P("chmod_f/x").c_str(), 0600));
  line("chmod setuid", ::chmod(P("chmod_f").c_str(), 04755), desc(P("chmod_f")));
  // chown
  line("chown file", ::chown(P("chown_f").c_str(), 1234, 5678), desc(P("chown_f")));
  line("chown group only", ::chown(P("chown_f").c_str(), static_cast<uid_t>(-1), 42), desc(P("chown_f")));
  line("lchown symlink", ::lchown(P("sym2").c_str(), 77, 88), desc(P("sym2")) + " / " + desc(P("chown_t")));
  line("chown clears set-id", ::chown(P("suid_chown").c_str(), 0, 51), desc(P("suid_chown")));
  line("chown keeps sgid without group exec", ::chown(P("sgid_noexec").c_str(), 0, 51), desc(P("sgid_noexec")));
  line("chown missing", ::chown(P("missing").c_str(), 1, 1));
  // link
  line("link", ::link(P("link_f").c_str(), P("link_g").c_str()), desc(P("link_f")) + " / " + desc(P("link_g")));
  line("link onto existing", ::link(P("link_f").c_str(), P("dir").c_str()));
  line("link directory", ::link(P("dir").c_str(), P("dir_link").c_str()));
  line("link missing", ::link(P("missing").c_str(), P("x").c_str()));
  line("link into missing dir", ::link(P("link_f").c_str(), P("nodir/x").c_str()));
  line("link 256-byte name", ::link(P("link_f").c_str(), P(long256).c_str()));
  {
    int fd = ::open(P("link_g").c_str(), O_WRONLY | O_APPEND);
    line("write through second link", fd < 0 ? -1 : ::write(fd, "more\n", 5), desc(P("link_f")));
    if (fd >= 0) ::close(fd);
  }
  line("unlink first link", ::unlink(P("link_f").c_str()), desc(P("link_f")) + " / " + desc(P("link_g")));
  // mkdir
  line("mkdir", ::mkdir(P("newdir").c_str(), 0777), desc(P("newdir")));
  line("mkdir existing", ::mkdir(P("dir").c_str(), 0755));
  line("mkdir over symlink", ::mkdir(P("dangling").c_str(), 0755));
  line("mkdir below file", ::mkdir(P("chmod_f/sub").c_str(), 0755));
  line("mkdir 256-byte name", ::mkdir(P(long256).c_str(), 0755));
  line("mkdir 250-byte name", ::mkdir(P(long250).c_str(), 0755));
  line("mkdir sgid inherits", ::chmod(P("newdir").c_str(), 02775), desc(P("newdir")));
  line("mkdir in sgid dir", ::mkdir(P("newdir/child").c_str(), 0755), desc(P("newdir/child")));
  // mkfifo, mknod
  line("mkfifo", ::mkfifo(P("fifo").c_str(), 0666), desc(P("fifo")));
  line("mkfifo existing", ::mkfifo(P("dir").c_str(), 0666));
  line("mknod char", ::mknod(P("chr").c_str(), S_IFCHR | 0600, makedev(1, 3)), desc(P("chr")));
  line("mknod socket", ::mknod(P("sock").c_str(), S_IFSOCK | 0644, 0), desc(P("sock")));
  line("mknod regular", ::mknod(P("reg").c_str(), S_IFREG | 0640, 0), desc(P("reg")));
  line("mknod existing", ::mknod(P("open_f").c_str(), S_IFIFO | 0600, 0));
  // open
  auto open_line = [&](const std::string& what, const std::string& rel, int flags, const std::string& show) {
    int fd = ::open(P(rel).c_str(), flags | O_CLOEXEC, 0640);
    int e = fd < 0 ? errno : 0;
    if (fd >= 0) ::close(fd);
    errno = e;
    line(what, fd < 0 ? -1 : 0, show.empty() ? "" : desc(P(show)));
  };
  open_line("open O_CREAT|O_EXCL existing", "open_f", O_CREAT | O_EXCL | O_WRONLY, "");
  open_line("open O_CREAT|O_EXCL symlink", "dangling", O_CREAT | O_EXCL | O_WRONLY, "dangling");
  open_line("open O_CREAT through dangling symlink", "dangling", O_CREAT | O_WRONLY, "created_through_link");
  open_line("open O_CREAT new", "created", O_CREAT | O_WRONLY, "created");
  open_line("open O_NOFOLLOW symlink", "sym", O_RDONLY | O_NOFOLLOW, "");
  open_line("open symlink loop", "loop1", O_RDONLY, "");
  open_line("open below symlink loop", "loop1/x", O_RDONLY, "");
  open_line("open O_DIRECTORY file", "open_f", O_RDONLY | O_DIRECTORY, "");
  open_line("open dir for writing", "dir", O_WRONLY, "");
  open_line("open missing", "missing", O_RDONLY, "");
  open_line("open 256-byte name", long256, O_RDONLY, "");
  open_line("open 255-byte name O_CREAT", long255, O_CREAT | O_WRONLY, "");
  open_line("open 0444 for writing as root", "ro444", O_WRONLY, "ro444");
  open_line("open O_TRUNC", "trunc", O_WRONLY | O_TRUNC, "trunc");
  {
    int fd = ::open(P("app").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    long rc = fd < 0 ? -1 : ::pwrite(fd, "tail\n", 5, 0);  // O_APPEND: offset ignored
    line("O_APPEND pwrite at 0", rc, desc(P("app")));
    if (fd >= 0) ::close(fd);
  }
  {
    int fd = ::open(P("tmpdir").c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    int e = fd < 0 ? errno : 0;
    std::string state;
    if (fd >= 0) {
      (void)!::write(fd, "tmp\n", 4);
      std::string self = "/proc/self/fd/" + std::to_string(fd);
      int l = ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, P("tmpdir/linked").c_str(), AT_SYMLINK_FOLLOW);
      state = std::string("linkat ") + (l < 0 ? ename(errno) : "ok") + " " + desc(P("tmpdir/linked"));
      ::close(fd);
    }
    errno = e;
    line("O_TMPFILE", fd < 0 ? -1 : 0, state);
  }
  // rename
  line("rename file over file", ::rename(P("ren_a").c_str(), P("ren_b").c_str()),
       desc(P("ren_a")) + " / " + desc(P("ren_b")));
  line("rename file over dir", ::rename(P("ren_file").c_str(), P("ren_dir").c_str()));
  line("rename dir over file", ::rename(P("ren_dir").c_str(), P("ren_file").c_str()));
  line("rename dir over non-empty dir", ::rename(P("ren_dir").c_str(), P("ren_full").c_str()));
  line("rename dir into itself", ::rename(P("ren_dir").c_str(), P("ren_dir/sub").c_str()));
  line("rename dir over empty dir", ::rename(P("ren_dir").c_str(), P("ren_empty").c_str()),
       desc(P("ren_dir")) + " / " + desc(P("ren_empty")));
  line("rename to itself", ::rename(P("ren_b").c_str(), P("ren_b").c_str()), desc(P("ren_b")));
  line("rename missing", ::rename(P("missing").c_str(), P("x").c_str()));
  line("rename NOREPLACE onto existing",
       ::renameat2(AT_FDCWD, P("xa").c_str(), AT_FDCWD, P("xb").c_str(), RENAME_NOREPLACE));
  line("rename EXCHANGE", ::renameat2(AT_FDCWD, P("xa").c_str(), AT_FDCWD, P("xb").c_str(), RENAME_EXCHANGE),
       desc(P("xa")) + " / " + desc(P("xb")));
  line("rename 256-byte target", ::rename(P("xa").c_str(), P(long256).c_str()));
  line("rename dir with lower entries", ::rename(P("with_lower").c_str(), P("moved").c_str()));
  t.push_back("after rename dir with lower entries: " + desc(P("with_lower")) + " / " + desc(P("moved")));
  // rmdir
  line("rmdir non-empty", ::rmdir(P("dir").c_str()));
  line("rmdir file", ::rmdir(P("open_f").c_str()));
  line("rmdir dot", ::rmdir(P("empty/.").c_str()));
  line("rmdir missing", ::rmdir(P("missing").c_str()));
  line("rmdir symlink", ::rmdir(P("sym").c_str()));
  line("rmdir then mkdir is empty", ::unlink(P("rm_me/old").c_str()) < 0 || ::rmdir(P("rm_me").c_str()) < 0 ||
                                            ::mkdir(P("rm_me").c_str(), 0700) < 0 ? -1 : 0,
       desc(P("rm_me")));
  // symlink
  line("symlink existing", ::symlink("x", P("open_f").c_str()));
  line("symlink", ::symlink("some/where/../else", P("newlink").c_str()), desc(P("newlink")));
  line("symlink 4096-byte target", ::symlink(std::string(4096, 't').c_str(), P("toolong").c_str()));
  line("symlink 256-byte name", ::symlink("x", P(long256).c_str()));
  // truncate
  line("truncate grow", ::truncate(P("tr").c_str(), 20), desc(P("tr")));
  line("truncate shrink", ::truncate(P("tr").c_str(), 4), desc(P("tr")));
  line("truncate dir", ::truncate(P("dir").c_str(), 0));
  line("truncate negative", ::truncate(P("tr").c_str(), -1));
  line("truncate missing", ::truncate(P("missing").c_str(), 0));
  line("truncate through symlink", ::truncate(P("sym").c_str(), 2), desc(P("chmod_t")));
  // unlink
  line("unlink dir", ::unlink(P("dir").c_str()));
  line("unlink missing", ::unlink(P("missing").c_str()));
  line("unlink below file", ::unlink(P("open_f/x").c_str()));
  line("unlink", ::unlink(P("unl").c_str()), desc(P("unl")));
  open_line("create after unlink", "unl", O_CREAT | O_WRONLY, "unl");
  line("unlink symlink", ::unlink(P("sym2").c_str()), desc(P("sym2")) + " / " + desc(P("chown_t")));
  // utimensat
  {
    struct timespec ts[2] = {{1111, 5}, {2222, 7}};
    line("utimensat", ::utimensat(AT_FDCWD, P("ut").c_str(), ts, 0), times_of(P("ut")));
    struct timespec om[2] = {{0, UTIME_OMIT}, {3333, 0}};
    line("utimensat atime omitted", ::utimensat(AT_FDCWD, P("ut_omit").c_str(), om, 0), times_of(P("ut_omit")));
    line("utimensat nofollow symlink", ::utimensat(AT_FDCWD, P("newlink").c_str(), ts, AT_SYMLINK_NOFOLLOW),
         times_of(P("newlink")));
    line("utimensat missing", ::utimensat(AT_FDCWD, P("missing").c_str(), ts, 0));
  }
  // Another user: set-id bits cleared by a write, sticky directory.
  as_nobody("write by other user clears set-id", [&] {
    int fd = ::open(P("suid_write").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int e = ::write(fd, "w", 1) < 0 ? errno : 0;
    ::close(fd);
    return e;
  }, P("suid_write"));
  as_nobody("sticky: unlink another user's file", [&] { return ::unlink(P("sticky/others").c_str()) < 0 ? errno : 0; },
            P("sticky/others"));
  as_nobody("sticky: rename another user's file",
            [&] { return ::rename(P("sticky/others").c_str(), P("sticky/taken").c_str()) < 0 ? errno : 0; },
            P("sticky/others"));
  as_nobody("sticky: unlink own file", [&] { return ::unlink(P("sticky/mine").c_str()) < 0 ? errno : 0; },
            P("sticky/mine"));
  as_nobody("chmod another user's file", [&] { return ::chmod(P("open_f").c_str(), 0777) < 0 ? errno : 0; },
            P("open_f"));
  auto create_as_nobody = [&](const std::string& what, const std::string& rel, mode_t mode) {
    as_nobody(what, [&] {
      int fd = ::open(P(rel).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, mode);
      if (fd < 0) return errno;
      ::close(fd);
      return 0;
    }, P(rel));
  };
  create_as_nobody("create in root-owned dir", "dir/nobody", 0644);
  create_as_nobody("create in sticky dir is owned by caller", "sticky/new", 0640);

  // The whole tree at the end.
  for (auto& rel : list_tree(b)) t.push_back("final " + rel.substr(0, 40) + ": " + desc(P(rel)));
#undef line
  ::umask(old_umask);
  return t;
}

class Posix : public RelTest {
 protected:
  void SetUp() override {
    RelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mknod, chown, other users)";
    std::string r = root();
    if (errno_as(kNobody, kNogroup, [&] { return ::access(r.c_str(), X_OK) < 0 ? errno : 0; }) != 0)
      GTEST_SKIP() << "user " << kNobody << " cannot reach " << r;
  }
  void TearDown() override {
    if (overlay_mounted_ && ::umount2(p("ov_mnt").c_str(), 0) < 0)
      ::umount2(p("ov_mnt").c_str(), MNT_DETACH);
    RelTest::TearDown();
  }
  bool overlay_mounted_ = false;
};

TEST_F(Posix, SameAnswersAsAPlainDirectoryExceptDocumentedRules) {
  build(p("plain"));
  build(p("l1"));
  build(p("ov_lower"));
  mkdirs(p("rw"));
  auto lower_before = digest_tree(p("l1"));
  std::vector<std::string> plain = script(p("plain"));

  std::vector<std::string> ov;
  mkdirs(p("ov_up"));
  mkdirs(p("ov_work"));
  mkdirs(p("ov_mnt"));
  std::string o = "lowerdir=" + p("ov_lower") + ",upperdir=" + p("ov_up") + ",workdir=" + p("ov_work");
  if (::mount("overlay", p("ov_mnt").c_str(), "overlay", 0, o.c_str()) == 0) {
    overlay_mounted_ = true;
    ov = script(p("ov_mnt"));
  } else {
    std::cout << "kernel overlayfs not available (" << errname(errno) << "): compared with the plain directory only\n";
  }

  OwnDaemon* d = start_own("rw:l1=ro+wh", "allow_other");
  ASSERT_NE(d, nullptr);
  std::vector<std::string> un = script(m());
  stop_own(d);

  // Lines by what they describe ("final NAME" lines exist where NAME does).
  auto key = [](const std::string& l) { return l.substr(0, l.find(": ")); };
  auto by_key = [&](const std::vector<std::string>& v) {
    std::map<std::string, std::string> out;
    for (auto& l : v) out[key(l)] = l;
    return out;
  };
  auto pm = by_key(plain), om = by_key(ov), um = by_key(un);
  std::vector<std::string> keys;
  for (auto& l : plain) keys.push_back(key(l));
  for (auto& l : un)
    if (!pm.count(key(l))) keys.push_back(key(l));
  auto get = [](const std::map<std::string, std::string>& mm, const std::string& k) {
    auto it = mm.find(k);
    return it == mm.end() ? std::string("(absent)") : it->second;
  };
  int documented = 0, same_as_overlay = 0;
  std::ostringstream report;
  for (auto& k : keys) {
    std::string pl = get(pm, k), u = get(um, k), ovl = ov.empty() ? "(not run)" : get(om, k);
    if (u == pl) continue;
    report << "  " << k << "\n    plain:    " << pl << "\n    overlay:  " << ovl << "\n    aufs:     " << u << "\n";
    // Final-tree lines of names a rule's operation left in another state.
    bool final_of_rule = false;
    if (k.rfind("final ", 0) == 0) {
      std::string top = k.substr(6);
      final_of_rule = kRuleNames.count(top.substr(0, top.find('/'))) > 0;
    }
    std::string rule = k;
    if (kAufsRules.count(rule) || final_of_rule) {
      ++documented;
      if (ovl == u) ++same_as_overlay;
      continue;
    }
    ADD_FAILURE() << "differs from a plain directory (not a documented AUFS rule):\n  plain: " << pl
                  << "\n  overlay: " << ovl << "\n  aufs: " << u;
  }
  int ov_diffs = 0;
  for (size_t i = 0; i < ov.size() && i < plain.size(); ++i) ov_diffs += ov[i] != plain[i];
  std::cout << "posix: " << un.size() << " transcript lines; aufs-fuse differs from the plain directory in "
            << documented << " (documented rules; " << same_as_overlay << " of them as overlayfs does); "
            << "overlayfs differs from the plain directory in " << ov_diffs << "\n"
            << report.str();
  // The copy-up of ut_omit (utimensat) read the lower file: its access
  // time must stay as it was (the daemon reads with O_NOATIME).
  struct stat lst;
  ASSERT_EQ(::lstat(p("l1/ut_omit").c_str(), &lst), 0);
  EXPECT_EQ(lst.st_atim.tv_sec, 1000000) << "a copy-up changed the lower file's access time";
  auto lower_after = digest_tree(p("l1"));
  EXPECT_TRUE(lower_after == lower_before) << "the lower branch changed:\n" << digest_diff(lower_before, lower_after);
}

}  // namespace
}  // namespace aufs::rel
