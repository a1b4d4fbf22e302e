// SPDX-License-Identifier: GPL-2.0-or-later
// udba=none|reval|notify: what a user sees when a branch is edited
// directly, behind the union's back. These mounts keep the daemon's own
// timeouts (mount_cached): none 86400 s, reval 1 s, notify 3600 s.
#include <dirent.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
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
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh", "udba=reval"));
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

// Found by Concurrency.DisjointNamesMatchPlainDirectoryWithKernelCache
// (TSan): the kernel counts a directory's changes from its first read, not
// from opendir. A directory opened before a removal and first read after it
// sent the listing of its opendir; the kernel kept it as current, and the
// next open, whose daemon listing had not changed since, kept that copy.
TEST_F(Udba, ListingOpenedBeforeAChangeIsNotKeptStale) {
  for (const char* mode : {"udba=notify", "udba=none"}) {
    SCOPED_TRACE(mode);
    ASSERT_TRUE(mount_cached("rw:l1=ro+wh", mode));
    using V = std::vector<std::string>;
    ASSERT_TRUE(write_file(m("sub/x"), "x\n"));
    ASSERT_TRUE(write_file(m("sub/y"), "y\n"));
    EXPECT_EQ(list_dir(m("sub")), (V{"gone2.txt", "x", "y"}));
    DIR* early = ::opendir(m("sub").c_str());  // glibc reads nothing yet
    ASSERT_NE(early, nullptr);
    ASSERT_EQ(::unlink(m("sub/x").c_str()), 0);
    DIR* fresh = ::opendir(m("sub").c_str());  // the current listing, never read
    ASSERT_NE(fresh, nullptr);
    ::closedir(fresh);
    V seen;
    while (dirent* e = ::readdir(early))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") seen.push_back(e->d_name);
    ::closedir(early);
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, (V{"gone2.txt", "y"}));
    EXPECT_EQ(list_dir(m("sub")), (V{"gone2.txt", "y"}));
    EXPECT_EQ(list_dir(m("sub")), (V{"gone2.txt", "y"}));
    unmount();
    for (auto& n : list_dir(p("rw/sub"))) ::unlink(p("rw/sub/" + n).c_str());
  }
}

// udba=notify resolves each name the daemon's own operations change, at
// times between an operation's steps (a file made over a whiteout, the
// whiteout not yet removed). That is no damaged branch, and the log said
// "... and its whiteout both exist" for about 1 create in 100.
TEST_F(Udba, NotifyReportsNoWhiteoutPairsOfItsOwnOperations) {
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(write_file(p("l1/w" + std::to_string(i)), "lower\n"));
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh"));
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 40; ++i) {
      std::string f = m("w" + std::to_string(i));
      ASSERT_EQ(::unlink(f.c_str()), 0) << errname(errno);
      ASSERT_TRUE(write_file(f, "upper\n"));
    }
  }
  EXPECT_EQ(read_file(m("w7")), "upper\n");
  unmount();
  std::string log = daemon_log();
  EXPECT_EQ(log.find("both exist"), std::string::npos) << log;
}

// The default is notify wherever inotify covers a branch (a deliberate
// difference from AUFS, whose default is reval), and aufsctl says so.
TEST_F(Udba, DefaultIsNotifyOnLocalBranches) {
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh"));
  EXPECT_NE(udba_option().find("udba=notify"), std::string::npos) << udba_option();
  Json info = ctl_info(m(""));
  ASSERT_TRUE(info.contains("udba")) << info.dump();
  EXPECT_EQ(info["udba"]["mode"], "notify");
  EXPECT_EQ(info["udba"]["default"], true);
  for (auto& b : info["branches"]) EXPECT_EQ(b["watched"], "yes") << b.dump();
  warm_caches();
  edit_branches();
  if (!eventually([&] { return all_edits_seen(); }, 800)) explain_edits();
}

// Directories keep an fd per branch part between requests. A branch
// directory renamed directly, and another made at its old path, must not
// be served through the old fd: reval finds the part again within its
// 1 s window, notify at the rename event.
TEST_F(Udba, CachedDirectoryPartsFollowADirectRename) {
  for (const char* mode : {"udba=reval", "udba=notify"}) {
    SCOPED_TRACE(mode);
    ASSERT_TRUE(mount_cached("rw:l1=ro+wh", mode));
    for (int i = 0; i < 5; ++i) {  // cached parts and the lower name set
      EXPECT_EQ(lstat_errno(m("sub/gone2.txt")), 0);
      EXPECT_EQ(lstat_errno(m("sub/absent" + std::to_string(i))), ENOENT);
    }
    ASSERT_EQ(::rename(p("l1/sub").c_str(), p("l1/moved").c_str()), 0);
    mkdirs(p("l1/sub"));
    ASSERT_TRUE(write_file(p("l1/sub/fresh.txt"), "fresh\n"));
    EXPECT_TRUE(eventually([&] {
      return read_file(m("sub/fresh.txt")) == "fresh\n" &&
             lstat_errno(m("sub/gone2.txt")) == ENOENT &&
             read_file(m("moved/gone2.txt")) == "soon gone too\n";
    }, 2500)) << "sub/fresh.txt: " << errname(lstat_errno(m("sub/fresh.txt")))
              << " sub/gone2.txt: " << errname(lstat_errno(m("sub/gone2.txt")))
              << " moved/gone2.txt: " << errname(lstat_errno(m("moved/gone2.txt")));
    unmount();
    ASSERT_EQ(::unlink(p("l1/sub/fresh.txt").c_str()), 0);
    ASSERT_EQ(::rmdir(p("l1/sub").c_str()), 0);
    ASSERT_EQ(::rename(p("l1/moved").c_str(), p("l1/sub").c_str()), 0);
  }
}

// Names absent from a read-only branch are answered from the set of names
// read from its listing; a name added there directly still shows.
TEST_F(Udba, LowerNameSetsFollowDirectEdits) {
  for (const char* mode : {"udba=reval", ""}) {
    SCOPED_TRACE(mode);
    ::usleep(60000);  // no name set for a directory changed in the last 50 ms
    ASSERT_TRUE(mount_cached("rw:l1=ro+wh", mode));
    EXPECT_EQ(list_dir(m("sub")), std::vector<std::string>{"gone2.txt"});
    for (int i = 0; i < 20; ++i)
      EXPECT_EQ(lstat_errno(m("sub/none" + std::to_string(i))), ENOENT);
    Json info = ctl_info(m(""));
    EXPECT_GT(info["dir_parts"]["set_answers"].get<long long>(), 0) << info["dir_parts"].dump();
    EXPECT_GT(info["dir_parts"]["name_sets"].get<long long>(), 0) << info["dir_parts"].dump();
    ASSERT_TRUE(write_file(p("l1/sub/none3"), "direct\n"));
    ASSERT_EQ(::unlink(p("l1/sub/gone2.txt").c_str()), 0);
    EXPECT_TRUE(eventually([&] {
      return read_file(m("sub/none3")) == "direct\n" && lstat_errno(m("sub/gone2.txt")) == ENOENT;
    }, 2500)) << "none3: " << errname(lstat_errno(m("sub/none3")))
              << " gone2.txt: " << errname(lstat_errno(m("sub/gone2.txt")));
    unmount();
    ASSERT_EQ(::unlink(p("l1/sub/none3").c_str()), 0);
    ASSERT_TRUE(write_file(p("l1/sub/gone2.txt"), "soon gone too\n"));
  }
}

// The union's own changes in a directory (whiteouts made on the writable
// branch) are reported by its watch too; they must not drop the name sets
// of the read-only parts, which did not change. Dropping them made `rm -rf`
// of a lower tree read every lower listing again at each removal.
TEST_F(Udba, OwnChangesKeepTheLowerNameSets) {
  mkdirs(p("l1/many"));
  for (int i = 0; i < 40; ++i)
    ASSERT_TRUE(write_file(p("l1/many/f" + std::to_string(i)), "x\n"));
  ::usleep(60000);  // no name set for a directory changed in the last 50 ms
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh", ""));
  ASSERT_EQ(udba_option().find("udba=notify") != std::string::npos, true) << udba_option();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(lstat_errno(m("many/absent" + std::to_string(i))), ENOENT);
  long long before = ctl_info(m(""))["dir_parts"]["set_builds"].get<long long>();
  EXPECT_GT(before, 0);
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(::unlink(m("many/f" + std::to_string(i)).c_str()), 0) << i;
    ::usleep(2000);  // the watch reports the whiteout before the next lookup
    EXPECT_EQ(lstat_errno(m("many/new" + std::to_string(i))), ENOENT);
  }
  Json info = ctl_info(m(""));
  long long builds = info["dir_parts"]["set_builds"].get<long long>() - before;
  EXPECT_LE(builds, 2) << info["dir_parts"].dump();
  EXPECT_EQ(list_dir(m("many")), std::vector<std::string>{});
  // A change made directly in the lower part still drops its set.
  ASSERT_TRUE(write_file(p("l1/many/direct"), "d\n"));
  EXPECT_TRUE(eventually([&] { return lstat_errno(m("many/direct")) == 0; }, 2500));
  unmount();
}

// The watch reports the union's own changes too, and while one is not yet
// handled a lookup cannot trust its caches blindly. Only events that made,
// removed or moved a directory make it open every branch directory again;
// for file changes it keeps them and checks the name sets' stamps. Before,
// a stream of creates and removals reopened every part at every request.
TEST_F(Udba, OwnFileChangesKeepTheCachedBranchDirectories) {
  mkdirs(p("l1/work"));
  ASSERT_TRUE(write_file(p("l1/work/lower.txt"), "lower\n"));
  ::usleep(60000);
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh", ""));
  EXPECT_EQ(lstat_errno(m("work/absent")), ENOENT);
  long long before = ctl_info(m(""))["dir_parts"]["opens"].get<long long>();
  for (int i = 0; i < 100; ++i) {
    std::string f = m("work/f" + std::to_string(i));
    ASSERT_TRUE(write_file(f, "x\n")) << i;
    EXPECT_EQ(lstat_errno(m("work/none" + std::to_string(i))), ENOENT);
    ASSERT_EQ(::unlink(f.c_str()), 0) << i;
  }
  Json info = ctl_info(m(""));
  long long opens = info["dir_parts"]["opens"].get<long long>() - before;
  EXPECT_LE(opens, 20) << info["dir_parts"].dump();
  // A direct edit right before a lookup is still seen by it.
  ASSERT_TRUE(write_file(p("l1/work/direct.txt"), "direct\n"));
  EXPECT_EQ(read_file(m("work/direct.txt")), "direct\n");
  ASSERT_EQ(::unlink(p("l1/work/lower.txt").c_str()), 0);
  EXPECT_TRUE(eventually([&] { return lstat_errno(m("work/lower.txt")) == ENOENT; }, 2500));
  unmount();
}

// The union's own changes are not reported back to it (AUFS suspends its
// watch of a branch directory while it changes it). Before, every copy-up,
// create and removal came back as events the daemon resolved again and
// turned into kernel invalidations: a GETATTR of the parent directory at
// the next path walk (640 for the bench's 1,000 chmods of lower files).
TEST_F(Udba, OwnChangesAreNotReportedBack) {
  mkdirs(p("l1/d/sub"));
  mkdirs(p("l1/d/old/inner"));
  for (int i = 0; i < 30; ++i)
    ASSERT_TRUE(write_file(p("l1/d/sub/f" + std::to_string(i)), "x\n"));
  ASSERT_TRUE(write_file(p("l1/d/old/inner/g"), "g\n"));
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh", ""));
  ASSERT_NE(udba_option().find("udba=notify"), std::string::npos) << udba_option();
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(lstat_of(m("d/sub/f" + std::to_string(i))).has_value());
  ::usleep(100000);
  auto getattrs = [&] {
    auto r = run({aufsctl_binary(), m(), "stats", "--json"});
    Json j = Json::parse(r.out, nullptr, false);
    return j.is_object() ? j["requests"]["getattr"].get<long long>() : -1;
  };
  Json before = ctl_info(m(""));
  long long reported0 = before["udba"]["events_reported"].get<long long>();
  long long dropped0 = before["udba"]["own_events_dropped"].get<long long>();
  long long ga0 = getattrs();
  // Copy-ups (the first makes the directories above): the kernel keeps
  // its entries and attributes (a create or a removal drops the parent's
  // attributes in the kernel itself, so those are not counted).
  for (int i = 0; i < 30; ++i)
    ASSERT_EQ(::chmod(m("d/sub/f" + std::to_string(i)).c_str(), 0600), 0) << i;
  ::usleep(100000);  // the watch thread has read whatever was queued
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(lstat_of(m("d/sub/f" + std::to_string(i))).has_value());
  EXPECT_EQ(getattrs() - ga0, 0);
  // Creates, writes, removals of lower names, a rename and the removal of a
  // lower directory.
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(write_file(m("d/sub/new" + std::to_string(i)), "n\n"));
  for (int i = 20; i < 30; ++i) ASSERT_EQ(::unlink(m("d/sub/f" + std::to_string(i)).c_str()), 0);
  ASSERT_EQ(::rename(m("d/sub/new0").c_str(), m("d/sub/renamed").c_str()), 0);
  ASSERT_EQ(::unlink(m("d/old/inner/g").c_str()), 0);
  ASSERT_EQ(::rmdir(m("d/old/inner").c_str()), 0);
  ::usleep(100000);
  Json after = ctl_info(m(""));
  // With passthrough the kernel writes the branch files itself, and their
  // closes are reported outside the requests that opened and released
  // them: those (one per written file at most) still come back.
  bool pt = after["fuse"]["passthrough"]["active"].is_boolean() &&
            after["fuse"]["passthrough"]["active"].get<bool>();
  EXPECT_LE(after["udba"]["events_reported"].get<long long>() - reported0, pt ? 10 : 0)
      << after["udba"].dump();
  EXPECT_GT(after["udba"]["own_events_dropped"].get<long long>(), dropped0) << after["udba"].dump();
  EXPECT_EQ(list_dir(m("d/old")), std::vector<std::string>{});
  EXPECT_TRUE(lstat_of(m("d/sub/renamed")).has_value());
  EXPECT_EQ(lstat_errno(m("d/sub/f25")), ENOENT);

  // A change made behind the mount is still reported, and shows.
  ASSERT_TRUE(write_file(p("rw/d/sub/f3"), "direct\n"));
  ASSERT_EQ(::chmod(p("rw/d/sub/f4").c_str(), 0640), 0);
  ASSERT_TRUE(write_file(p("l1/d/sub/behind"), "b\n"));
  EXPECT_TRUE(eventually([&] {
    auto st = lstat_of(m("d/sub/f4"));
    return read_file(m("d/sub/f3")) == "direct\n" && st && (st->st_mode & 07777) == 0640 &&
           lstat_errno(m("d/sub/behind")) == 0;
  }, 800));
  EXPECT_GT(ctl_info(m(""))["udba"]["events_reported"].get<long long>(), reported0);
  unmount();
}

// The root's watches are added beside the first requests (one per branch
// takes a while with many). Names looked up meanwhile must not be kept
// beyond reval's timeout: a direct edit made right after the mount shows,
// and once the watches are in, edits show at once.
TEST_F(Udba, EditsRightAfterMountingManyBranchesShow) {
  std::string br = "rw";
  for (int i = 0; i < 100; ++i) {
    mkdirs(p("many" + std::to_string(i)));
    br += ":many" + std::to_string(i) + "=ro+wh";
  }
  ASSERT_TRUE(mount_cached(br, ""));
  EXPECT_EQ(lstat_errno(m("early.txt")), ENOENT);
  ASSERT_TRUE(write_file(p("many50/early.txt"), "early\n"));
  EXPECT_TRUE(eventually([&] { return read_file(m("early.txt")) == "early\n"; }, 2500))
      << errname(lstat_errno(m("early.txt")));
  // Watched by now: the next edit needs no timeout.
  ASSERT_TRUE(eventually([&] {
    Json u = ctl_info(m(""))["udba"];
    return u.contains("watches") && u["watches"].get<long long>() >= 101;
  }, 2500)) << ctl_info(m(""))["udba"].dump();
  EXPECT_EQ(lstat_errno(m("late.txt")), ENOENT);
  ::usleep(1100000);  // past any reval timeout given before the watches
  EXPECT_EQ(lstat_errno(m("late.txt")), ENOENT);
  ASSERT_TRUE(write_file(p("many70/late.txt"), "late\n"));
  EXPECT_TRUE(eventually([&] { return read_file(m("late.txt")) == "late\n"; }, 500))
      << errname(lstat_errno(m("late.txt")));
  unmount();
}

// 200 mounts at once under the default: each daemon takes one inotify
// instance, so past the per-user limit (set to 128 in a user namespace of
// the test's own) mounts fall back to reval, say why in aufsctl, and still
// show direct edits within their 1 s timeout; the others at once.
TEST_F(Udba, TwoHundredMountsBeyondTheInotifyInstanceLimit) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  mkdirs(p("l1/d"));
  ASSERT_TRUE(write_file(p("l1/d/f"), "old\n"));
  const std::string script = R"SH(
set -e
R=$1; BIN=$2; CTL=$3; N=200
echo 128 > /proc/sys/user/max_inotify_instances
pids=""
cleanup() {
  rc=$?; set +e
  for i in $(seq $N); do mountpoint -q $R/m$i && umount $R/m$i; done
  for p in $pids; do kill $p 2>/dev/null; done
  for p in $pids; do wait $p 2>/dev/null; done
  exit $rc
}
trap cleanup EXIT
for i in $(seq $N); do
  mkdir -p $R/rw$i $R/m$i
  "$BIN" -f -o br=$R/rw$i=rw:$R/l1=ro+wh $R/m$i 2>>$R/many.log &
  pids="$pids $!"
done
for i in $(seq $N); do
  for t in $(seq 200); do mountpoint -q $R/m$i && break; sleep 0.05; done
  mountpoint -q $R/m$i || { echo "m$i: not mounted"; exit 1; }
  cat $R/m$i/d/f >/dev/null
done
notify=0; reval=0
for i in $(seq $N); do
  j=$("$CTL" $R/m$i list --json)
  case "$j" in
    *'"mode":"notify"'*) notify=$((notify+1)); echo "$i notify" >> $R/modes ;;
    *'"mode":"reval"'*'instance limit'*) reval=$((reval+1)); echo "$i reval" >> $R/modes ;;
    *) echo "m$i: unexpected: $j"; exit 1 ;;
  esac
done
echo "notify=$notify reval=$reval"
echo new > $R/l1/d/f
sleep 1.5
bad=0
for i in $(seq $N); do test "$(cat $R/m$i/d/f)" = new || bad=$((bad+1)); done
echo "stale=$bad"
)SH";
  auto probe = run({"unshare", "-U", "-r", "-m", "--propagation", "private", "true"});
  if (!probe.ok()) GTEST_SKIP() << "no user namespaces: " << probe;
  auto r = run({"unshare", "-U", "-r", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                root(), daemon_binary(), aufsctl_binary()}, "", 240000);
  ASSERT_TRUE(r.ok()) << r << read_file(p("many.log"));
  int notify = -1, reval = -1, stale = -1;
  ASSERT_EQ(std::sscanf(r.out.c_str(), "notify=%d reval=%d\nstale=%d", &notify, &reval, &stale), 3)
      << r.out;
  EXPECT_EQ(notify + reval, 200) << r.out;
  EXPECT_LE(notify, 128) << r.out;
  EXPECT_GE(reval, 72) << r.out;
  EXPECT_EQ(stale, 0) << r.out;
}

// Our own copy-up makes inotify events in the writable branch. They must not
// make the kernel drop entries that still lead where they did (a copied-up
// directory keeps its node, and the cached subtree below it), while direct
// edits in the new upper part are still seen at once.
TEST_F(Udba, OwnCopyUpKeepsKernelEntriesAndWatchesTheNewPart) {
  mkdirs(p("l1/a/b"));
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(write_file(p("l1/a/b/f" + std::to_string(i)), "x"));
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh"));
  for (int i = 0; i < 30; ++i) EXPECT_EQ(lstat_errno(m("a/b/f" + std::to_string(i))), 0);
  long before = ctl_info(m(""))["counters"]["inodes"].get<long long>();
  ASSERT_GE(before, 32);
  ASSERT_EQ(::chmod(m("a/b/f1").c_str(), 0600), 0);  // copies up a, a/b and f1
  ::usleep(200000);  // the events are handled
  long after = ctl_info(m(""))["counters"]["inodes"].get<long long>();
  EXPECT_GE(after, before) << "own copy-up events dropped cached entries";
  auto st = stat_of(m("a/b/f1"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_mode & 07777, 0600u);
  // Direct edits in the parts the copy-up made.
  ASSERT_EQ(::chmod(p("rw/a/b/f1").c_str(), 0640), 0);
  ASSERT_TRUE(write_file(p("rw/a/b/direct"), "d\n"));
  ASSERT_EQ(::unlink(p("rw/a/b/f1").c_str()), 0);
  EXPECT_TRUE(eventually([&] {
    auto s2 = stat_of(m("a/b/f1"));
    return read_file(m("a/b/direct")) == "d\n" && s2 && (s2->st_mode & 07777) == 0644;
  }, 800)) << "direct edits in a copied-up directory were not seen";
}

}  // namespace
}  // namespace aufs::mt
