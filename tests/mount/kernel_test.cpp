// SPDX-License-Identifier: GPL-2.0-or-later
// Kernel-level sanity: ordinary tools and the directory stream API.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

std::string name_of(int i, char prefix = 'f') {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%c%04d", prefix, i);
  return buf;
}

class Kernel : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw/sub"));
    mkdirs(p("l1/sub/deeper"));
    write_file(p("l1/hello"), "hello world\n", 0640);
    write_file(p("l1/sub/low"), "low\n");
    write_file(p("rw/sub/high"), "high\n");
    write_file(p("l1/sub/deeper/z"), "z\n");
  }
};

TEST_F(Kernel, CommonTools) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("cat mnt/hello", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "hello world\n");
  r = sh("stat -c '%s %a %F %u %h' mnt/hello mnt/sub", root());
  ASSERT_TRUE(r.ok()) << r;
  // sub: top nlink 2 (rw, no subdirs) + (3-2) from l1 = 3.
  std::istringstream lines(r.out);
  std::string l1, l2;
  std::getline(lines, l1);
  std::getline(lines, l2);
  EXPECT_EQ(l1, "12 640 regular file 0 1");
  // Size and the rest come from the top (rw) directory.
  EXPECT_EQ(l2, std::to_string(lstat_of(p("rw/sub"))->st_size) + " 755 directory 0 3");
  r = sh("find mnt | sort", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out,
            "mnt\nmnt/hello\nmnt/sub\nmnt/sub/deeper\nmnt/sub/deeper/z\nmnt/sub/high\nmnt/sub/low\n");
  r = sh("find mnt -type f -exec cat {} + | sort", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "hello world\nhigh\nlow\nz\n");
  r = sh("ls -la mnt/sub | awk 'NR>1{print $NF}'", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, ".\n..\ndeeper\nhigh\nlow\n");
  r = sh("ls -la mnt | awk 'NR>1{print $NF}'", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, ".\n..\nhello\nsub\n");
  r = sh("cp -a mnt/sub copy && diff -r mnt/sub copy && cd mnt/sub && pwd -P", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, m("sub") + "\n");
  r = sh("du -s mnt >/dev/null && tar -C mnt -cf - . | tar -tf - | sort", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "./\n./hello\n./sub/\n./sub/deeper/\n./sub/deeper/z\n./sub/high\n./sub/low\n");
  // ".." of a subdirectory is the union root.
  EXPECT_EQ(lstat_of(m("sub/.."))->st_ino, lstat_of(m())->st_ino);
}

// The daemon grows its descriptor table before its first thread starts: a
// multi-threaded process that outgrows it waits for an RCU grace period
// (10-20 ms each time, measured on mounts with 127 branches).
TEST_F(Kernel, DescriptorTableIsSizedBeforeThreadsStart) {
  ASSERT_TRUE(mount("rw:l1"));
  auto pids = daemon_pids_for(m());
  ASSERT_EQ(pids.size(), 1u);
  struct rlimit rl {};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  // The daemon raises its soft limit to the hard one.
  unsigned long want = 8192 + 4 * 2;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) want = rl.rlim_max;
  std::istringstream status(read_file("/proc/" + std::to_string(pids[0]) + "/status"));
  unsigned long fdsize = 0;
  for (std::string line; std::getline(status, line);)
    if (line.rfind("FDSize:", 0) == 0) fdsize = std::stoul(line.substr(7));
  EXPECT_GE(fdsize, want);
}

TEST_F(Kernel, ReadOnlyMountRefusesWrites) {
  std::string before = snapshot(p("rw")) + snapshot(p("l1"));
  ASSERT_TRUE(mount("rw:l1", "ro"));
  EXPECT_EQ(read_file(m("hello")), "hello world\n");
  EXPECT_ERRNO(EROFS, ::open(m("new").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  EXPECT_ERRNO(EROFS, ::open(m("sub/high").c_str(), O_WRONLY | O_CLOEXEC));
  EXPECT_ERRNO(EROFS, ::unlink(m("hello").c_str()));
  EXPECT_ERRNO(EROFS, ::chmod(m("hello").c_str(), 0600));
  EXPECT_ERRNO(EROFS, ::mkdir(m("d").c_str(), 0755));
  unmount();
  EXPECT_EQ(snapshot(p("rw")) + snapshot(p("l1")), before) << "ro mount changed a branch";
}

TEST_F(Kernel, DirectBranchChangesAreSeen) {
  // udba=reval with zero cache timeouts: edits made directly in the branches
  // show up through the union.
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  EXPECT_EQ(list_dir(m("sub")), (std::vector<std::string>{"deeper", "high", "low"}));
  ASSERT_TRUE(write_file(p("l1/sub/added"), "added\n"));
  EXPECT_EQ(read_file(m("sub/added")), "added\n");
  ASSERT_EQ(::unlink(p("l1/sub/low").c_str()), 0);
  EXPECT_EQ(lstat_errno(m("sub/low")), ENOENT);
  ASSERT_TRUE(write_file(p("rw/sub/added"), "upper\n"));
  EXPECT_EQ(read_file(m("sub/added")), "upper\n");
  EXPECT_EQ(list_dir(m("sub")), (std::vector<std::string>{"added", "deeper", "high"}));
}

TEST_F(Kernel, MmapReadOfLowerFile) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  int fd = ::open(m("hello").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << errname(errno);
  void* map = ::mmap(nullptr, 12, PROT_READ, MAP_PRIVATE, fd, 0);
  ASSERT_NE(map, MAP_FAILED) << errname(errno);
  EXPECT_EQ(std::string(static_cast<char*>(map), 12), "hello world\n");
  ::munmap(map, 12);
  ::close(fd);
  EXPECT_FALSE(exists(p("rw/hello")));
}

TEST_F(Kernel, LargeMergedDirectoryReaddirSeekdirTelldir) {
  // rw: f0000..f0999 and a whiteout for g0005; l1: f0500..f1999 and g0005.
  mkdirs(p("rw/big"));
  mkdirs(p("l1/big"));
  for (int i = 0; i < 1000; ++i) write_file(p("rw/big/" + name_of(i)), "");
  for (int i = 500; i < 2000; ++i) write_file(p("l1/big/" + name_of(i)), "");
  write_file(p("l1/big/g0005"), "");
  ASSERT_TRUE(write_file(p("rw/big/.wh.g0005"), "", 0444));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  std::set<std::string> expected;
  for (int i = 0; i < 2000; ++i) expected.insert(name_of(i));

  DIR* d = ::opendir(m("big").c_str());
  ASSERT_NE(d, nullptr) << errname(errno);
  std::map<std::string, int> seen;
  std::vector<std::string> order;
  std::vector<long> pos_before;  // telldir() before each entry
  int dots = 0;
  for (;;) {
    long pos = ::telldir(d);
    errno = 0;
    auto* e = ::readdir(d);
    if (!e) {
      EXPECT_EQ(errno, 0) << errname(errno);
      break;
    }
    std::string n = e->d_name;
    if (n == "." || n == "..") {
      ++dots;
      continue;
    }
    seen[n]++;
    order.push_back(n);
    pos_before.push_back(pos);
  }
  EXPECT_EQ(dots, 2);
  EXPECT_EQ(order.size(), 2000u);
  for (auto& [n, c] : seen) EXPECT_EQ(c, 1) << n << " listed " << c << " times";
  std::set<std::string> got(order.begin(), order.end());
  EXPECT_EQ(got, expected);

  // seekdir back to entry k and read the same entries again, several times.
  for (size_t k : {size_t{0}, size_t{1}, size_t{700}, size_t{1234}, size_t{1999}, size_t{700}}) {
    if (k >= order.size()) continue;
    ::seekdir(d, pos_before[k]);
    for (size_t j = k; j < std::min(order.size(), k + 60); ++j) {
      auto* e = ::readdir(d);
      ASSERT_NE(e, nullptr) << "k=" << k << " j=" << j;
      EXPECT_EQ(std::string(e->d_name), order[j]) << "k=" << k << " j=" << j;
    }
  }
  // telldir in the middle of a read, continue to the end, come back.
  ::seekdir(d, pos_before[900]);
  for (int i = 0; i < 50; ++i) ASSERT_NE(::readdir(d), nullptr);
  long mid = ::telldir(d);
  std::vector<std::string> rest;
  while (auto* e = ::readdir(d)) rest.push_back(e->d_name);
  EXPECT_EQ(rest.size(), order.size() - 950);
  ::seekdir(d, mid);
  std::vector<std::string> rest2;
  while (auto* e = ::readdir(d)) rest2.push_back(e->d_name);
  EXPECT_EQ(rest, rest2);
  // rewinddir gives the whole listing again.
  ::rewinddir(d);
  size_t n = 0;
  while (auto* e = ::readdir(d)) {
    std::string s = e->d_name;
    if (s != "." && s != "..") ++n;
  }
  EXPECT_EQ(n, 2000u);

  // d_ino matches st_ino (sampled).
  ::rewinddir(d);
  int checked = 0;
  while (auto* e = ::readdir(d)) {
    std::string s = e->d_name;
    if (s == "." || s == ".." || (checked++ % 97) != 0) continue;
    auto st = lstat_of(m("big/" + s));
    ASSERT_TRUE(st.has_value()) << s;
    EXPECT_EQ(e->d_ino, st->st_ino) << s;
  }
  ::closedir(d);
  EXPECT_EQ(lstat_errno(m("big/g0005")), ENOENT);
  auto r = sh("ls mnt/big | wc -l", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "2000\n");
}

}  // namespace
}  // namespace aufs::mt
