// SPDX-License-Identifier: GPL-2.0-or-later
// udba=none|reval|notify: what a user sees when a branch is edited
// directly, behind the union's back. These mounts keep the daemon's own
// timeouts (mount_cached): none 86400 s, reval 1 s, notify 3600 s.
#include <sys/mman.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "tools_support.hpp"

namespace aufs::mt {
namespace {

using Clock = std::chrono::steady_clock;

class Udba : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw"));
    mkdirs(p("l1/sub"));
    ASSERT_TRUE(write_file(p("l1/data.txt"), "old\n"));
    ASSERT_TRUE(write_file(p("l1/gone.txt"), "soon gone\n"));
    ASSERT_TRUE(write_file(p("l1/shadow.txt"), "lower\n"));
    ASSERT_TRUE(write_file(p("l1/sub/gone2.txt"), "soon gone too\n"));
  }

  // Looks everything up through the mount so the kernel caches it:
  // positive entries with attributes, negative entries, the sub directory.
  // read_contents=false only stats: reading a file makes the kernel drop
  // its cached atime, and the next full stat then asks the daemon.
  void warm_caches(bool read_contents = true) {
    if (read_contents) {
      EXPECT_EQ(read_file(m("data.txt")), "old\n");
      EXPECT_EQ(read_file(m("gone.txt")), "soon gone\n");
      EXPECT_EQ(read_file(m("shadow.txt")), "lower\n");
      EXPECT_EQ(read_file(m("sub/gone2.txt")), "soon gone too\n");
    } else {
      for (const char* n : {"gone.txt", "shadow.txt", "sub/gone2.txt"})
        EXPECT_EQ(lstat_errno(m(n)), 0) << n;
    }
    EXPECT_EQ(lstat_errno(m("new.txt")), ENOENT);
    EXPECT_EQ(lstat_errno(m("sub/new2.txt")), ENOENT);
    auto st = stat_of(m("data.txt"));
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(st->st_size, 4);
  }

  // The same edits, made directly in the branches.
  void edit_branches() {
    ASSERT_TRUE(write_file(p("l1/new.txt"), "new in lower\n"));
    ASSERT_TRUE(write_file(p("l1/sub/new2.txt"), "new in lower sub\n"));
    ASSERT_EQ(::unlink(p("l1/gone.txt").c_str()), 0);
    ASSERT_EQ(::unlink(p("l1/sub/gone2.txt").c_str()), 0);
    ASSERT_TRUE(write_file(p("rw/shadow.txt"), "upper, made directly\n"));
    ASSERT_TRUE(write_file(p("l1/data.txt"), "rewritten directly, longer\n"));
    ASSERT_TRUE(write_file(p("l1/never-looked-up.txt"), "fresh\n"));
  }

  // True once every edit is visible through the mount.
  bool all_edits_seen() {
    return lstat_errno(m("new.txt")) == 0 && read_file(m("new.txt")) == "new in lower\n" &&
           read_file(m("sub/new2.txt")) == "new in lower sub\n" &&
           lstat_errno(m("gone.txt")) == ENOENT && lstat_errno(m("sub/gone2.txt")) == ENOENT &&
           read_file(m("shadow.txt")) == "upper, made directly\n" &&
           read_file(m("data.txt")) == "rewritten directly, longer\n";
  }

  void explain_edits() {
    ADD_FAILURE() << "state through the mount:"
                  << "\n new.txt: lstat " << errname(lstat_errno(m("new.txt")))
                  << "\n sub/new2.txt: lstat " << errname(lstat_errno(m("sub/new2.txt")))
                  << "\n gone.txt: lstat " << errname(lstat_errno(m("gone.txt")))
                  << "\n sub/gone2.txt: lstat " << errname(lstat_errno(m("sub/gone2.txt")))
                  << "\n shadow.txt: '" << read_file(m("shadow.txt")) << "'"
                  << "\n data.txt: '" << read_file(m("data.txt")) << "'";
  }

  std::string udba_option() { return ctl_info(m())["options"].get<std::string>(); }
};

TEST_F(Udba, NoneTrustsCachedNames) {
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh", "udba=none"));
  EXPECT_NE(udba_option().find("udba=none"), std::string::npos) << udba_option();
  warm_caches(false);
  // Open files pin their dentries and inodes, so nothing (not even a
  // drop_caches elsewhere on the machine) evicts these cache entries.
  int pin_gone = ::open(m("gone.txt").c_str(), O_RDONLY | O_CLOEXEC);
  int pin_data = ::open(m("data.txt").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(pin_gone, 0);
  ASSERT_GE(pin_data, 0);
  edit_branches();
  // Names the kernel has cached keep their cached answer (86400 s): the
  // deleted file is still there with its old size, the new one is absent.
  EXPECT_EQ(lstat_errno(m("gone.txt")), 0) << "cached entry was re-checked";
  auto st = stat_of(m("data.txt"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_size, 4) << "cached attributes were re-read";
  EXPECT_EQ(lstat_errno(m("new.txt")), ENOENT) << "cached negative entry was re-checked";
  EXPECT_EQ(lstat_errno(m("sub/new2.txt")), ENOENT) << "cached negative entry was re-checked";
  // A name never looked up goes to the daemon, which sees the branch.
  EXPECT_EQ(read_file(m("never-looked-up.txt")), "fresh\n");
  ::close(pin_gone);
  ::close(pin_data);
}

TEST_F(Udba, RevalSeesEditsWithinTheTimeout) {
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh"));  // the default
  EXPECT_NE(udba_option().find("udba=reval"), std::string::npos) << udba_option();
  warm_caches();
  auto t0 = Clock::now();
  edit_branches();
  // Uncached names are checked against the branches at once.
  EXPECT_EQ(read_file(m("never-looked-up.txt")), "fresh\n");
  // Cached ones once their 1 s timeout has passed.
  if (!eventually([&] { return all_edits_seen(); }, 3000)) explain_edits();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_LT(ms, 3000);
}

TEST_F(Udba, NotifySeesEditsAtOnce) {
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh", "udba=notify"));
  EXPECT_NE(udba_option().find("udba=notify"), std::string::npos) << udba_option();
  warm_caches();
  auto t0 = Clock::now();
  edit_branches();
  // Timeouts are 3600 s here; only inotify can make these visible. 800 ms
  // is under reval's 1 s timeout, so a fallback to timeouts fails too.
  bool seen = eventually([&] { return all_edits_seen(); }, 800);
  if (!seen) explain_edits();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_LT(ms, 1000);
  EXPECT_EQ(read_file(m("never-looked-up.txt")), "fresh\n");

  // And again on the same names: the renewed cache entries are watched too.
  ASSERT_TRUE(write_file(p("l1/data.txt"), "third\n"));
  ASSERT_EQ(::unlink(p("rw/shadow.txt").c_str()), 0);
  ASSERT_EQ(::unlink(p("l1/new.txt").c_str()), 0);
  EXPECT_TRUE(eventually([&] {
    return read_file(m("data.txt")) == "third\n" && read_file(m("shadow.txt")) == "lower\n" &&
           lstat_errno(m("new.txt")) == ENOENT;
  }, 800)) << "data.txt: '" << read_file(m("data.txt")) << "' shadow.txt: '"
           << read_file(m("shadow.txt")) << "' new.txt: " << errname(lstat_errno(m("new.txt")));
}

// The kernel keeps a file's cached pages across opens only while the
// backing file is unchanged (keep_cache, close-to-open): an edit made
// directly in a branch is read at the next open, even one of equal size.
TEST_F(Udba, CachedPagesDroppedWhenBranchFileChanges) {
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh"));
  EXPECT_EQ(read_file(m("data.txt")), "old\n");
  EXPECT_EQ(read_file(m("data.txt")), "old\n");
  ASSERT_TRUE(write_file(p("l1/data.txt"), "new\n"));  // same size
  EXPECT_EQ(read_file(m("data.txt")), "new\n");
  // Written through the mount, then read again: the cache is right.
  ASSERT_TRUE(write_file(m("data.txt"), "via mount\n"));
  EXPECT_EQ(read_file(m("data.txt")), "via mount\n");
  EXPECT_EQ(read_file(p("rw/data.txt")), "via mount\n");
  ASSERT_TRUE(write_file(p("rw/data.txt"), "direct!!!\n"));  // same size again
  EXPECT_EQ(read_file(m("data.txt")), "direct!!!\n");
}

// Pages of `path` in the page cache, counted right after open (which is
// when the kernel drops them unless the daemon said keep_cache).
long resident_pages_after_open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  ::fstat(fd, &st);
  long page = ::sysconf(_SC_PAGESIZE);
  size_t len = static_cast<size_t>(st.st_size);
  void* map = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return -1;
  std::vector<unsigned char> vec((len + page - 1) / page);
  long n = -1;
  if (::mincore(map, len, vec.data()) == 0) {
    n = 0;
    for (unsigned char v : vec) n += v & 1;
  }
  ::munmap(map, len);
  return n;
}

TEST_F(Udba, UnchangedFileKeepsItsCachedPagesAcrossOpens) {
  std::string big(64 * 1024, 'x');
  ASSERT_TRUE(write_file(p("l1/big.bin"), big));
  // Stamps younger than a clock tick or so are not trusted.
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh"));
  EXPECT_EQ(read_file(m("big.bin")), big);
  EXPECT_EQ(resident_pages_after_open(m("big.bin")), 16) << "cache dropped at open";
  ASSERT_TRUE(write_file(p("l1/big.bin"), std::string(64 * 1024, 'y')));
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  EXPECT_EQ(resident_pages_after_open(m("big.bin")), 0) << "stale pages kept";
  EXPECT_EQ(read_file(m("big.bin")), std::string(64 * 1024, 'y'));
}

// udba=notify when inotify runs out of watches: the directories it could not
// watch fall back to reval's 1 s timeouts, so direct edits still show up.
// Runs in a user namespace whose inotify limit is set to 4 watches (the
// union, its daemon and its mount live and die inside that namespace).
TEST_F(Udba, NotifyWithoutWatchesFallsBackToShortTimeouts) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  for (int i = 1; i <= 8; ++i) {
    mkdirs(p("l1/n" + std::to_string(i)));
    ASSERT_TRUE(write_file(p("l1/n" + std::to_string(i) + "/f"), "old\n"));
  }
  mkdirs(p("nmnt"));
  const std::string script = R"SH(
set -e
R=$1; BIN=$2
echo 4 > /proc/sys/user/max_inotify_watches
"$BIN" -f -o br=$R/rw=rw:$R/l1=ro+wh,udba=notify $R/nmnt 2>$R/notify.log &
pid=$!
trap 'rc=$?; set +e; umount $R/nmnt 2>/dev/null; kill $pid 2>/dev/null; wait $pid; exit $rc' EXIT
for i in $(seq 100); do mountpoint -q $R/nmnt && break; sleep 0.05; done
for i in 1 2 3 4 5 6 7 8; do stat -c %s $R/nmnt/n$i/f >/dev/null; test -e $R/nmnt/n$i/new || true; done
for i in 1 2 3 4 5 6 7 8; do echo new-longer > $R/l1/n$i/f; echo n > $R/l1/n$i/new; done
sleep 1.6
for i in 1 2 3 4 5 6 7 8; do echo "n$i $(stat -c %s $R/nmnt/n$i/f) $(test -e $R/nmnt/n$i/new && echo yes || echo no)"; done
)SH";
  auto probe = run({"unshare", "-U", "-r", "-m", "--propagation", "private", "true"});
  if (!probe.ok()) GTEST_SKIP() << "no user namespaces: " << probe;
  auto r = run({"unshare", "-U", "-r", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                root(), daemon_binary()}, "", 30000);
  ASSERT_TRUE(r.ok()) << r << read_file(p("notify.log"));
  std::string want;
  for (int i = 1; i <= 8; ++i) want += "n" + std::to_string(i) + " 11 yes\n";
  EXPECT_EQ(r.out, want) << "edits in unwatched directories stayed invisible";
  EXPECT_NE(read_file(p("notify.log")).find("fall back to udba=reval"), std::string::npos)
      << read_file(p("notify.log"));
}

// A merged listing follows direct edits of a lower branch copy at the next
// opendir (the top copy's times unchanged), and changes through the mount.
TEST_F(Udba, ListingFollowsALowerCopyChange) {
  mkdirs(p("rw/sub"));
  ASSERT_TRUE(write_file(p("rw/sub/top"), "t\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh"));
  std::vector<std::string> want{"gone2.txt", "top"};
  EXPECT_EQ(list_dir(m("sub")), want);
  EXPECT_EQ(list_dir(m("sub")), want);
  ASSERT_TRUE(write_file(p("l1/sub/added"), "a\n"));
  want = {"added", "gone2.txt", "top"};
  EXPECT_EQ(list_dir(m("sub")), want) << "stale listing";
  ASSERT_EQ(::unlink(p("l1/sub/gone2.txt").c_str()), 0);
  want = {"added", "top"};
  EXPECT_EQ(list_dir(m("sub")), want) << "stale listing";
  ASSERT_TRUE(write_file(m("sub/made"), "m\n"));
  want = {"added", "made", "top"};
  EXPECT_EQ(list_dir(m("sub")), want);
}

// udba=notify and none let the kernel keep directory listings between opens
// (cache_readdir); an open keeps the kernel's copy only while the daemon's
// listing is unchanged, so edits through the mount and in the branches
// still show at the next listing.
TEST_F(Udba, ListingsKeptByTheKernelFollowEdits) {
  for (const char* mode : {"udba=notify", "udba=none", "udba=reval"}) {
    SCOPED_TRACE(mode);
    ASSERT_TRUE(mount_cached("rw:l1=ro+wh", mode));
    using V = std::vector<std::string>;
    EXPECT_EQ(list_dir(m("sub")), V{"gone2.txt"});
    EXPECT_EQ(list_dir(m("sub")), V{"gone2.txt"});  // served from the kernel's copy
    ASSERT_TRUE(write_file(m("sub/made.txt"), "x"));
    EXPECT_EQ(list_dir(m("sub")), (V{"gone2.txt", "made.txt"}));
    ::usleep(20000);  // a new mtime tick for the direct edits
    ASSERT_TRUE(write_file(p("l1/sub/direct.txt"), "d"));
    ASSERT_EQ(::unlink(p("l1/sub/gone2.txt").c_str()), 0);
    V want{"direct.txt", "made.txt"};
    EXPECT_TRUE(eventually([&] { return list_dir(m("sub")) == want; }, 800))
        << "listed: " << ::testing::PrintToString(list_dir(m("sub")));
    ASSERT_EQ(::unlink(m("sub/made.txt").c_str()), 0);
    EXPECT_EQ(list_dir(m("sub")), V{"direct.txt"});
    unmount();
    // Back to the fixture's lower branch for the next mode.
    ASSERT_EQ(::unlink(p("l1/sub/direct.txt").c_str()), 0);
    ASSERT_TRUE(write_file(p("l1/sub/gone2.txt"), "soon gone too\n"));
    for (auto& n : list_dir(p("rw/sub"))) ::unlink(p("rw/sub/" + n).c_str());
  }
}


}  // namespace
}  // namespace aufs::mt
