// SPDX-License-Identifier: GPL-2.0-or-later
// Request counts (user.aufs.stats, aufsctl stats): known operations on a
// mount whose kernel caches are long-lived (udba=none), so the requests each
// one costs are exact.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <unistd.h>

#include <map>
#include <thread>

#include "tools_support.hpp"

namespace aufs::mt {
namespace {

using Counts = std::map<std::string, long long>;

class RequestStats : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (auto why = aufsctl_unavailable(); !why.empty()) GTEST_SKIP() << why;
    mkdirs(p("rw"));
    mkdirs(p("l1/dir"));
    ASSERT_TRUE(write_file(p("l1/a.txt"), "0123456789\n"));
    ASSERT_TRUE(write_file(p("l1/dir/b.txt"), "b\n"));
    ASSERT_TRUE(mount_cached("rw:l1=ro+wh", "udba=none"));
  }

  // The counts, read with one GETXATTR (a buffer large enough: no size
  // probe first).
  Counts read_counts() {
    std::string buf(65536, '\0');
    ssize_t n = ::getxattr(m(".wh..wh.aufs-fuse").c_str(), "user.aufs.stats", buf.data(), buf.size());
    if (n < 0) {
      ADD_FAILURE() << "getxattr user.aufs.stats: " << errname(errno);
      return {};
    }
    Json j = Json::parse(buf.substr(0, static_cast<size_t>(n)), nullptr, false);
    if (!j.is_object() || !j["requests"].is_object()) {
      ADD_FAILURE() << "not a stats object: " << buf.substr(0, static_cast<size_t>(n));
      return {};
    }
    Counts c;
    for (auto& [k, v] : j["requests"].items()) c[k] = v.get<long long>();
    return c;
  }

  // Requests between two reads, the second read's GETXATTR left out; only
  // the opcodes that changed.
  static Counts diff(const Counts& a, const Counts& b) {
    Counts d;
    for (auto& [k, v] : b) {
      long long x = v - (a.count(k) ? a.at(k) : 0) - (k == "getxattr" ? 1 : 0);
      if (x != 0) d[k] = x;
    }
    return d;
  }

  // Counts after fn, relative to before it.
  Counts cost(const std::function<void()>& fn) {
    Counts a = read_counts();
    fn();
    return diff(a, read_counts());
  }

  // The same for a file opened and closed: the kernel sends RELEASE after
  // close(2) returns, so the counts are read until it has come.
  Counts cost_to_release(const std::function<void()>& fn) {
    Counts a = read_counts();
    fn();
    Counts c;
    EXPECT_TRUE(eventually([&] {
      c = diff(a, read_counts());
      a["getxattr"]++;  // the read just made
      return c.count("release") != 0;
    }, 5000)) << "no RELEASE";
    return c;
  }
};

std::string show(const Counts& c) {
  std::string s = "{";
  for (auto& [k, v] : c) s += " " + k + ":" + std::to_string(v);
  return s + " }";
}

TEST_F(RequestStats, EveryOpcodeIsReportedAndReadingCostsOneGetxattr) {
  Counts c = read_counts();  // also looks up the control file
  for (const char* k : {"init", "lookup", "forget", "batch_forget", "getattr", "setattr", "open",
                        "create", "read", "write", "flush", "release", "opendir", "readdirplus",
                        "releasedir", "getxattr", "setxattr", "access"})
    EXPECT_TRUE(c.count(k)) << k;
  EXPECT_EQ(c["init"], 1);
  EXPECT_GE(c["getxattr"], 1);
  EXPECT_EQ(cost([] {}), Counts{}) << "a read of the counts costs exactly one GETXATTR";
}

TEST_F(RequestStats, StatOfANewNameIsOneLookup) {
  read_counts();
  Counts c = cost([&] { EXPECT_TRUE(lstat_of(m("a.txt")).has_value()); });
  EXPECT_EQ(c, (Counts{{"lookup", 1}})) << show(c);
  // Cached now (udba=none): no request at all.
  c = cost([&] { EXPECT_TRUE(lstat_of(m("a.txt")).has_value()); });
  EXPECT_EQ(c, Counts{}) << show(c);
  // An absent name: one negative LOOKUP, then the kernel's negative entry.
  c = cost([&] { EXPECT_EQ(lstat_errno(m("absent")), ENOENT); });
  EXPECT_EQ(c, (Counts{{"lookup", 1}})) << show(c);
  c = cost([&] { EXPECT_EQ(lstat_errno(m("absent")), ENOENT); });
  EXPECT_EQ(c, Counts{}) << show(c);
  // Two levels: a lookup per name.
  c = cost([&] { EXPECT_TRUE(lstat_of(m("dir/b.txt")).has_value()); });
  EXPECT_EQ(c, (Counts{{"lookup", 2}})) << show(c);
}

TEST_F(RequestStats, CatOfAFileIsLookupOpenReadRelease) {
  read_counts();
  Counts c = cost_to_release([&] { EXPECT_EQ(read_file(m("a.txt")), "0123456789\n"); });
  // No FLUSH for a reader (noflush), no GETATTR (the entry's attributes are
  // fresh).
  EXPECT_EQ(c, (Counts{{"lookup", 1}, {"open", 1}, {"read", 1}, {"release", 1}})) << show(c);
}

// Writers: FLUSH only where the branch's close(2) can report an error.
TEST_F(RequestStats, CreateWriteCloseFlushesOnlyWhereCloseCanFail) {
  struct statfs sf {};
  ASSERT_EQ(::statfs(p("rw").c_str(), &sf), 0);
  bool silent = sf.f_type == EXT4_SUPER_MAGIC || sf.f_type == XFS_SUPER_MAGIC ||
                sf.f_type == TMPFS_MAGIC;
  read_counts();
  Counts c = cost_to_release([&] {
    int fd = ::open(m("new.txt").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    ASSERT_GE(fd, 0) << errname(errno);
    EXPECT_EQ(::write(fd, "new\n", 4), 4);
    EXPECT_EQ(::close(fd), 0);
  });
  EXPECT_EQ(c["create"], 1) << show(c);
  // With FUSE passthrough (libfuse >= 3.16) the kernel writes the branch
  // file itself: no WRITE reaches the daemon.
  bool passthrough = ctl_info(m())["fuse"]["passthrough"].value("active", false);
  EXPECT_EQ(c["write"], passthrough ? 0 : 1) << show(c);
  EXPECT_EQ(c["flush"], silent ? 0 : 1) << show(c) << " f_type " << std::hex << sf.f_type;
  EXPECT_EQ(c["open"], 0) << show(c);
  EXPECT_EQ(read_file(p("rw/new.txt")), "new\n");
  // A later writer's close on the copy-up branch: the same.
  c = cost_to_release([&] { ASSERT_TRUE(append_file(m("a.txt"), "more\n")); });  // copy-up at open
  EXPECT_EQ(c["open"], 1) << show(c);
  EXPECT_EQ(c["flush"], silent ? 0 : 1) << show(c);
  EXPECT_EQ(read_file(p("rw/a.txt")), "0123456789\nmore\n");
}

TEST_F(RequestStats, ResetSetsEveryCountToZero) {
  EXPECT_TRUE(lstat_of(m("dir/b.txt")).has_value());
  EXPECT_TRUE(lstat_of(m("a.txt")).has_value());
  EXPECT_EQ(read_file(m("a.txt")), "0123456789\n");
  auto r = run({aufsctl_binary(), m(), "stats", "--reset"});
  ASSERT_TRUE(r.ok()) << r;
  // Text form: the total first, then the opcodes seen.
  EXPECT_EQ(r.out.rfind("requests: ", 0), 0u) << r;
  EXPECT_NE(r.out.find("\n  lookup "), std::string::npos) << r;
  EXPECT_NE(r.out.find("\n  open "), std::string::npos) << r;
  EXPECT_EQ(r.out.find(" create "), std::string::npos) << r;  // zero: not shown
  Counts c = read_counts();
  long long total = 0;
  for (auto& [k, v] : c) total += v;
  // Only what came after the reset: this GETXATTR and perhaps the RELEASE
  // of the cat above.
  EXPECT_EQ(c["getxattr"], 1) << show(c);
  EXPECT_LE(total - c["getxattr"] - c["release"], 0) << show(c);
  // JSON form.
  r = run({aufsctl_binary(), m(), "stats", "--json"});
  ASSERT_TRUE(r.ok()) << r;
  Json j = Json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r;
  EXPECT_GE(j["requests"]["getxattr"].get<long long>(), 2) << r;
  // Usage errors and a wrong value.
  EXPECT_EQ(run({aufsctl_binary(), m(), "list", "--reset"}).exit_code, 2);
  EXPECT_EQ(run({aufsctl_binary(), m(), "stats", "x"}).exit_code, 2);
  std::string cf = m(".wh..wh.aufs-fuse");
  EXPECT_ERRNO(EINVAL, ::setxattr(cf.c_str(), "user.aufs.stats", "zero", 4, 0));
  EXPECT_SYS_OK(::setxattr(cf.c_str(), "user.aufs.stats", "reset\n", 6, 0));
  // A reset is no branch change: the kernel's cached entries stay (a.txt's
  // atime was invalidated by the read; b.txt was not read).
  Counts d = cost([&] { EXPECT_TRUE(lstat_of(m("dir/b.txt")).has_value()); });
  EXPECT_EQ(d, Counts{}) << show(d);
}


// readdirplus=auto: a thread is sent names only until it looks up what it
// lists; from then on its replies carry attributes.
class ReaddirplusDemand : public RequestStats {
 protected:
  void SetUp() override {
    RequestStats::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    for (const char* d : {"l1/d1", "l1/d2", "l1/d3"}) {
      mkdirs(p(d) + "/sub");
      for (int i = 0; i < 10; ++i) ASSERT_TRUE(write_file(p(d) + "/f" + std::to_string(i), "x"));
    }
  }

  struct Listed {
    std::map<std::string, std::pair<unsigned char, ino_t>> ents;  // name: d_type, d_ino
  };
  static Listed listing(const std::string& dir) {
    Listed l;
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
      ADD_FAILURE() << "opendir " << dir << ": " << errname(errno);
      return l;
    }
    while (struct dirent* e = ::readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
        l.ents[e->d_name] = {e->d_type, e->d_ino};
    ::closedir(d);
    return l;
  }
  // fn on a thread of its own: the daemon tells callers apart by thread.
  static void on_thread(const std::function<void()>& fn) { std::thread(fn).join(); }
  void stat_all(const std::string& dir, const Listed& l) {
    for (auto& [name, te] : l.ents) {
      auto st = lstat_of(dir + "/" + name);
      ASSERT_TRUE(st.has_value()) << name;
      EXPECT_EQ(te.second, st->st_ino) << name << ": d_ino is not st_ino";
      EXPECT_EQ(te.first, S_ISDIR(st->st_mode) ? DT_DIR : DT_REG) << name;
    }
  }
};

TEST_F(ReaddirplusDemand, AListingOnlyCallerGetsNamesAndAStatingCallerAttributes) {
  read_counts();
  // A walk that only lists: names only, so nothing is looked up for it and
  // a later stat (another thread) asks for each name.
  Listed l1;
  Counts c = cost([&] { on_thread([&] { l1 = listing(m("d1")); }); });
  EXPECT_EQ(l1.ents.size(), 11u);
  EXPECT_EQ(c["lookup"], 1) << "d1 itself only: " << show(c);
  EXPECT_GE(c["readdirplus"], 1) << show(c);
  c = cost([&] { stat_all(m("d1"), l1); });
  EXPECT_EQ(c["lookup"], 11) << "no entry was made by the listing: " << show(c);

  // A thread that stats what it lists: the first listing costs a lookup per
  // name, then it is sent attributes, and its next listing makes entries.
  on_thread([&] {
    Listed l2 = listing(m("d2"));
    Counts c2 = cost([&] { stat_all(m("d2"), l2); });
    EXPECT_EQ(c2["lookup"], 11) << show(c2);
    Listed l3;
    c2 = cost([&] {
      l3 = listing(m("d3"));
      stat_all(m("d3"), l3);
    });
    EXPECT_EQ(l3.ents.size(), 11u);
    EXPECT_EQ(c2["lookup"], 1) << "d3 itself only: its entries came with the listing: " << show(c2);
  });
  auto j = ctl_info(m())["fuse"]["readdirplus"];
  EXPECT_EQ(j.value("mode", ""), "auto") << j.dump();
  EXPECT_GE(j.value("callers_switched_to_attributes", 0), 1) << j.dump();
  EXPECT_GE(j.value("replies_names_only", 0), 2) << j.dump();
  EXPECT_GE(j.value("replies_with_attributes", 0), 1) << j.dump();
}

class ReaddirplusFull : public ReaddirplusDemand {
 protected:
  void SetUp() override {
    ReaddirplusDemand::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    unmount();
    ASSERT_TRUE(mount_cached("rw:l1=ro+wh", "udba=none," + opt()));
  }
  virtual std::string opt() const { return "readdirplus=full"; }
};

TEST_F(ReaddirplusFull, EveryListingCarriesAttributes) {
  read_counts();
  Listed l1;
  Counts c = cost([&] { on_thread([&] { l1 = listing(m("d1")); }); });
  EXPECT_EQ(c["lookup"], 1) << show(c);
  c = cost([&] { stat_all(m("d1"), l1); });
  EXPECT_EQ(c["lookup"], 0) << "the listing made every entry: " << show(c);
  EXPECT_EQ(ctl_info(m())["fuse"]["readdirplus"].value("mode", ""), "full");
}

class ReaddirplusOff : public ReaddirplusFull {
  std::string opt() const override { return "readdirplus=off"; }
};

TEST_F(ReaddirplusOff, ListingsArePlainReaddir) {
  read_counts();
  Listed l1;
  Counts c = cost([&] { on_thread([&] { l1 = listing(m("d1")); }); });
  EXPECT_EQ(c.count("readdirplus"), 0u) << show(c);
  EXPECT_GE(c["readdir"], 1) << show(c);
  c = cost([&] { stat_all(m("d1"), l1); });
  EXPECT_EQ(c["lookup"], 11) << show(c);
}

}  // namespace
}  // namespace aufs::mt
