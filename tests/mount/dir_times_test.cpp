// SPDX-License-Identifier: GPL-2.0-or-later
// Parent directory times after namespace operations: every operation runs
// once on a plain directory tree (the reference) and once through the
// union, and the parents' mtime and ctime must advance exactly when they
// advance on the plain tree. Internal steps (copy-up of a parent,
// whiteouts of a rename, temporary names) must not show in a grandparent's
// mtime.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <thread>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

// Where the names of an operation live before it runs.
enum class Layout {
  kRw,        // names and parents only on the rw branch
  kCopiedUp,  // on both branches (a copied-up name over its lower one);
              // new names are whited-out lower names
  kLower,     // names and parents only on the lower branch (the parent is
              // copied up, a removed name leaves a whiteout)
};

struct Op {
  const char* name;
  // Runs on <base>/g (holds s and t); returns errno or 0.
  std::function<int(const std::string& g)> run;
};

int rc(long r) { return r < 0 ? errno : 0; }

const std::vector<Op>& ops() {
  static const std::vector<Op> v = {
      {"create", [](const std::string& g) {
         int fd = ::open((g + "/s/n").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
         if (fd < 0) return errno;
         ::close(fd);
         return 0;
       }},
      {"mkdir", [](const std::string& g) { return rc(::mkdir((g + "/s/n").c_str(), 0755)); }},
      {"mknod", [](const std::string& g) { return rc(::mknod((g + "/s/n").c_str(), S_IFIFO | 0644, 0)); }},
      {"symlink", [](const std::string& g) { return rc(::symlink("x", (g + "/s/n").c_str())); }},
      {"link", [](const std::string& g) { return rc(::link((g + "/s/a").c_str(), (g + "/t/n").c_str())); }},
      {"unlink", [](const std::string& g) { return rc(::unlink((g + "/s/a").c_str())); }},
      {"rmdir", [](const std::string& g) { return rc(::rmdir((g + "/s/sub").c_str())); }},
      {"rename", [](const std::string& g) { return rc(::rename((g + "/s/a").c_str(), (g + "/t/n").c_str())); }},
      {"rename_in_dir", [](const std::string& g) { return rc(::rename((g + "/s/a").c_str(), (g + "/s/n").c_str())); }},
      {"rename_over", [](const std::string& g) { return rc(::rename((g + "/s/a").c_str(), (g + "/t/b").c_str())); }},
      {"rename_dir", [](const std::string& g) { return rc(::rename((g + "/s/sub").c_str(), (g + "/t/n").c_str())); }},
      {"exchange", [](const std::string& g) {
         return rc(::renameat2(AT_FDCWD, (g + "/s/a").c_str(), AT_FDCWD, (g + "/t/b").c_str(),
                               RENAME_EXCHANGE));
       }},
  };
  return v;
}

// Far in the past: an mtime that advanced cannot be mistaken for this one.
constexpr time_t kPast = 1'000'000'000;

void set_past(const std::string& path) {
  struct timespec ts[2] = {{kPast, 0}, {kPast, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << path;
}

// g/s/{a,sub}, g/t/b: the visible tree every operation starts from.
void make_names(const std::string& g) {
  mkdirs(g + "/s/sub");
  mkdirs(g + "/t");
  write_file(g + "/s/a", "a\n");
  write_file(g + "/t/b", "b\n");
}

void past_dirs(const std::string& g) {
  for (auto d : {"/s/sub", "/s", "/t", ""}) set_past(g + d);
}

bool after(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
}

// What an operation did to the times of g, g/s and g/t.
struct Changed {
  bool g_mtime, s_mtime, s_ctime, t_mtime, t_ctime;
  int err;
};

Changed observe(const std::string& g, const Op& op) {
  auto gb = stat_of(g), sb = stat_of(g + "/s"), tb = stat_of(g + "/t");
  EXPECT_TRUE(gb && sb && tb) << g;
  if (!gb || !sb || !tb) return {};
  Changed c{};
  c.err = op.run(g);
  auto ga = stat_of(g), sa = stat_of(g + "/s"), ta = stat_of(g + "/t");
  EXPECT_TRUE(ga && sa && ta) << g;
  if (!ga || !sa || !ta) return c;
  c.g_mtime = after(ga->st_mtim, gb->st_mtim);
  c.s_mtime = after(sa->st_mtim, sb->st_mtim);
  c.s_ctime = after(sa->st_ctim, sb->st_ctim);
  c.t_mtime = after(ta->st_mtim, tb->st_mtim);
  c.t_ctime = after(ta->st_ctim, tb->st_ctim);
  return c;
}

class DirTimes : public MountTest, public ::testing::WithParamInterface<std::tuple<Layout, bool>> {
 protected:
  // One g<i> per operation, built in the plain tree and in the branches.
  void build(Layout layout) {
    for (size_t i = 0; i < ops().size(); ++i) {
      std::string g = "g" + std::to_string(i);
      make_names(p("plain/" + g));
      past_dirs(p("plain/" + g));
      if (layout != Layout::kLower) {
        make_names(p("rw/" + g));
        past_dirs(p("rw/" + g));
      }
      if (layout != Layout::kRw) {
        make_names(p("l1/" + g));
        past_dirs(p("l1/" + g));
      }
      if (layout == Layout::kCopiedUp) {
        // n: a lower name removed through the union (create goes over a
        // whiteout).
        write_file(p("l1/" + g + "/s/n"), "old\n");
        write_file(p("l1/" + g + "/t/n"), "old\n");
        write_file(p("rw/" + g + "/s/.wh.n"), "", 0444);
        write_file(p("rw/" + g + "/t/.wh.n"), "", 0444);
        past_dirs(p("rw/" + g));
        past_dirs(p("l1/" + g));
      }
    }
    mkdirs(p("rw"));
    mkdirs(p("l1"));
  }
};

std::string case_name(Layout l, bool cached) {
  const char* names[] = {"Rw", "CopiedUp", "Lower"};
  return std::string(names[static_cast<int>(l)]) + (cached ? "Cached" : "Uncached");
}

TEST_P(DirTimes, ParentTimesAdvanceAsOnAPlainDirectory) {
  auto [layout, cached] = GetParam();
  build(layout);
  ASSERT_TRUE(cached ? mount_cached("rw:l1=ro+wh") : mount("rw:l1=ro+wh"));
  // Past one clock tick of the setup (ctime cannot be set to the past).
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  for (size_t i = 0; i < ops().size(); ++i) {
    const Op& op = ops()[i];
    std::string g = "g" + std::to_string(i);
    Changed want = observe(p("plain/" + g), op);
    ASSERT_EQ(want.err, 0) << op.name << " on the plain tree: " << errname(want.err);
    Changed got = observe(m(g), op);
    ASSERT_EQ(got.err, 0) << op.name << ": " << errname(got.err);
    // The kernel invalidates only the parents' attributes; g's cached ones
    // say nothing (checked without caches).
    if (!cached) {
      EXPECT_EQ(got.g_mtime, want.g_mtime) << op.name << ": grandparent mtime";
    }
    EXPECT_EQ(got.s_mtime, want.s_mtime) << op.name << ": source parent mtime";
    EXPECT_EQ(got.t_mtime, want.t_mtime) << op.name << ": target parent mtime";
    EXPECT_EQ(got.t_ctime, want.t_ctime) << op.name << ": target parent ctime";
    // A copy-up into a directory changes its ctime (its mtime is kept):
    // link copies its lower source up into s (the kernel, which keeps s's
    // attributes cached, does not know).
    bool copy_up_into_s = layout == Layout::kLower && std::string(op.name) == "link";
    if (!copy_up_into_s) {
      EXPECT_EQ(got.s_ctime, want.s_ctime) << op.name << ": source parent ctime";
    } else if (!cached) {
      EXPECT_TRUE(got.s_ctime) << op.name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, DirTimes,
    ::testing::Combine(::testing::Values(Layout::kRw, Layout::kCopiedUp, Layout::kLower),
                       ::testing::Bool()),
    [](const auto& info) { return case_name(std::get<0>(info.param), std::get<1>(info.param)); });

// The known case of issue 18, on its own: the rw branch's directory too.
class UnlinkTimes : public MountTest {};

TEST_F(UnlinkTimes, AdvancesParentMtimeInUnionAndBranch) {
  mkdirs(p("rw"));
  mkdirs(p("l1"));
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh"));
  ASSERT_SYS_OK(::mkdir(m("d").c_str(), 0755));
  ASSERT_TRUE(write_file(m("d/f"), "f\n"));
  set_past(m("d"));
  auto before = stat_of(m("d"));
  ASSERT_TRUE(before);
  ASSERT_SYS_OK(::unlink(m("d/f").c_str()));
  auto in_union = stat_of(m("d"));
  auto on_rw = stat_of(p("rw/d"));
  ASSERT_TRUE(in_union && on_rw);
  EXPECT_NE(in_union->st_mtim.tv_sec, kPast);
  EXPECT_NE(on_rw->st_mtim.tv_sec, kPast);
  EXPECT_TRUE(after(in_union->st_ctim, before->st_ctim));
}

bool same_time(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// dirwh: rmdir replies before the emptied directory's many whiteouts are
// deleted; that background removal used to change the parent's mtime and
// ctime after the reply. They must stay what the reply left, and a change
// made after the reply must still show.
TEST_F(UnlinkTimes, DirwhBackgroundRemovalKeepsParentTimes) {
  mkdirs(p("rw/d/sub"));
  mkdirs(p("l1"));
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(write_file(p("rw/d/sub/.wh.f" + std::to_string(i)), ""));
  ASSERT_TRUE(mount("rw:l1=ro+wh", "dirwh=1"));
  set_past(p("rw/d"));
  ASSERT_SYS_OK(::rmdir(m("d/sub").c_str()));
  auto at_reply = stat_of(p("rw/d"));
  ASSERT_TRUE(at_reply);
  EXPECT_NE(at_reply->st_mtim.tv_sec, kPast);  // rmdir's own change
  // Until the background removal is done.
  auto pending = [&] {
    for (auto& n : list_dir(p("rw/d")))
      if (n.starts_with(".wh..wh.")) return true;
    return !list_dir(p("rw/.wh..wh.orph")).empty();
  };
  for (int i = 0; i < 1000 && pending(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_FALSE(pending());
  auto done = stat_of(p("rw/d"));
  auto in_union = stat_of(m("d"));
  ASSERT_TRUE(done && in_union);
  EXPECT_TRUE(same_time(done->st_mtim, at_reply->st_mtim));
  EXPECT_TRUE(same_time(done->st_ctim, at_reply->st_ctim));
  EXPECT_TRUE(same_time(in_union->st_mtim, at_reply->st_mtim));
  EXPECT_FALSE(exists(m("d/sub")));
  // The next change in the directory still advances its times.
  set_past(p("rw/d"));
  ASSERT_TRUE(write_file(m("d/new"), "n\n"));
  auto changed = stat_of(m("d"));
  ASSERT_TRUE(changed);
  EXPECT_NE(changed->st_mtim.tv_sec, kPast);
}

}  // namespace
}  // namespace aufs::mt
