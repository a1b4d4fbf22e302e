// SPDX-License-Identifier: GPL-2.0-or-later
// Copy-up: each metadata or data change of a lower object copies it to the
// rw branch with its data, mode, owner, times and xattrs; the lower branch is
// never touched.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "mount_fixture.hpp"
#include "tools_support.hpp"

namespace aufs::mt {
namespace {

constexpr time_t kOldMtime = 978307200;   // 2001-01-01 00:00:00 UTC
constexpr time_t kOldAtime = 978310800;   // 2001-01-01 01:00:00 UTC
constexpr time_t kDirMtime = 1009843200;  // 2002-01-01 00:00:00 UTC

void set_times(const std::string& path, time_t atime, time_t mtime, int flags = 0) {
  struct timespec ts[2] = {{atime, 123456789}, {mtime, 987654321}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, flags), 0) << path << " " << errname(errno);
}

class CopyUp : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw"));
    mkdirs(p("l1/sub"));
    ASSERT_TRUE(write_file(p("l1/sub/f"), "hello\n", 0640));
    ASSERT_EQ(::chown(p("l1/sub/f").c_str(), 1111, 2222), 0);
    ASSERT_EQ(::chmod(p("l1/sub/f").c_str(), 0640), 0);
    xattrs_ = ::lsetxattr(p("l1/sub/f").c_str(), "user.k", "v", 1, 0) == 0;
    if (!xattrs_) {
      ASSERT_TRUE(errno == ENOTSUP || errno == EOPNOTSUPP) << errname(errno);
    }
    set_times(p("l1/sub/f"), kOldAtime, kOldMtime);
    ASSERT_EQ(::chown(p("l1/sub").c_str(), 4321, 4321), 0);
    ASSERT_EQ(::chmod(p("l1/sub").c_str(), 0750), 0);
    set_times(p("l1/sub"), kDirMtime, kDirMtime);
    before_ = snapshot(p("l1"));
  }

  // The rw copy of sub/f has the lower data and metadata (except what the
  // operation changed, given as overrides).
  void expect_copy(const std::string& content, mode_t mode, uid_t uid, gid_t gid,
                   bool mtime_kept) {
    auto st = lstat_of(p("rw/sub/f"));
    ASSERT_TRUE(st.has_value()) << "rw/sub/f was not copied up";
    EXPECT_TRUE(S_ISREG(st->st_mode));
    EXPECT_EQ(read_file(p("rw/sub/f")), content);
    EXPECT_EQ(st->st_mode & 07777, mode);
    EXPECT_EQ(st->st_uid, uid);
    EXPECT_EQ(st->st_gid, gid);
    if (mtime_kept) {
      EXPECT_EQ(st->st_mtim.tv_sec, kOldMtime);
      EXPECT_EQ(st->st_mtim.tv_nsec, 987654321);
    }
    if (xattrs_) {
      EXPECT_EQ(get_xattr(p("rw/sub/f"), "user.k"), std::optional<std::string>("v"));
    }
    // Parent dir copied up with the lower dir's mode, owner and times.
    auto d = lstat_of(p("rw/sub"));
    ASSERT_TRUE(d.has_value());
    EXPECT_TRUE(S_ISDIR(d->st_mode));
    EXPECT_EQ(d->st_mode & 07777, 0750u);
    EXPECT_EQ(d->st_uid, 4321u);
    EXPECT_EQ(d->st_gid, 4321u);
    EXPECT_EQ(d->st_mtim.tv_sec, kDirMtime);
    // No temporaries left, nothing else created.
    EXPECT_EQ(list_dir(p("rw/sub")), (std::vector<std::string>{"f"}));
    // The union shows the copy.
    auto u = lstat_of(m("sub/f"));
    ASSERT_TRUE(u.has_value());
    EXPECT_EQ(u->st_mode & 07777, mode);
    EXPECT_EQ(u->st_uid, uid);
    EXPECT_EQ(read_file(m("sub/f")), content);
    // The lower branch is untouched.
    EXPECT_EQ(snapshot(p("l1")), before_);
  }

  bool xattrs_ = false;
  std::string before_;
};

TEST_F(CopyUp, Chmod) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("chmod 0600 mnt/sub/f", root());
  ASSERT_TRUE(r.ok()) << r;
  expect_copy("hello\n", 0600, 1111, 2222, true);
}

TEST_F(CopyUp, Chown) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("chown 1234 mnt/sub/f", root());
  ASSERT_TRUE(r.ok()) << r;
  expect_copy("hello\n", 0640, 1234, 2222, true);
}

TEST_F(CopyUp, Truncate) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("truncate -s 2 mnt/sub/f", root());
  ASSERT_TRUE(r.ok()) << r;
  expect_copy("he", 0640, 1111, 2222, false);
}

TEST_F(CopyUp, TruncateToZeroAndGrow) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_SYS_OK(::truncate(m("sub/f").c_str(), 0));
  expect_copy("", 0640, 1111, 2222, false);
  ASSERT_SYS_OK(::truncate(m("sub/f").c_str(), 3));
  EXPECT_EQ(read_file(m("sub/f")), std::string(3, '\0'));
}

TEST_F(CopyUp, ShellTruncatingRedirect) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("echo replaced > mnt/sub/f", root());
  ASSERT_TRUE(r.ok()) << r;
  expect_copy("replaced\n", 0640, 1111, 2222, false);
}

TEST_F(CopyUp, Utimes) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("touch -d '2010-05-05 05:05:05' mnt/sub/f", root());
  ASSERT_TRUE(r.ok()) << r;
  // Before anything reads the file (reading may update atime).
  auto st = lstat_of(p("rw/sub/f"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_mtim.tv_sec, 1273035905);
  EXPECT_EQ(st->st_atim.tv_sec, 1273035905);
  expect_copy("hello\n", 0640, 1111, 2222, false);
  auto u = stat_of(m("sub/f"));
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->st_mtim.tv_sec, 1273035905);
}

TEST_F(CopyUp, SetXattr) {
  if (!xattrs_) GTEST_SKIP() << "user xattrs not supported on the branch filesystem";
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("setfattr -n user.x -v 1 mnt/sub/f", root());
  if (!r.ok() && r.err.find("Operation not supported") != std::string::npos)
    GTEST_SKIP() << "setxattr through the mount: ENOTSUP";
  ASSERT_TRUE(r.ok()) << r;
  expect_copy("hello\n", 0640, 1111, 2222, true);
  EXPECT_EQ(get_xattr(p("rw/sub/f"), "user.x"), std::optional<std::string>("1"));
  auto g = sh("getfattr -n user.x --only-values mnt/sub/f", root());
  ASSERT_TRUE(g.ok()) << g;
  EXPECT_EQ(g.out, "1");
  g = sh("getfattr -n user.k --only-values mnt/sub/f", root());
  ASSERT_TRUE(g.ok()) << g;
  EXPECT_EQ(g.out, "v");
}

TEST_F(CopyUp, OpenForWriteCopiesUpWithData) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  int fd = ::open(m("sub/f").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(fd, 0) << errname(errno);
  EXPECT_TRUE(exists(p("rw/sub/f")));
  EXPECT_EQ(::write(fd, "more\n", 5), 5);
  ::close(fd);
  expect_copy("hello\nmore\n", 0640, 1111, 2222, false);
}

// volatile skips the sync before publishing a copy: the copy is the same,
// and the mount says which mode it runs in (the sync itself is checked by
// the crash-image test, tests/reliability/crash_images.sh).
TEST_F(CopyUp, VolatileCopiesTheSameAndSaysSo) {
  ASSERT_TRUE(mount("rw:l1=ro+wh", "volatile"));
  EXPECT_NE(ctl_info(m())["options"].get<std::string>().find(",volatile"), std::string::npos);
  int fd = ::open(m("sub/f").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(fd, 0) << errname(errno);
  EXPECT_EQ(::write(fd, "more\n", 5), 5);
  ::close(fd);
  expect_copy("hello\nmore\n", 0640, 1111, 2222, false);
}

TEST_F(CopyUp, DurableByDefault) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  EXPECT_EQ(ctl_info(m())["options"].get<std::string>().find("volatile"), std::string::npos);
}

TEST_F(CopyUp, ReadOnlyAccessDoesNotCopyUp) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  EXPECT_EQ(read_file(m("sub/f")), "hello\n");
  auto r = sh("cat mnt/sub/f >/dev/null && ls -l mnt/sub && stat mnt/sub/f >/dev/null", root());
  ASSERT_TRUE(r.ok()) << r;
  if (xattrs_) {
    EXPECT_EQ(get_xattr(m("sub/f"), "user.k"), std::optional<std::string>("v"));
  }
  EXPECT_FALSE(exists(p("rw/sub")));
  EXPECT_EQ(snapshot(p("l1")), before_);
}

TEST_F(CopyUp, SparseFileStaysSparse) {
  const off_t size = 100 << 20;
  {
    int fd = ::open(p("l1/big").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, size), 0);
    ASSERT_EQ(::pwrite(fd, "abc", 3, 0), 3);
    ASSERT_EQ(::pwrite(fd, "xyz", 3, 50 << 20), 3);
    ::close(fd);
  }
  before_ = snapshot(p("l1"));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("chmod 0600 mnt/big", root());
  ASSERT_TRUE(r.ok()) << r;
  auto st = lstat_of(p("rw/big"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_size, size);
  EXPECT_LT(st->st_blocks * 512, 1 << 20) << "copy-up did not keep holes";
  auto du = sh("du -k rw/big | cut -f1", root());
  ASSERT_TRUE(du.ok()) << du;
  EXPECT_LT(std::stol(du.out), 1024) << du.out;
  int fd = ::open(m("big").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  char buf[4] = {};
  EXPECT_EQ(::pread(fd, buf, 3, 0), 3);
  EXPECT_EQ(std::string(buf, 3), "abc");
  EXPECT_EQ(::pread(fd, buf, 3, 50 << 20), 3);
  EXPECT_EQ(std::string(buf, 3), "xyz");
  EXPECT_EQ(::pread(fd, buf, 3, 1 << 20), 3);
  EXPECT_EQ(std::string(buf, 3), std::string(3, '\0'));
  ::close(fd);
  EXPECT_EQ(snapshot(p("l1")), before_);
}

TEST_F(CopyUp, DeepParentsCopiedWithModeAndOwner) {
  mkdirs(p("l1/a/b/c"));
  ASSERT_EQ(::chown(p("l1/a").c_str(), 501, 502), 0);
  ASSERT_EQ(::chmod(p("l1/a").c_str(), 0711), 0);
  ASSERT_EQ(::chown(p("l1/a/b").c_str(), 503, 504), 0);
  ASSERT_EQ(::chmod(p("l1/a/b").c_str(), 0705), 0);
  ASSERT_EQ(::chmod(p("l1/a/b/c").c_str(), 0750), 0);
  set_times(p("l1/a/b/c"), kDirMtime, kDirMtime);
  set_times(p("l1/a/b"), kDirMtime, kDirMtime);
  set_times(p("l1/a"), kDirMtime, kDirMtime);
  before_ = snapshot(p("l1"));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_TRUE(write_file(m("a/b/c/new"), "n\n"));
  struct {
    const char* rel;
    mode_t mode;
    uid_t uid;
    gid_t gid;
  } want[] = {{"rw/a", 0711, 501, 502}, {"rw/a/b", 0705, 503, 504}, {"rw/a/b/c", 0750, 0, 0}};
  for (auto& w : want) {
    auto st = lstat_of(p(w.rel));
    ASSERT_TRUE(st.has_value()) << w.rel;
    EXPECT_TRUE(S_ISDIR(st->st_mode)) << w.rel;
    EXPECT_EQ(st->st_mode & 07777, w.mode) << w.rel;
    EXPECT_EQ(st->st_uid, w.uid) << w.rel;
    EXPECT_EQ(st->st_gid, w.gid) << w.rel;
  }
  // Ancestors keep their times (only c gained an entry).
  EXPECT_EQ(lstat_of(p("rw/a"))->st_mtim.tv_sec, kDirMtime);
  EXPECT_EQ(lstat_of(p("rw/a/b"))->st_mtim.tv_sec, kDirMtime);
  EXPECT_EQ(read_file(p("rw/a/b/c/new")), "n\n");
  EXPECT_EQ(list_dir(p("rw/a")), (std::vector<std::string>{"b"}));
  EXPECT_EQ(list_dir(p("rw/a/b")), (std::vector<std::string>{"c"}));
  EXPECT_EQ(snapshot(p("l1")), before_);
}

TEST_F(CopyUp, SymlinkChownCopiesTheLinkOnly) {
  ASSERT_EQ(::symlink("sub/f", p("l1/lnk").c_str()), 0);
  before_ = snapshot(p("l1"));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("chown -h 1234 mnt/lnk", root());
  ASSERT_TRUE(r.ok()) << r;
  auto st = lstat_of(p("rw/lnk"));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(S_ISLNK(st->st_mode));
  EXPECT_EQ(readlink_of(p("rw/lnk")), "sub/f");
  EXPECT_EQ(st->st_uid, 1234u);
  // The target was not copied up or changed.
  EXPECT_FALSE(exists(p("rw/sub")));
  auto u = lstat_of(m("lnk"));
  ASSERT_TRUE(u.has_value());
  EXPECT_TRUE(S_ISLNK(u->st_mode));
  EXPECT_EQ(u->st_uid, 1234u);
  EXPECT_EQ(readlink_of(m("lnk")), "sub/f");
  EXPECT_EQ(read_file(m("lnk")), "hello\n");
  EXPECT_EQ(snapshot(p("l1")), before_);
}

TEST_F(CopyUp, FifoChown) {
  ASSERT_EQ(::mkfifo(p("l1/fifo").c_str(), 0640), 0);
  ASSERT_EQ(::chmod(p("l1/fifo").c_str(), 0640), 0);
  set_times(p("l1/fifo"), kOldAtime, kOldMtime);
  before_ = snapshot(p("l1"));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("chown 1234:99 mnt/fifo", root());
  ASSERT_TRUE(r.ok()) << r;
  auto st = lstat_of(p("rw/fifo"));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(S_ISFIFO(st->st_mode));
  EXPECT_EQ(st->st_mode & 07777, 0640u);
  EXPECT_EQ(st->st_uid, 1234u);
  EXPECT_EQ(st->st_gid, 99u);
  EXPECT_EQ(st->st_mtim.tv_sec, kOldMtime);
  auto u = lstat_of(m("fifo"));
  ASSERT_TRUE(u.has_value());
  EXPECT_TRUE(S_ISFIFO(u->st_mode));
  EXPECT_EQ(u->st_uid, 1234u);
  EXPECT_EQ(snapshot(p("l1")), before_);
}

TEST_F(CopyUp, DirectoryChmodCopiesOnlyTheDirectory) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("chmod 0700 mnt/sub", root());
  ASSERT_TRUE(r.ok()) << r;
  auto st = lstat_of(p("rw/sub"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_mode & 07777, 0700u);
  EXPECT_EQ(st->st_uid, 4321u);
  EXPECT_TRUE(list_dir(p("rw/sub")).empty());
  EXPECT_EQ(list_dir(m("sub")), (std::vector<std::string>{"f"}));
  EXPECT_EQ(read_file(m("sub/f")), "hello\n");
  EXPECT_EQ(snapshot(p("l1")), before_);
}

TEST_F(CopyUp, OpenReaderSeesDataWrittenAfterCopyUp) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  int rfd = ::open(m("sub/f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(rfd, 0) << errname(errno);
  char buf[64] = {};
  ASSERT_EQ(::pread(rfd, buf, sizeof buf, 0), 6);
  EXPECT_EQ(std::string(buf, 6), "hello\n");
  EXPECT_FALSE(exists(p("rw/sub/f")));

  int wfd = ::open(m("sub/f").c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  ASSERT_GE(wfd, 0) << errname(errno);
  ASSERT_EQ(::write(wfd, "new data!\n", 10), 10);
  ASSERT_EQ(::close(wfd), 0);
  EXPECT_EQ(read_file(p("rw/sub/f")), "new data!\n");
  EXPECT_EQ(read_file(p("l1/sub/f")), "hello\n");

  ASSERT_EQ(::lseek(rfd, 0, SEEK_SET), 0);
  std::memset(buf, 0, sizeof buf);
  ssize_t n = ::read(rfd, buf, sizeof buf);
  EXPECT_EQ(n, 10);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), "new data!\n");
  struct stat st;
  ASSERT_EQ(::fstat(rfd, &st), 0);
  EXPECT_EQ(st.st_size, 10);
  ::close(rfd);
  EXPECT_EQ(snapshot(p("l1")), before_);
}

TEST_F(CopyUp, LargeFileDataIntact) {
  auto r = sh("head -c 5000000 /dev/urandom > l1/large && sha256sum < l1/large", root());
  ASSERT_TRUE(r.ok()) << r;
  std::string sum = r.out;
  before_ = snapshot(p("l1"));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  r = sh("chmod 0600 mnt/large && sha256sum < rw/large && sha256sum < mnt/large", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, sum + sum);
  EXPECT_EQ(lstat_of(p("rw/large"))->st_size, 5000000);
  EXPECT_EQ(snapshot(p("l1")), before_);
}

TEST_F(CopyUp, ConcurrentWritersCopyUpOnce) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      int fd = ::open(m("sub/f").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
      if (fd < 0) return;
      std::string line = "writer " + std::to_string(t) + "\n";
      if (::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size())) ++ok;
      ::close(fd);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
  std::string content = read_file(p("rw/sub/f"));
  EXPECT_TRUE(content.starts_with("hello\n")) << content;
  for (int t = 0; t < 4; ++t)
    EXPECT_NE(content.find("writer " + std::to_string(t) + "\n"), std::string::npos) << content;
  EXPECT_EQ(content.size(), 6u + 4 * 9u) << content;
  EXPECT_EQ(list_dir(p("rw/sub")), (std::vector<std::string>{"f"}));
  EXPECT_EQ(read_file(m("sub/f")), content);
  EXPECT_EQ(snapshot(p("l1")), before_);
}

TEST_F(CopyUp, UnlinkedOpenLowerFileStaysReadable) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  int fd = ::open(m("sub/f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << errname(errno);
  ASSERT_SYS_OK(::unlink(m("sub/f").c_str()));
  EXPECT_EQ(lstat_errno(m("sub/f")), ENOENT);
  EXPECT_TRUE(exists(p("rw/sub/.wh.f")));
  char buf[16] = {};
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), 6);
  EXPECT_EQ(std::string(buf, 6), "hello\n");
  struct stat st;
  EXPECT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 6);
  ::close(fd);
  EXPECT_EQ(snapshot(p("l1")), before_);
}

TEST_F(CopyUp, UnlinkedOpenWritableFileKeepsWorking) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  int fd = ::open(m("sub/f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << errname(errno);
  ASSERT_SYS_OK(::unlink(m("sub/f").c_str()));
  EXPECT_EQ(lstat_errno(m("sub/f")), ENOENT);
  EXPECT_EQ(::pwrite(fd, "HELLO! and more\n", 16, 0), 16);
  char buf[32] = {};
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), 16);
  EXPECT_EQ(std::string(buf, 16), "HELLO! and more\n");
  ::close(fd);
  // Only the whiteout remains visible in the rw branch.
  EXPECT_EQ(list_dir(p("rw/sub")), (std::vector<std::string>{".wh.f"}));
  EXPECT_EQ(lstat_errno(m("sub/f")), ENOENT);
  EXPECT_EQ(snapshot(p("l1")), before_);
}

// As on a local filesystem, an open file whose name is gone can still be
// reopened through /proc/self/fd (for writing too) and changed with
// fchmod/fchown/futimens; the lower branch never changes, the rw branch
// keeps nothing but the whiteout, and readers see the writes.
TEST_F(CopyUp, DeletedOpenFileCanBeReopenedAndChanged) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_TRUE(write_file(m("up"), "upper\n"));
  for (std::string name : {"sub/f", "up"}) {
    SCOPED_TRACE(name);
    int fd = ::open(m(name).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << errname(errno);
    ASSERT_SYS_OK(::unlink(m(name).c_str()));
    std::string self = "/proc/self/fd/" + std::to_string(fd);
    int rd = ::open(self.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(rd, 0) << "reopen for reading: " << errname(errno);
    ::close(rd);
    int wr = ::open(self.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(wr, 0) << "reopen for writing: " << errname(errno);
    EXPECT_EQ(::pwrite(wr, "XY", 2, 0), 2);
    ::close(wr);
    char buf[16] = {};
    ASSERT_GE(::pread(fd, buf, sizeof buf, 0), 2);
    EXPECT_EQ(std::string(buf, 2), "XY") << "the first reader does not see the write";
    EXPECT_SYS_OK(::fchmod(fd, 0604));
    EXPECT_SYS_OK(::fchown(fd, 4242, 4343));
    struct timespec ts[2] = {{kOldAtime, 0}, {kOldMtime, 0}};
    EXPECT_SYS_OK(::futimens(fd, ts));
    struct stat st;
    ASSERT_SYS_OK(::fstat(fd, &st));
    EXPECT_EQ(st.st_mode & 07777, 0604u);
    EXPECT_EQ(st.st_uid, 4242u);
    EXPECT_EQ(st.st_gid, 4343u);
    EXPECT_EQ(st.st_mtime, kOldMtime);
    ::close(fd);
    EXPECT_EQ(lstat_errno(m(name)), ENOENT);
  }
  EXPECT_EQ(list_dir(p("rw/sub")), (std::vector<std::string>{".wh.f"}));
  EXPECT_FALSE(exists(p("rw/up")));
  EXPECT_TRUE(list_dir(p("rw/.wh..wh.orph")).empty());
  EXPECT_EQ(snapshot(p("l1")), before_);
}

TEST_F(CopyUp, MmapSharedWriteLandsInRwCopy) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  int fd = ::open(m("sub/f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << errname(errno);
  void* map = ::mmap(nullptr, 6, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED) << errname(errno);
  EXPECT_EQ(std::string(static_cast<char*>(map), 6), "hello\n");
  std::memcpy(map, "HELLO", 5);
  EXPECT_EQ(::msync(map, 6, MS_SYNC), 0);
  ::munmap(map, 6);
  ::close(fd);
  EXPECT_EQ(read_file(p("rw/sub/f")), "HELLO\n");
  EXPECT_EQ(read_file(m("sub/f")), "HELLO\n");
  EXPECT_EQ(snapshot(p("l1")), before_);
}

// icex*: an xattr the rw branch cannot store fails the copy-up (and the
// operation) unless its namespace is ignored. Here a tmpfs lower branch holds
// a 10,000-byte user.* value that ext4 (a 4 KiB block) refuses with ENOSPC.
class Icex : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (tmpfs lower branch)";
    mkdirs(p("rw"));
    mkdirs(p("l1"));
    ASSERT_EQ(::mount("tmpfs", p("l1").c_str(), "tmpfs", 0, "size=4m"), 0) << errname(errno);
    tmpfs_ = true;
    ASSERT_TRUE(write_file(p("l1/f"), "data\n", 0644));
    std::string big(10000, 'b');
    if (::lsetxattr(p("l1/f").c_str(), "user.big", big.data(), big.size(), 0) != 0)
      GTEST_SKIP() << "tmpfs without user xattrs: " << errname(errno);
    ASSERT_EQ(::lsetxattr(p("l1/f").c_str(), "user.small", "s", 1, 0), 0);
    ASSERT_TRUE(write_file(p("probe"), ""));
    if (::lsetxattr(p("probe").c_str(), "user.big", big.data(), big.size(), 0) == 0)
      GTEST_SKIP() << "the rw branch's file system stores 10,000-byte xattrs";
  }
  void TearDown() override {
    unmount();  // the union first, then its lower branch
    if (tmpfs_) ::umount2(p("l1").c_str(), MNT_DETACH);
    MountTest::TearDown();
  }
  // The rw branch's names other than its fixed AUFS metadata.
  std::vector<std::string> rw_names() {
    std::vector<std::string> out;
    for (auto& n : list_dir(p("rw")))
      if (n != ".wh..wh.aufs" && n != ".wh..wh.orph" && n != ".wh..wh.plnk") out.push_back(n);
    return out;
  }
  bool tmpfs_ = false;
};

TEST_F(Icex, UnstorableXattrFailsCopyUpByDefault) {
  ASSERT_TRUE(mount("rw:l1=ro"));
  EXPECT_EQ(err_of(::chmod(m("f").c_str(), 0600)), ENOSPC);
  EXPECT_FALSE(exists(p("rw/f")));
  EXPECT_EQ(rw_names(), std::vector<std::string>{}) << "copy-up left a temporary";
  EXPECT_EQ(::lgetxattr(p("l1/f").c_str(), "user.big", nullptr, 0), 10000);
  EXPECT_EQ(read_file(m("f")), "data\n");
}

TEST_F(Icex, IcexusrIgnoresUserXattrsThatCannotBeCopied) {
  ASSERT_TRUE(mount("rw=rw+icexusr:l1=ro"));
  EXPECT_EQ(err_of(::chmod(m("f").c_str(), 0600)), 0);
  ASSERT_TRUE(exists(p("rw/f")));
  EXPECT_EQ(lstat_of(p("rw/f"))->st_mode & 07777, 0600u);
  EXPECT_EQ(get_xattr(p("rw/f"), "user.small"), std::optional<std::string>("s"));
  EXPECT_FALSE(get_xattr(p("rw/f"), "user.big").has_value());
}

TEST_F(Icex, OtherNamespaceFlagDoesNotCoverUserXattrs) {
  ASSERT_TRUE(mount("rw=rw+icexsec+icextr:l1=ro"));
  EXPECT_EQ(err_of(::chmod(m("f").c_str(), 0600)), ENOSPC);
  EXPECT_FALSE(exists(p("rw/f")));
  EXPECT_EQ(rw_names(), std::vector<std::string>{}) << "copy-up left a temporary";
}

}  // namespace
}  // namespace aufs::mt
