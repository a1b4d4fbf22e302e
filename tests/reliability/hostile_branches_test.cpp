// SPDX-License-Identifier: GPL-2.0-or-later
// Hostile lower branches: symlinks to / and outside the branches, ".."
// chains, device nodes, whiteouts that are directories, symlinks or
// non-empty files, a name together with its whiteout, 255-byte names and a
// 10,000-deep directory chain. The daemon must stay up (same pid), answer
// with the errno AUFS would (spec §2.1, §3.2) and never change anything
// outside the branch roots (a sentinel directory is checksummed, / and
// /dev/null are compared).
#include <chrono>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <sstream>

#include "rel_support.hpp"

namespace aufs::rel {
namespace {

class HostileBranches : public RelTest {
 protected:
  void SetUp() override {
    RelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mknod, device nodes)";
    mkdirs(p("rw"));
    mkdirs(p("l1"));
    mkdirs(p("l2"));
    // Outside every branch.
    mkdirs(p("sentinel/sub"));
    ASSERT_TRUE(write_file(p("sentinel/secret"), "sentinel secret\n", 0600));
    ASSERT_TRUE(write_file(p("sentinel/sub/victim"), "victim\n", 0644));
    ASSERT_TRUE(write_file(p("outside_victim"), "outside\n", 0644));
    // Links out of the branch.
    ASSERT_EQ(::symlink("/", p("l1/rootlink").c_str()), 0);
    ASSERT_EQ(::symlink("../../../../../../../../../../..", p("l1/up").c_str()), 0);
    ASSERT_EQ(::symlink("../../../../../../../../../../../etc/passwd", p("l1/uppasswd").c_str()), 0);
    ASSERT_EQ(::symlink(p("sentinel").c_str(), p("l1/absdir").c_str()), 0);
    ASSERT_EQ(::symlink(p("sentinel/secret").c_str(), p("l1/abs").c_str()), 0);
    mkdirs(p("l1/links"));
    ASSERT_EQ(::symlink(p("sentinel/sub").c_str(), p("l1/links/s").c_str()), 0);
    ASSERT_EQ(::symlink("/", p("l1/links/r").c_str()), 0);
    ASSERT_EQ(::symlink("../../sentinel/sub/victim", p("l1/links/rel").c_str()), 0);
    // A directory symlink on a lower branch under a name that is a real
    // directory above: the lower link must never be followed as a
    // directory (types differ: it is skipped).
    mkdirs(p("l1/mixed"));
    ASSERT_TRUE(write_file(p("l1/mixed/own"), "own\n"));
    ASSERT_EQ(::symlink(p("sentinel/sub").c_str(), p("l2/mixed").c_str()), 0);
    // Device nodes and a fifo.
    ASSERT_EQ(::mknod(p("l1/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    ASSERT_EQ(::mknod(p("l1/fifo").c_str(), S_IFIFO | 0644, 0), 0);
    // Bad whiteouts: a directory, a symlink to the sentinel, a non-empty
    // file; each over a name on l2.
    mkdirs(p("l1/w"));
    mkdirs(p("l2/w"));
    mkdirs(p("l1/w/.wh.dirwh"));
    ASSERT_TRUE(write_file(p("l1/w/.wh.dirwh/inside"), "x"));
    ASSERT_TRUE(write_file(p("l2/w/dirwh"), "hidden by a directory whiteout\n"));
    ASSERT_EQ(::symlink(p("sentinel/secret").c_str(), p("l1/w/.wh.linkwh").c_str()), 0);
    ASSERT_TRUE(write_file(p("l2/w/linkwh"), "hidden by a symlink whiteout\n"));
    ASSERT_TRUE(write_file(p("l1/w/.wh.fullwh"), "a whiteout with content\n", 0644));
    ASSERT_TRUE(write_file(p("l2/w/fullwh"), "hidden by a non-empty whiteout\n"));
    ASSERT_TRUE(write_file(p("l2/w/visible"), "visible\n"));
    // A name and its whiteout together on one read-only branch: at the
    // root (rw is examined first) and in a directory that only l1 has.
    ASSERT_TRUE(write_file(p("l1/both"), "both\n"));
    ASSERT_TRUE(write_file(p("l1/.wh.both"), ""));
    mkdirs(p("l1/pairdir"));
    ASSERT_TRUE(write_file(p("l1/pairdir/x"), "x\n"));
    ASSERT_TRUE(write_file(p("l1/pairdir/.wh.x"), ""));
    ASSERT_TRUE(write_file(p("l1/pairdir/y"), "y\n"));
    // Long names: 255 (the maximum of the branch fs), 243 (one over the
    // AUFS limit) and 242 (the limit).
    long255_ = std::string(255, 'L');
    long243_ = std::string(243, 'M');
    long242_ = std::string(242, 'N');
    ASSERT_TRUE(write_file(p("l1/" + long255_), "255\n"));
    mkdirs(p("l1/" + std::string(250, 'D')));
    ASSERT_TRUE(write_file(p("l1/" + long243_), "243\n"));
    ASSERT_TRUE(write_file(p("l1/" + long242_), "242\n"));
    for (auto b : {"l1", "l2"}) before_[b] = digest_tree(p(b));
    sentinel_ = digest_tree(p("sentinel"));
    outside_ = digest_tree(p("outside_victim"));
    ASSERT_EQ(::lstat("/", &slash_), 0);
    ASSERT_EQ(::lstat("/dev/null", &devnull_), 0);
    ASSERT_EQ(::lstat("/etc/passwd", &passwd_), 0);
  }

  void TearDown() override {
    if (!IsSkipped() && !root().empty() && !before_.empty()) {
      for (auto& [b, dig] : before_) {
        auto now = digest_tree(p(b));
        EXPECT_TRUE(now == dig) << "branch " << b << " changed:\n" << digest_diff(dig, now);
      }
      auto s = digest_tree(p("sentinel"));
      EXPECT_TRUE(s == sentinel_) << "outside the branches:\n" << digest_diff(sentinel_, s);
      EXPECT_TRUE(digest_tree(p("outside_victim")) == outside_);
      struct stat st;
      ASSERT_EQ(::lstat("/", &st), 0);
      EXPECT_EQ(st.st_mode, slash_.st_mode);
      EXPECT_EQ(st.st_uid, slash_.st_uid);
      EXPECT_EQ(st.st_gid, slash_.st_gid);
      ASSERT_EQ(::lstat("/dev/null", &st), 0);
      EXPECT_EQ(st.st_mode, devnull_.st_mode);
      EXPECT_EQ(st.st_uid, devnull_.st_uid);
      EXPECT_EQ(st.st_rdev, devnull_.st_rdev);
      ASSERT_EQ(::lstat("/etc/passwd", &st), 0);
      EXPECT_EQ(st.st_mode, passwd_.st_mode);
      EXPECT_EQ(st.st_uid, passwd_.st_uid);
      EXPECT_EQ(st.st_size, passwd_.st_size);
    }
    RelTest::TearDown();
  }

  OwnDaemon* mount_union() {
    // dev: device nodes may be read through the union, as on any fs.
    return start_own("rw:l1=ro+wh:l2=ro+wh", "dev");
  }

  std::string long255_, long243_, long242_;
  int depth_ = 0;
  std::map<std::string, std::vector<std::string>> before_;
  std::vector<std::string> sentinel_, outside_;
  struct stat slash_ {}, devnull_ {}, passwd_ {};
};

TEST_F(HostileBranches, SymlinksAreLinksAndOperationsStayInside) {
  OwnDaemon* d = mount_union();
  ASSERT_NE(d, nullptr);
  pid_t pid = d->pid();
  EXPECT_EQ(readlink_of(m("rootlink")), "/");
  EXPECT_EQ(readlink_of(m("abs")), p("sentinel/secret"));
  // The kernel follows links met on the mount, as on any fs.
  EXPECT_EQ(read_file(m("abs")), "sentinel secret\n");
  EXPECT_EQ(lstat_errno(m("rootlink/etc/passwd")), 0);
  // The lower symlink under a name that is a directory above is skipped:
  // mixed/ is l1's directory only; nothing of the sentinel shows through.
  EXPECT_EQ(list_dir(m("mixed")), std::vector<std::string>{"own"});
  EXPECT_EQ(lstat_errno(m("mixed/victim")), ENOENT);
  EXPECT_EQ(err_of(::unlink(m("mixed/victim").c_str())), ENOENT);
  // Metadata changes on the links act on copies of the links in rw.
  for (auto n : {"rootlink", "up", "abs", "absdir", "links/s", "links/r", "links/rel"}) {
    EXPECT_EQ(err_of(::lchown(m(n).c_str(), 4321, 4321)), 0) << n;
    auto st = lstat_of(p(std::string("rw/") + n));
    ASSERT_TRUE(st.has_value()) << n;
    EXPECT_TRUE(S_ISLNK(st->st_mode)) << n;
    EXPECT_EQ(st->st_uid, 4321u) << n;
  }
  // Removing them removes links (whiteouts), never their targets.
  auto r = run({"rm", "-rf", m("links"), m("rootlink"), m("up"), m("uppasswd"), m("absdir"), m("abs"), m("mixed")});
  EXPECT_TRUE(r.ok()) << r;
  for (auto n : {"links", "rootlink", "up", "uppasswd", "absdir", "abs", "mixed"}) {
    EXPECT_EQ(lstat_errno(m(n)), ENOENT) << n;
    EXPECT_TRUE(exists(p(std::string("rw/.wh.") + n))) << n;
  }
  EXPECT_TRUE(d->alive());
  EXPECT_EQ(d->pid(), pid);
  stop_own(d);
}

TEST_F(HostileBranches, DeviceNodesAreCopiedAsNodes) {
  OwnDaemon* d = mount_union();
  ASSERT_NE(d, nullptr);
  auto st = lstat_of(m("null"));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(S_ISCHR(st->st_mode));
  EXPECT_EQ(st->st_rdev, makedev(1, 3));
  // Reading the node reads the device (mount option dev), as on any fs.
  int fd = ::open(m("null").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << errname(errno);
  char c;
  EXPECT_EQ(::read(fd, &c, 1), 0);
  ::close(fd);
  // chmod/chown copy the node up; the device itself is untouched.
  EXPECT_EQ(err_of(::chmod(m("null").c_str(), 0600)), 0);
  EXPECT_EQ(err_of(::chown(m("null").c_str(), 4321, 4321)), 0);
  auto up = lstat_of(p("rw/null"));
  ASSERT_TRUE(up.has_value());
  EXPECT_TRUE(S_ISCHR(up->st_mode));
  EXPECT_EQ(up->st_rdev, makedev(1, 3));
  EXPECT_EQ(up->st_mode & 07777, 0600u);
  EXPECT_EQ(up->st_uid, 4321u);
  EXPECT_EQ(err_of(::chmod(m("fifo").c_str(), 0600)), 0);
  auto fu = lstat_of(p("rw/fifo"));
  ASSERT_TRUE(fu.has_value());
  EXPECT_TRUE(S_ISFIFO(fu->st_mode));
  EXPECT_EQ(err_of(::unlink(m("null").c_str())), 0);
  EXPECT_EQ(err_of(::unlink(m("fifo").c_str())), 0);
  EXPECT_EQ(lstat_errno(m("null")), ENOENT);
  EXPECT_TRUE(exists(p("rw/.wh.null")));
  EXPECT_TRUE(d->alive());
  stop_own(d);
}

TEST_F(HostileBranches, BadWhiteoutsAndNameWithWhiteout) {
  OwnDaemon* d = mount_union();
  ASSERT_NE(d, nullptr);
  allow_own_log("invalid whiteout");
  // Not a regular file: the name is unusable (EIO), nothing is followed.
  EXPECT_EQ(lstat_errno(m("w/dirwh")), EIO);
  EXPECT_EQ(lstat_errno(m("w/linkwh")), EIO);
  EXPECT_EQ(err_of(::open(m("w/linkwh").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), EIO);
  EXPECT_EQ(err_of(::unlink(m("w/dirwh").c_str())), EIO);
  // A regular file with content still is a whiteout: the name is hidden.
  EXPECT_EQ(lstat_errno(m("w/fullwh")), ENOENT);
  EXPECT_EQ(read_file(m("w/visible")), "visible\n");
  auto names = list_dir(m("w"));
  for (auto& n : names) {
    EXPECT_NE(n, "fullwh");
    EXPECT_FALSE(n.starts_with(".wh.")) << n;
  }
  EXPECT_NE(std::find(names.begin(), names.end(), "visible"), names.end());
  // Creating over the non-empty whiteout works and removes nothing outside.
  ASSERT_TRUE(write_file(m("w/fullwh"), "new\n"));
  EXPECT_EQ(read_file(m("w/fullwh")), "new\n");
  // Name and whiteout on one read-only branch. At the root, branch rw is
  // examined first: l1's whiteout hides the name (l1 included).
  EXPECT_EQ(lstat_errno(m("both")), ENOENT);
  auto root_names = list_dir(m());
  EXPECT_EQ(std::find(root_names.begin(), root_names.end(), "both"), root_names.end());
  // pairdir/ exists on l1 only, so l1 is the first branch examined: AUFS
  // reports "both of real entry and whiteout found" (EIO, spec §2.1).
  EXPECT_EQ(lstat_errno(m("pairdir/x")), EIO);
  EXPECT_EQ(read_file(m("pairdir/y")), "y\n");
  // Reserved names (spec §3.2).
  EXPECT_EQ(lstat_errno(m(".wh.both")), EPERM);
  EXPECT_EQ(lstat_errno(m("w/.wh.dirwh")), EPERM);
  EXPECT_EQ(err_of(::mkdir(m(".wh.new").c_str(), 0755)), EPERM);
  EXPECT_EQ(err_of(::open(m(".wh.new").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), EPERM);
  EXPECT_EQ(err_of(::rename(m("w/visible").c_str(), m("w/.wh.visible").c_str())), EPERM);
  EXPECT_TRUE(d->alive());
  stop_own(d);
}

TEST_F(HostileBranches, LongNames) {
  OwnDaemon* d = mount_union();
  ASSERT_NE(d, nullptr);
  auto names = list_dir(m());
  auto listed = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  // Listed, but longer than 242 bytes: ENAMETOOLONG (spec §3.2).
  EXPECT_TRUE(listed(long255_));
  EXPECT_TRUE(listed(long243_));
  EXPECT_TRUE(listed(std::string(250, 'D')));
  for (auto& n : {long255_, long243_, std::string(250, 'D')}) {
    EXPECT_EQ(lstat_errno(m(n)), ENAMETOOLONG) << n.size();
    EXPECT_EQ(err_of(::open(m(n).c_str(), O_RDONLY | O_CLOEXEC)), ENAMETOOLONG) << n.size();
    EXPECT_EQ(err_of(::unlink(m(n).c_str())), ENAMETOOLONG) << n.size();
    EXPECT_EQ(err_of(::chmod(m(n).c_str(), 0600)), ENAMETOOLONG) << n.size();
  }
  EXPECT_EQ(err_of(::open(m(std::string(243, 'Z')).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), ENAMETOOLONG);
  EXPECT_EQ(err_of(::mkdir(m(std::string(243, 'Z')).c_str(), 0755)), ENAMETOOLONG);
  EXPECT_EQ(err_of(::rename(m(long242_).c_str(), m(std::string(243, 'Z')).c_str())), ENAMETOOLONG);
  // 242 bytes is fine, including its whiteout and temporary names.
  EXPECT_EQ(read_file(m(long242_)), "242\n");
  EXPECT_EQ(err_of(::chmod(m(long242_).c_str(), 0600)), 0);  // copy-up via a temporary name
  EXPECT_EQ(err_of(::unlink(m(long242_).c_str())), 0);        // whiteout .wh.<242>
  EXPECT_EQ(lstat_errno(m(long242_)), ENOENT);
  EXPECT_TRUE(exists(p("rw/.wh." + long242_)));
  ASSERT_TRUE(write_file(m(std::string(242, 'O')), "new\n"));
  EXPECT_EQ(read_file(p("rw/" + std::string(242, 'O'))), "new\n");
  EXPECT_TRUE(d->alive());
  stop_own(d);
}

// Branch paths longer than PATH_MAX (over ~2047 levels of one-letter names)
// are walked in pieces. Each operation walks the whole path, so the cost
// grows with the square of the depth: the short form stops at 2,200 levels
// (already past PATH_MAX), AUFS_LONG=1 goes to 10,000.
TEST_F(HostileBranches, DeepDirectoriesPastPathMax) {
  depth_ = static_cast<int>(env_long("AUFS_DEEP", long_mode() ? 10000 : 2200));
  mkdirs(p("l1/deep"));
  ASSERT_TRUE(make_deep_chain(p("l1/deep"), "d", depth_));
  before_["l1"] = digest_tree(p("l1"));
  OwnDaemon* d = mount_union();
  ASSERT_NE(d, nullptr);
  pid_t pid = d->pid();
  // Descend one component at a time (openat), as AUFS allows at any depth.
  int cur = ::open(m("deep").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(cur, 0) << errname(errno);
  int reached = 0, first_err = 0;
  for (int i = 0; i < depth_; ++i) {
    int sub = ::openat(cur, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sub < 0) {
      first_err = errno;
      break;
    }
    ::close(cur);
    cur = sub;
    reached = i + 1;
  }
  EXPECT_EQ(reached, depth_) << "lookup failed at depth " << reached + 1 << ": " << errname(first_err);
  if (reached == depth_) {
    // The bottom is an empty directory; a file made there copies the whole
    // chain up.
    EXPECT_EQ(list_dir("/proc/self/fd/" + std::to_string(cur)), std::vector<std::string>{});
    int fd = ::openat(cur, "bottom", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0) << "create at depth " << depth_ << ": " << errname(errno);
    if (fd >= 0) {
      EXPECT_EQ(::write(fd, "bottom\n", 7), 7);
      ::close(fd);
      // On the rw branch, at the same depth.
      int b = ::open(p("rw/deep").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      int depth = 0;
      while (b >= 0) {
        int sub = ::openat(b, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sub < 0) break;
        ::close(b);
        b = sub;
        ++depth;
      }
      EXPECT_EQ(depth, depth_);
      if (b >= 0) {
        struct stat st;
        EXPECT_EQ(::fstatat(b, "bottom", &st, AT_SYMLINK_NOFOLLOW), 0);
        ::close(b);
      }
    }
  }
  ::close(cur);
  // A recursive listing of the whole chain (find uses fd-relative walks).
  // Every request walks its branch path from the root, so the listing costs
  // the square of the depth: 12 s for 2,200 levels, minutes for 10,000.
  auto t0 = std::chrono::steady_clock::now();
  auto r = run({"find", m("deep"), "-printf", ".\\n"}, "", depth_ > 3000 ? 3600000 : 300000);
  EXPECT_TRUE(r.ok()) << r.err.substr(0, 500);
  report("deep-find", "find over " + std::to_string(depth_) + " levels: " +
                          std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()) +
                          " s");
  long lines = std::count(r.out.begin(), r.out.end(), '\n');
  EXPECT_EQ(lines, depth_ + 1 + (reached == depth_ ? 1 : 0));
  EXPECT_TRUE(d->alive()) << "daemon died";
  EXPECT_EQ(d->pid(), pid);
  EXPECT_EQ(lstat_errno(m("deep")), 0);
  stop_own(d);
}

}  // namespace
}  // namespace aufs::rel
