// SPDX-License-Identifier: GPL-2.0-or-later
// Live branch changes with `mount -o remount,...` (AUFS syntax) on a mount
// made by mount(8), with files open and the daemon's default (caching)
// timeouts, so the new view must come from cache invalidation.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "tools_support.hpp"

namespace aufs::mt {
namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

std::string pread_all(int fd) {
  std::string out;
  char buf[4096];
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

class Remount : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (auto why = mount_helper_unavailable(); !why.empty()) GTEST_SKIP() << why;
    mkdirs(p("rw"));
    mkdirs(p("l1/sub"));
    ASSERT_TRUE(write_file(p("l1/lower.txt"), "lower\n"));
    ASSERT_TRUE(write_file(p("l1/sub/a.txt"), "a\n"));
    guard_ = std::make_unique<SysMountGuard>(m());
  }
  void TearDown() override {
    guard_.reset();  // umount (then umount -l) before the fixture checks
    MountTest::TearDown();
  }

  // mount -t aufs with the given branch list (absolute paths).
  void sys_mount(const std::string& br) {
    auto r = run({"mount", "-t", "aufs", "-o", "br=" + br, "none", m()});
    ASSERT_TRUE(r.ok()) << r;
    ASSERT_TRUE(in_proc_mounts(m()));
  }
  RunResult remount(const std::string& ops) {
    return run({"mount", "-o", "remount," + ops, m()});
  }
  void sys_umount() {
    auto r = run({"umount", m()});
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_FALSE(in_proc_mounts(m()));
  }

  std::unique_ptr<SysMountGuard> guard_;
};

TEST_F(Remount, AppendIsSeenAtOnceWithFilesOpen) {
  mkdirs(p("extra/sub"));
  ASSERT_TRUE(write_file(p("extra/extra.txt"), "from extra\n"));
  ASSERT_TRUE(write_file(p("extra/sub/b.txt"), "b\n"));
  ASSERT_NO_FATAL_FAILURE(sys_mount(p("rw") + ":" + p("l1") + "=ro+wh"));

  // Open files across the change: a lower file for reading, a new file for
  // writing on the rw branch.
  Fd rd(::open(m("lower.txt").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(rd.valid());
  Fd wr(::open(m("w.txt").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(wr.valid());
  ASSERT_EQ(::write(wr.get(), "one\n", 4), 4);
  // The kernel caches these answers (1 s timeouts): a negative entry and a
  // directory listing.
  EXPECT_EQ(lstat_errno(m("extra.txt")), ENOENT);
  EXPECT_EQ(list_dir(m("sub")), std::vector<std::string>{"a.txt"});

  auto r = remount("append:" + p("extra") + "=ro+wh");
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.err, "") << r;
  // At once, no waiting for a timeout.
  EXPECT_EQ(lstat_errno(m("extra.txt")), 0) << "appended branch's file not visible at once";
  EXPECT_EQ(read_file(m("extra.txt")), "from extra\n");
  EXPECT_EQ(list_dir(m("sub")), (std::vector<std::string>{"a.txt", "b.txt"}));
  EXPECT_EQ(read_file(m("sub/b.txt")), "b\n");
  // The open files were not disturbed.
  EXPECT_EQ(pread_all(rd.get()), "lower\n");
  ASSERT_EQ(::write(wr.get(), "two\n", 4), 4);
  wr.reset();
  EXPECT_EQ(read_file(p("rw/w.txt")), "one\ntwo\n");
  EXPECT_EQ(read_file(m("w.txt")), "one\ntwo\n");

  auto info = ctl_info(m());
  EXPECT_EQ(branch_rows(info),
            (std::vector<std::string>{"0:0:" + p("rw") + "=rw", "1:1:" + p("l1") + "=ro+wh",
                                      "2:2:" + p("extra") + "=ro+wh"}));
  EXPECT_EQ(info["counters"]["branch_changes"].get<long long>(), 1);
  rd.reset();
  sys_umount();
}

TEST_F(Remount, PrependMakesANewTopBranchThatShadows) {
  mkdirs(p("top"));
  ASSERT_NO_FATAL_FAILURE(sys_mount(p("rw") + ":" + p("l1") + "=ro+wh"));
  Fd rd(::open(m("lower.txt").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(rd.valid());
  // Cached positive entry and attributes (size 6).
  auto st = stat_of(m("lower.txt"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_size, 6);
  // A file made on the new branch while it is not yet part of the union.
  ASSERT_TRUE(write_file(p("top/lower.txt"), "top version, longer\n"));

  auto r = remount("prepend:" + p("top") + "=rw");
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(read_file(m("lower.txt")), "top version, longer\n") << "top branch does not shadow";
  st = stat_of(m("lower.txt"));
  ASSERT_TRUE(st.has_value()) << "stat after prepend: " << errname(lstat_errno(m("lower.txt")));
  EXPECT_EQ(st->st_size, 20) << "stale cached attributes after prepend";
  // The file opened before the change still reads, whole: AUFS revalidates
  // open files lazily, so either the old or the new copy is fine, a mix or
  // an error is not.
  std::string via_old_fd = pread_all(rd.get());
  EXPECT_TRUE(via_old_fd == "lower\n" || via_old_fd == "top version, longer\n") << via_old_fd;
  // New files go to the new top (rw) branch.
  ASSERT_TRUE(write_file(m("created.txt"), "c\n"));
  EXPECT_EQ(read_file(p("top/created.txt")), "c\n");
  EXPECT_FALSE(exists(p("rw/created.txt")));

  auto info = ctl_info(m());
  EXPECT_EQ(branch_rows(info),
            (std::vector<std::string>{"0:2:" + p("top") + "=rw", "1:0:" + p("rw") + "=rw",
                                      "2:1:" + p("l1") + "=ro+wh"}));
  rd.reset();
  sys_umount();
}

TEST_F(Remount, DelWithOpenFileIsBusyThenSucceeds) {
  mkdirs(p("l2"));
  ASSERT_TRUE(write_file(p("l2/only2.txt"), "only in l2\n"));
  std::string l2_before = snapshot(p("l2"));
  ASSERT_NO_FATAL_FAILURE(sys_mount(p("rw") + ":" + p("l1") + "=ro+wh:" + p("l2") + "=ro+wh"));
  auto before = ctl_info(m());
  ASSERT_EQ(before["branches"].size(), 3u);

  Fd held(::open(m("only2.txt").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(held.valid());
  auto r = remount("del:" + p("l2"));
  EXPECT_NE(r.exit_code, 0) << "del of a branch with an open file succeeded\n" << r;
  EXPECT_TRUE(one_error_line(r, {"mount.aufs: "}));
  // The daemon's own reason, not just the errno.
  std::string why = "branch '" + p("l2") + "' has open files";
  EXPECT_NE(r.err.find(why), std::string::npos) << r;
  r = run({aufsctl_binary(), m(), "del", p("l2")});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(one_error_line(r, {"aufsctl: "}));
  EXPECT_NE(r.err.find(why), std::string::npos) << r;
  auto mid = ctl_info(m());
  EXPECT_EQ(branch_rows(mid), branch_rows(before)) << "refused del changed the branch list";
  EXPECT_EQ(mid["counters"]["open_files"].get<long long>(), 1);
  EXPECT_EQ(pread_all(held.get()), "only in l2\n");
  EXPECT_EQ(read_file(m("only2.txt")), "only in l2\n");

  // Closed: the del goes through and the branch's files vanish at once.
  held.reset();
  r = remount("del:" + p("l2"));
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(lstat_errno(m("only2.txt")), ENOENT) << "file of the deleted branch still visible";
  EXPECT_EQ(list_dir(m()), (std::vector<std::string>{"lower.txt", "sub"}));
  auto after = ctl_info(m());
  EXPECT_EQ(branch_rows(after),
            (std::vector<std::string>{"0:0:" + p("rw") + "=rw", "1:1:" + p("l1") + "=ro+wh"}));
  // del of a path that is no branch is ignored (AUFS).
  r = remount("del:" + p("l2"));
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(branch_rows(ctl_info(m())), branch_rows(after));
  sys_umount();
  EXPECT_EQ(snapshot(p("l2")), l2_before) << "the deleted branch was modified";
}

TEST_F(Remount, ModRwToRoAndBack) {
  ASSERT_TRUE(write_file(p("rw/mine.txt"), "mine\n"));
  ASSERT_NO_FATAL_FAILURE(sys_mount(p("rw") + ":" + p("l1") + "=ro+wh"));
  ASSERT_TRUE(sh("rm " + q(m("lower.txt")), root()).ok());  // makes the whiteout base
  ASSERT_TRUE(exists(p("rw/.wh..wh.aufs")));

  // A file open for writing blocks rw -> ro.
  Fd wr(::open(m("w.txt").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(wr.valid());
  auto r = remount("mod:" + p("rw") + "=ro");
  EXPECT_NE(r.exit_code, 0) << "mod rw->ro with a writer open succeeded\n" << r;
  EXPECT_TRUE(one_error_line(r, {"mount.aufs: "}));
  EXPECT_NE(r.err.find("branch '" + p("rw") + "' has files open for writing"), std::string::npos) << r;
  EXPECT_EQ(ctl_info(m())["branches"][0]["perm"].get<std::string>(), "rw");
  ASSERT_EQ(::write(wr.get(), "still writable\n", 15), 15);
  wr.reset();
  EXPECT_EQ(read_file(p("rw/w.txt")), "still writable\n");

  // A reader does not block it.
  Fd rd(::open(m("mine.txt").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(rd.valid());
  r = remount("mod:" + p("rw") + "=ro");
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(ctl_info(m())["branches"][0]["perm"].get<std::string>(), "ro");
  EXPECT_EQ(pread_all(rd.get()), "mine\n");
  rd.reset();
  // No writable branch left: every change is EROFS.
  std::string nf = m("new.txt"), mine = m("mine.txt"), dir = m("newdir");
  EXPECT_ERRNO(EROFS, ::open(nf.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  EXPECT_ERRNO(EROFS, ::open(mine.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  EXPECT_ERRNO(EROFS, ::mkdir(dir.c_str(), 0755));
  EXPECT_ERRNO(EROFS, ::unlink(mine.c_str()));
  EXPECT_EQ(read_file(m("mine.txt")), "mine\n");
  // A plain ro branch's whiteouts are not looked up (AUFS; ro+wh would
  // honour them), so the removed lower file shows again.
  EXPECT_EQ(read_file(m("lower.txt")), "lower\n");
  // AUFS: rw->ro removes the whiteout base (and empty plnk/orph).
  EXPECT_FALSE(exists(p("rw/.wh..wh.aufs")));

  // Back to rw: writes work again and land on it.
  r = remount("mod:" + p("rw") + "=rw");
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(ctl_info(m())["branches"][0]["perm"].get<std::string>(), "rw");
  EXPECT_EQ(lstat_errno(m("lower.txt")), ENOENT) << "whiteout not honoured again";
  // AUFS: ro->rw creates the whiteout base again.
  EXPECT_TRUE(exists(p("rw/.wh..wh.aufs")));
  ASSERT_TRUE(write_file(m("new.txt"), "new\n"));
  EXPECT_EQ(read_file(p("rw/new.txt")), "new\n");
  ASSERT_TRUE(append_file(m("mine.txt"), "more\n"));
  EXPECT_EQ(read_file(p("rw/mine.txt")), "mine\nmore\n");
  EXPECT_EQ(read_file(p("l1/lower.txt")), "lower\n");
  sys_umount();
}

TEST_F(Remount, BranchIdsStayStableAcrossReorders) {
  for (auto d : {"a", "b", "c", "d", "e"}) mkdirs(p(d));
  ASSERT_NO_FATAL_FAILURE(
      sys_mount(p("a") + "=rw:" + p("b") + "=ro+wh:" + p("c") + "=ro+wh"));
  auto ids = [&] {
    std::map<std::string, long long> out;
    for (auto& [path, id] : branch_ids(ctl_info(m())))
      out[path.substr(path.find_last_of('/') + 1)] = id;
    return out;
  };
  EXPECT_EQ(ids(), (std::map<std::string, long long>{{"a", 0}, {"b", 1}, {"c", 2}}));
  long long gen0 = ctl_info(m())["generation"].get<long long>();

  // Several operations in one remount, applied left to right.
  auto r = remount("prepend:" + p("d") + "=rw,del:" + p("a"));
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(branch_rows(ctl_info(m())),
            (std::vector<std::string>{"0:3:" + p("d") + "=rw", "1:1:" + p("b") + "=ro+wh",
                                      "2:2:" + p("c") + "=ro+wh"}));
  // ins: is add:; the re-added "a" gets a new id, never a reused one.
  r = remount("ins:1:" + p("e") + "=ro,append:" + p("a") + "=ro");
  ASSERT_TRUE(r.ok()) << r;
  auto info = ctl_info(m());
  EXPECT_EQ(branch_rows(info),
            (std::vector<std::string>{"0:3:" + p("d") + "=rw", "1:4:" + p("e") + "=ro",
                                      "2:1:" + p("b") + "=ro+wh", "3:2:" + p("c") + "=ro+wh",
                                      "4:5:" + p("a") + "=ro"}));
  EXPECT_GT(info["generation"].get<long long>(), gen0);
  // mod keeps the id.
  r = remount("mod:" + p("b") + "=rr");
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(ids(), (std::map<std::string, long long>{
                       {"a", 5}, {"b", 1}, {"c", 2}, {"d", 3}, {"e", 4}}));
  // All or nothing: a failing op later in the list undoes nothing because
  // nothing was applied.
  auto before = branch_rows(ctl_info(m()));
  r = remount("del:" + p("c") + ",add:42:" + p("a"));
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_EQ(branch_rows(ctl_info(m())), before) << "a refused remount was applied in part";
  sys_umount();
}

TEST_F(Remount, RelativePathsAndReadOnlyToggle) {
  mkdirs(p("extra"));
  ASSERT_TRUE(write_file(p("extra/extra.txt"), "x\n"));
  auto r = run({"mount", "-t", "aufs", "-o", "br=./rw:./l1=ro+wh", "none", "./mnt"}, root());
  ASSERT_TRUE(r.ok()) << r;
  // Relative paths are resolved against the caller's cwd, not the daemon's.
  r = run({"mount", "-o", "remount,append:./extra=ro+wh", "./mnt"}, root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(branch_rows(ctl_info(m())),
            (std::vector<std::string>{"0:0:" + p("rw") + "=rw", "1:1:" + p("l1") + "=ro+wh",
                                      "2:2:" + p("extra") + "=ro+wh"}));
  EXPECT_EQ(read_file(m("extra.txt")), "x\n");
  r = run({"mount", "-o", "remount,del:./extra", "./mnt"}, root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(ctl_info(m())["branches"].size(), 2u);

  // remount,ro / remount,rw toggle the whole mount.
  r = remount("ro");
  ASSERT_TRUE(r.ok()) << r;
  auto me = mount_entry(m());
  ASSERT_TRUE(me.has_value());
  EXPECT_TRUE(me->has_opt("ro")) << me->mount_opts;
  std::string nf = m("new.txt");
  EXPECT_ERRNO(EROFS, ::open(nf.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  EXPECT_EQ(read_file(m("lower.txt")), "lower\n");
  r = remount("rw");
  ASSERT_TRUE(r.ok()) << r;
  me = mount_entry(m());
  ASSERT_TRUE(me.has_value());
  EXPECT_TRUE(me->has_opt("rw")) << me->mount_opts;
  ASSERT_TRUE(write_file(m("new.txt"), "n\n"));
  EXPECT_EQ(read_file(p("rw/new.txt")), "n\n");
  sys_umount();
}

// Options other than branch operations follow one rule in mount.aufs and
// aufsctl: the daemon accepts what the mount already has (mount(8) repeats
// fstab's options), changes what can change at run time (verbose), and
// refuses the rest with its reason.
TEST_F(Remount, OtherOptionsAreKeptChangedOrRefusedWithTheReason) {
  ASSERT_NO_FATAL_FAILURE(sys_mount(p("rw") + ":" + p("l1") + "=ro+wh"));
  auto before = ctl_info(m());
  auto refused = [&](const RunResult& r, const std::string& prefix, int code,
                     const std::string& why) {
    EXPECT_EQ(r.exit_code, code) << r;
    EXPECT_TRUE(one_error_line(r, {prefix}));
    EXPECT_NE(r.err.find(why), std::string::npos) << "expected '" << why << "'\n" << r;
  };
  refused(remount("frob"), "mount.aufs: ", 32, "unknown option 'frob'");
  refused(remount("udba=none"), "mount.aufs: ", 32,
          "option 'udba' cannot be changed by remount");
  refused(run({aufsctl_binary(), m(), "remount", "udba=none"}), "aufsctl: ", 1,
          "option 'udba' cannot be changed by remount");
  refused(run({aufsctl_binary(), m(), "remount", "frob"}), "aufsctl: ", 1,
          "unknown option 'frob'");
  refused(remount("br=" + p("l1") + ":" + p("rw")), "mount.aufs: ", 32,
          "option 'br' cannot be changed by remount");
  // A refused item refuses the whole request: the append did not happen.
  mkdirs(p("extra"));
  refused(remount("append:" + p("extra") + ",dirperm1"), "mount.aufs: ", 32,
          "option 'dirperm1' cannot be changed by remount");
  EXPECT_EQ(branch_rows(ctl_info(m())), branch_rows(before));
  EXPECT_EQ(ctl_info(m())["options"], before["options"]);

  // What the mount has already, as fstab would repeat it: accepted.
  for (const std::string& same : std::vector<std::string>{"udba=notify", "br=" + p("rw") + ":" + p("l1") + "=ro+wh",
                           "dirs=" + p("rw") + "=rw:" + p("l1") + "=ro+wh", "plink,nodirperm1"}) {
    auto r = remount(same);
    EXPECT_TRUE(r.ok()) << same << "\n" << r;
  }
  // Changes at run time.
  auto r = remount("verbose");
  EXPECT_TRUE(r.ok()) << r;
  r = run({aufsctl_binary(), m(), "remount", "noverbose"});
  EXPECT_TRUE(r.ok()) << r;
  auto after = ctl_info(m());
  EXPECT_EQ(branch_rows(after), branch_rows(before));
  EXPECT_EQ(after["generation"], before["generation"]);
  sys_umount();
}

// A request that changes nothing says so in one line, through both tools,
// and exits 0; so does a change that leaves no writable branch.
TEST_F(Remount, NoOpsAndTheLastWritableBranchSayWhatHappened) {
  ASSERT_NO_FATAL_FAILURE(sys_mount(p("rw") + ":" + p("l1") + "=ro+wh"));
  auto before = ctl_info(m());
  auto said = [&](const RunResult& r, const std::string& prefix, const std::string& what) {
    EXPECT_EQ(r.exit_code, 0) << r;
    EXPECT_EQ(r.err, prefix + m() + ": " + what + "\n") << r;
  };
  const std::string again = "nothing changed: branch '" + p("l1") + "' is branch 1 already: not added again";
  said(remount("append:" + p("l1")), "mount.aufs: ", again);
  said(run({aufsctl_binary(), m(), "append", p("l1")}), "aufsctl: ", again);
  said(remount("del:" + p("nowhere")), "mount.aufs: ",
       "nothing changed: no branch '" + p("nowhere") + "': nothing deleted");
  said(run({aufsctl_binary(), m(), "mod", p("l1") + "=ro+wh"}), "aufsctl: ",
       "nothing changed: branch '" + p("l1") + "' is ro+wh already");
  for (const char* same : {"rw", "udba=notify"})  // the default mode, by name
    said(remount(same), "mount.aufs: ", "nothing changed: the mount has these branches and options already");
  EXPECT_EQ(ctl_info(m())["generation"], before["generation"]);
  EXPECT_EQ(branch_rows(ctl_info(m())), branch_rows(before));
  // A change that happens says nothing, unless it leaves no writable branch.
  mkdirs(p("extra"));
  auto r = remount("append:" + p("extra"));
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.err, "") << r;
  said(run({aufsctl_binary(), m(), "del", p("rw")}), "aufsctl: ",
       "no writable branch is left: writes fail (EROFS) until one is added");
  EXPECT_ERRNO(EROFS, ::open(m("new.txt").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  sys_umount();
}

// A mount made read-only (-o ro) is made writable by the helper alone: it
// clears the kernel flag before it asks the daemon.
TEST_F(Remount, ReadOnlyMountBecomesWritableThroughTheHelper) {
  auto r = run({"mount", "-t", "aufs", "-o", "ro,br=" + p("rw") + "=rw:" + p("l1") + "=ro+wh",
                "none", m()});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_ERRNO(EROFS, ::open(m("new.txt").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  EXPECT_FALSE(exists(p("rw/.wh..wh.aufs"))) << "a read-only mount prepared its rw branch";
  r = remount("rw");
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_TRUE(write_file(m("new.txt"), "x\n"));
  EXPECT_EQ(read_file(p("rw/new.txt")), "x\n");
  EXPECT_EQ(ctl_info(m())["options"].get<std::string>().find(",ro"), std::string::npos);
  sys_umount();
}

// A mount whose daemon died: both tools say it is a stale aufs-fuse mount
// and how to clear it.
TEST_F(Remount, StaleMountIsNamedWithTheFix) {
  ASSERT_NO_FATAL_FAILURE(sys_mount(p("rw") + ":" + p("l1") + "=ro+wh"));
  auto pids = daemon_pids_for(m());
  ASSERT_EQ(pids.size(), 1u);
  ASSERT_EQ(::kill(pids[0], SIGKILL), 0);  // the daemon this test started
  ASSERT_TRUE(eventually([&] { return lstat_errno(m()) == ENOTCONN; }, 5000));
  std::string fix = "stale aufs-fuse mount (its daemon is gone); clear it with 'umount " + m() + "'";
  auto r = run({aufsctl_binary(), m()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(one_error_line(r, {"aufsctl: "}));
  EXPECT_NE(r.err.find(fix), std::string::npos) << r;
  r = run({aufsctl_binary(), m(), "append", p("l1")});
  EXPECT_NE(r.err.find(fix), std::string::npos) << r;
  r = remount("append:" + p("l1"));
  EXPECT_EQ(r.exit_code, 32) << r;
  EXPECT_TRUE(one_error_line(r, {"mount.aufs: "}));
  EXPECT_NE(r.err.find(fix), std::string::npos) << r;
  // Mounting on it again: the daemon says the same.
  r = run({daemon_binary(), "-f", "-o", "br=" + p("rw"), m()}, root(), 5000);
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(one_error_line(r, {"aufs-fuse: "}));
  EXPECT_NE(r.err.find("a stale FUSE mount (its daemon is gone); clear it with 'umount " + m() + "'"),
            std::string::npos) << r;
  sys_umount();
}

}  // namespace
}  // namespace aufs::mt
