// SPDX-License-Identifier: GPL-2.0-or-later
// Faults under the rw branch: full (a 1 MiB tmpfs), made read-only, removed
// or replaced while mounted; and a daemon with a tiny RLIMIT_NOFILE. The
// callers get clear errors (ENOSPC, EROFS, ENOENT, EMFILE), no partial
// copy-up is left, the lower branch is untouched and the daemon keeps
// serving (same pid) and unmounts cleanly.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "rel_support.hpp"

namespace aufs::rel {
namespace {

class Faults : public RelTest {
 protected:
  void SetUp() override {
    RelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (tmpfs mounts)";
    std::mt19937_64 rng(42);
    mkdirs(p("l1/dir"));
    big_ = random_bytes(rng, 4 << 20);
    ASSERT_TRUE(write_file(p("l1/big4m"), big_));
    ASSERT_TRUE(write_file(p("l1/small"), "small lower file\n"));
    ASSERT_TRUE(write_file(p("l1/dir/inner"), "inner\n"));
    for (int i = 0; i < 300; ++i) ASSERT_TRUE(write_file(p("l1/dir/f" + std::to_string(i)), "f" + std::to_string(i)));
    lower_ = digest_tree(p("l1"));
  }
  void TearDown() override {
    if (!IsSkipped() && !lower_.empty()) {
      auto now = digest_tree(p("l1"));
      EXPECT_TRUE(now == lower_) << "lower branch modified:\n" << digest_diff(lower_, now);
    }
    RelTest::TearDown();
  }
  // Entries of an rw branch besides the AUFS metadata.
  std::vector<std::string> rw_entries(const std::string& rel) {
    std::vector<std::string> out;
    for (auto& n : list_tree(p(rel)))
      if (!n.starts_with(".wh..wh.aufs") && !n.starts_with(".wh..wh.orph") && !n.starts_with(".wh..wh.plnk"))
        out.push_back(n);
    return out;
  }
  std::string big_;
  std::vector<std::string> lower_;
};

TEST_F(Faults, FullRwBranchGivesEnospcAndNoPartialCopyUp) {
  ASSERT_TRUE(mount_tmpfs("rwfs", "size=1m,mode=0755"));
  OwnDaemon* d = start_own("rwfs:l1=ro+wh");
  ASSERT_NE(d, nullptr);
  pid_t pid = d->pid();
  // A 4 MiB copy-up into 1 MiB.
  EXPECT_EQ(err_of(::open(m("big4m").c_str(), O_RDWR | O_CLOEXEC)), ENOSPC);
  EXPECT_EQ(err_of(::chmod(m("big4m").c_str(), 0600)), ENOSPC);
  EXPECT_EQ(err_of(::truncate(m("big4m").c_str(), 3 << 20)), ENOSPC);
  EXPECT_EQ(rw_entries("rwfs"), std::vector<std::string>{}) << "partial copy-up left behind";
  auto chk = run_checker({p("rwfs")});
  EXPECT_EQ(chk.run.exit_code, 0) << chk.run;
  EXPECT_EQ(chk.issues, 0) << chk.run.out;
  // The union still shows the whole lower file.
  EXPECT_EQ(hash_file(m("big4m")), hash_str(big_));
  auto st = lstat_of(m("big4m"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_mode & 07777, 0644u);
  // What fits still works: a small copy-up, a partial one (truncate), a new
  // file; writing past the end of the space gives ENOSPC to the writer.
  EXPECT_EQ(err_of(::chmod(m("small").c_str(), 0600)), 0);
  EXPECT_EQ(err_of(::truncate(m("big4m").c_str(), 1000)), 0);
  EXPECT_EQ(read_file(m("big4m")), big_.substr(0, 1000));
  int fd = ::open(m("filler").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << errname(errno);
  std::string chunk(64 << 10, 'f');
  int e = 0;
  for (int i = 0; i < 64 && !e; ++i)
    if (::write(fd, chunk.data(), chunk.size()) < 0) e = errno;
  ::close(fd);
  EXPECT_EQ(e, ENOSPC);
  EXPECT_EQ(err_of(::unlink(m("filler").c_str())), 0);
  EXPECT_TRUE(d->alive());
  EXPECT_EQ(d->pid(), pid);
  stop_own(d);
  chk = run_checker({p("rwfs")});
  EXPECT_EQ(chk.issues, 0) << chk.run.out;
  umount_tmpfs("rwfs");
}

TEST_F(Faults, RwBranchMadeReadOnlyGivesErofs) {
  ASSERT_TRUE(mount_tmpfs("rwfs", "size=8m,mode=0755"));
  OwnDaemon* d = start_own("rwfs:l1=ro+wh");
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(write_file(m("before"), "written before\n"));
  // close(2) returns before the daemon has handled RELEASE (FUSE sends it
  // asynchronously): until then it holds the file open for writing and the
  // remount is refused as busy.
  auto r = run({"mount", "-o", "remount,ro", p("rwfs")});
  for (int i = 0; i < 50 && !r.ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    r = run({"mount", "-o", "remount,ro", p("rwfs")});
  }
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(err_of(::open(m("new").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), EROFS);
  EXPECT_EQ(err_of(::mkdir(m("newdir").c_str(), 0755)), EROFS);
  EXPECT_EQ(err_of(::chmod(m("small").c_str(), 0600)), EROFS);  // copy-up
  EXPECT_EQ(err_of(::open(m("dir/inner").c_str(), O_WRONLY | O_CLOEXEC)), EROFS);
  EXPECT_EQ(err_of(::unlink(m("small").c_str())), EROFS);  // whiteout
  EXPECT_EQ(err_of(::unlink(m("before").c_str())), EROFS);
  EXPECT_EQ(err_of(::rename(m("before").c_str(), m("after").c_str())), EROFS);
  EXPECT_EQ(err_of(::symlink("x", m("link").c_str())), EROFS);
  // Reading still works.
  EXPECT_EQ(read_file(m("before")), "written before\n");
  EXPECT_EQ(read_file(m("small")), "small lower file\n");
  EXPECT_EQ(list_dir(m("dir")).size(), 301u);
  // Writable again: everything works again.
  r = run({"mount", "-o", "remount,rw", p("rwfs")});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_TRUE(write_file(m("new"), "new\n"));
  EXPECT_EQ(err_of(::chmod(m("small").c_str(), 0600)), 0);
  EXPECT_EQ(err_of(::unlink(m("dir/inner").c_str())), 0);
  EXPECT_TRUE(d->alive());
  stop_own(d);
  auto chk = run_checker({p("rwfs")});
  EXPECT_EQ(chk.issues, 0) << chk.run.out;
  umount_tmpfs("rwfs");
}

TEST_F(Faults, RwBranchRemovedOrReplacedWhileMounted) {
  mkdirs(p("rw"));
  OwnDaemon* d = start_own("rw:l1=ro+wh");
  ASSERT_NE(d, nullptr);
  pid_t pid = d->pid();
  ASSERT_TRUE(write_file(m("made"), "made\n"));
  ASSERT_TRUE(remove_tree_any_depth(p("rw")));
  // Creating in a removed directory: ENOENT, as for any deleted directory.
  EXPECT_EQ(err_of(::open(m("new").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), ENOENT);
  EXPECT_EQ(err_of(::mkdir(m("newdir").c_str(), 0755)), ENOENT);
  EXPECT_EQ(err_of(::chmod(m("small").c_str(), 0600)), ENOENT);
  EXPECT_EQ(err_of(::unlink(m("small").c_str())), ENOENT);
  // The lower branch is still served.
  EXPECT_EQ(read_file(m("dir/inner")), "inner\n");
  EXPECT_EQ(lstat_errno(m("made")), ENOENT);
  // A new directory at the old path is not the branch: the daemon keeps
  // the one it opened and writes nothing into the new one.
  mkdirs(p("rw"));
  EXPECT_EQ(err_of(::open(m("new2").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), ENOENT);
  EXPECT_EQ(list_dir(p("rw")), std::vector<std::string>{});
  EXPECT_TRUE(d->alive());
  EXPECT_EQ(d->pid(), pid);
  stop_own(d);  // unmounts cleanly, exit status 0
}

TEST_F(Faults, TinyFdLimitGivesEmfileAndServiceContinues) {
  mkdirs(p("rw"));
  allow_own_log("Too many open files");
  OwnDaemon* d = start_own("rw:l1=ro+wh", "", true, 64);
  ASSERT_NE(d, nullptr);
  pid_t pid = d->pid();
  std::vector<int> fds;
  std::map<int, int> errs;
  for (int i = 0; i < 300; ++i) {
    int fd = ::open(m("dir/f" + std::to_string(i)).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) errs[errno]++;
    else fds.push_back(fd);
  }
  std::ostringstream es;
  for (auto& [e, n] : errs) es << " " << errname(e) << " x" << n;
  EXPECT_GT(fds.size(), 10u) << es.str();
  EXPECT_LT(fds.size(), 64u) << "the limit did not apply";
  EXPECT_EQ(errs.size(), 1u) << "errors:" << es.str();
  EXPECT_GT(errs[EMFILE] + errs[ENFILE], 0) << "errors:" << es.str();
  // With the fds held, other requests fail cleanly too (no crash).
  int cr = err_of(::open(m("newfile").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  EXPECT_TRUE(cr == EMFILE || cr == ENFILE || cr == 0) << errname(cr);
  if (cr == 0) ::unlink(m("newfile").c_str());
  for (int fd : fds) ::close(fd);
  EXPECT_TRUE(d->alive());
  EXPECT_EQ(d->pid(), pid);
  // Service continues once descriptors are free again.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(read_file(m("dir/f7")), "f7");
  EXPECT_TRUE(write_file(m("after"), "after\n"));
  EXPECT_EQ(read_file(p("rw/after")), "after\n");
  EXPECT_EQ(err_of(::chmod(m("small").c_str(), 0600)), 0);
  auto info = mount_info(m());
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->open_files, 0) << info->json;
  // "EMFILE logged once" (issue 6): one log line about it, not one per
  // failed request.
  std::istringstream log(read_file(d->log()));
  std::string line;
  int emfile_lines = 0;
  while (std::getline(log, line))
    if (line.find("Too many open files") != std::string::npos || line.find("EMFILE") != std::string::npos)
      ++emfile_lines;
  EXPECT_EQ(emfile_lines, 1) << read_file(d->log());
  report("emfile", "RLIMIT_NOFILE=64: " + std::to_string(fds.size()) + " files open before" + es.str());
  stop_own(d);
}

}  // namespace
}  // namespace aufs::rel
