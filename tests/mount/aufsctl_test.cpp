// SPDX-License-Identifier: GPL-2.0-or-later
// aufsctl: branch listing (text and JSON) before and after changes, live
// counters, `which`, and refusal of changes by a user who does not own the
// mount.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <sstream>

#include "tools_support.hpp"

namespace aufs::mt {
namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

class Aufsctl : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (auto why = aufsctl_unavailable(); !why.empty()) GTEST_SKIP() << why;
    mkdirs(p("rw/dir"));
    mkdirs(p("l1/dir/sub"));
    mkdirs(p("l2/dir"));
    mkdirs(p("l2/gone"));
    mkdirs(p("extra"));
    ASSERT_TRUE(write_file(p("l1/lower.txt"), "0123456789\n"));  // 11 bytes
    ASSERT_TRUE(write_file(p("l1/dir/sub/deep.txt"), "deep\n"));
    ASSERT_TRUE(write_file(p("l2/lower.txt"), "hidden by l1\n"));
    ASSERT_TRUE(write_file(p("l2/only2.txt"), "two\n"));
    ASSERT_TRUE(write_file(p("l2/gone/x"), "x\n"));
    ASSERT_TRUE(write_file(p("extra/extra.txt"), "extra\n"));
  }

  RunResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), aufsctl_binary());
    return run(args);
  }

  // The text listing, split into lines.
  std::vector<std::string> text_lines() {
    auto r = ctl({m()});
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_EQ(r.err, "") << r;
    std::vector<std::string> out;
    std::istringstream in(r.out);
    std::string l;
    while (std::getline(in, l)) out.push_back(l);
    return out;
  }

  static std::string counters_line(const Json& c) {
    return "inodes: " + std::to_string(c["inodes"].get<long long>()) +
           "  open files: " + std::to_string(c["open_files"].get<long long>()) +
           "  copy-ups: " + std::to_string(c["copyups"].get<long long>()) + " (" +
           std::to_string(c["copyup_bytes"].get<long long>()) +
           " bytes)  whiteouts: " + std::to_string(c["whiteouts"].get<long long>()) +
           "  branch changes: " + std::to_string(c["branch_changes"].get<long long>());
  }
};

TEST_F(Aufsctl, ListingTextAndJsonBeforeAndAfterChanges) {
  ASSERT_TRUE(mount("rw:l1=ro+wh:l2=rr"));
  auto info = ctl_info(m());
  ASSERT_TRUE(info.is_object());
  // Every documented key, with the right type.
  EXPECT_EQ(info["mountpoint"].get<std::string>(), m());
  ASSERT_TRUE(info["branches"].is_array());
  EXPECT_TRUE(info["generation"].is_number());
  EXPECT_EQ(info["xino"].get<std::string>(), "in memory");
  EXPECT_TRUE(info["options"].is_string());
  EXPECT_NE(info["options"].get<std::string>().find("udba=notify"), std::string::npos) << info["options"].get<std::string>();
  for (const char* k : {"inodes", "open_files", "copyups", "copyup_bytes", "whiteouts",
                        "branch_changes", "xino_aliases", "listing_cache_entries"})
    EXPECT_TRUE(info["counters"][k].is_number()) << "counters." << k;
  EXPECT_EQ(info["udba"]["mode"], "notify");
  EXPECT_EQ(info["udba"]["default"], true);
  for (const char* k : {"watches", "watch_failures", "events_reported", "own_events_dropped"})
    EXPECT_TRUE(info["udba"][k].is_number()) << "udba." << k;
  for (const char* k : {"fds", "fd_budget", "name_sets", "name_set_bytes", "name_set_budget", "opens",
                        "reuses", "set_builds", "set_answers", "evictions", "over_budget",
                        "unchecked_reuse_ms"})
    EXPECT_TRUE(info["dir_parts"][k].is_number()) << "dir_parts." << k;
  std::vector<std::string> watched;
  for (auto& b : info["branches"]) watched.push_back(b["watched"].get<std::string>());
  EXPECT_EQ(watched, (std::vector<std::string>{"yes", "yes", "no need: rr"}));
  for (auto& b : info["branches"])
    for (const char* k : {"index", "id", "path", "perm"}) EXPECT_TRUE(b.contains(k)) << k;
  EXPECT_EQ(branch_rows(info),
            (std::vector<std::string>{"0:0:" + p("rw") + "=rw", "1:1:" + p("l1") + "=ro+wh",
                                      "2:2:" + p("l2") + "=rr"}));
  const auto& c0 = info["counters"];
  EXPECT_EQ(c0["open_files"].get<long long>(), 0);
  EXPECT_EQ(c0["copyups"].get<long long>(), 0);
  EXPECT_EQ(c0["copyup_bytes"].get<long long>(), 0);
  EXPECT_EQ(c0["whiteouts"].get<long long>(), 0);
  EXPECT_EQ(c0["branch_changes"].get<long long>(), 0);

  // The text form says the same.
  auto lines = text_lines();
  ASSERT_EQ(lines.size(), 15u);
  EXPECT_EQ(lines[0], "mount point: " + m());
  EXPECT_EQ(lines[1], "br0\tbrid0\t" + p("rw") + "=rw");
  EXPECT_EQ(lines[2], "br1\tbrid1\t" + p("l1") + "=ro+wh");
  EXPECT_EQ(lines[3], "br2\tbrid2\t" + p("l2") + "=rr");
  EXPECT_EQ(lines[4], "xino: in memory");
  EXPECT_EQ(lines[5], "options: " + info["options"].get<std::string>());
  EXPECT_EQ(lines[6], "udba: notify (default)");
  EXPECT_TRUE(lines[7].starts_with("inodes: ")) << lines[7];
  EXPECT_NE(lines[7].find("copy-ups: 0 (0 bytes)  whiteouts: 0  branch changes: 0"),
            std::string::npos)
      << lines[7];
  EXPECT_TRUE(lines[8].starts_with("inotify watches: ")) << lines[8];
  EXPECT_NE(lines[8].find("directory parts: "), std::string::npos) << lines[8];
  // Then the libfuse release, one line per newer FUSE feature and the
  // listings' choice (readdirplus=).
  EXPECT_EQ(lines[9], "libfuse: " + info["fuse"]["libfuse"].get<std::string>());
  std::vector<std::string> names;
  for (size_t i = 10; i + 1 < lines.size(); ++i) {
    names.push_back(lines[i].substr(0, lines[i].find(':')));
    bool active = info["fuse"][names.back()]["active"].get<bool>();
    EXPECT_TRUE(lines[i].starts_with(names.back() + (active ? ": active" : ": off: "))) << lines[i];
  }
  EXPECT_EQ(names, (std::vector<std::string>{"expire_only", "handle_killpriv_v2", "io_uring",
                                             "passthrough"}));
  EXPECT_TRUE(lines[14].starts_with("readdirplus: mode auto; replies with attributes ")) << lines[14];
  EXPECT_EQ(info["fuse"]["readdirplus"]["mode"], "auto");
  // `list` is the default command (the counters line may differ: the
  // inode count moves with the kernel's lookups).
  auto r = ctl({m(), "list"});
  EXPECT_TRUE(r.ok()) << r;
  std::string listed = r.out.substr(0, r.out.find("inodes:"));
  std::string plain = ctl({m()}).out;
  EXPECT_EQ(listed, plain.substr(0, plain.find("inodes:")));
  EXPECT_NE(r.out.find("branch changes: 0\n"), std::string::npos) << r;

  // Change: append, then prepend through the tool.
  r = ctl({m(), "append", p("extra") + "=ro"});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(read_file(m("extra.txt")), "extra\n");
  auto info2 = ctl_info(m());
  EXPECT_EQ(branch_rows(info2),
            (std::vector<std::string>{"0:0:" + p("rw") + "=rw", "1:1:" + p("l1") + "=ro+wh",
                                      "2:2:" + p("l2") + "=rr", "3:3:" + p("extra") + "=ro"}));
  EXPECT_EQ(info2["generation"].get<long long>(), info["generation"].get<long long>() + 1);
  EXPECT_EQ(info2["counters"]["branch_changes"].get<long long>(), 1);
  lines = text_lines();
  ASSERT_EQ(lines.size(), 16u);
  EXPECT_EQ(lines[4], "br3\tbrid3\t" + p("extra") + "=ro");
  EXPECT_NE(lines[8].find("branch changes: 1"), std::string::npos) << lines[8];

  r = ctl({m(), "mod", p("l2") + "=ro+wh"});
  ASSERT_TRUE(r.ok()) << r;
  r = ctl({m(), "remount", "del:" + p("extra") + ",add:1:" + p("extra") + "=ro+wh"});
  ASSERT_TRUE(r.ok()) << r;
  auto info3 = ctl_info(m());
  EXPECT_EQ(branch_rows(info3),
            (std::vector<std::string>{"0:0:" + p("rw") + "=rw", "1:4:" + p("extra") + "=ro+wh",
                                      "2:1:" + p("l1") + "=ro+wh", "3:2:" + p("l2") + "=ro+wh"}));
  EXPECT_EQ(info3["generation"].get<long long>(), info["generation"].get<long long>() + 3);
  EXPECT_EQ(info3["counters"]["branch_changes"].get<long long>(), 3);
  r = ctl({m(), "del", p("extra")});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(ctl_info(m())["branches"].size(), 3u);
  EXPECT_EQ(lstat_errno(m("extra.txt")), ENOENT);
}

TEST_F(Aufsctl, CountersMove) {
  ASSERT_TRUE(mount("rw:l1=ro+wh:l2=ro+wh"));
  auto c = ctl_info(m())["counters"];
  EXPECT_EQ(c["copyups"].get<long long>(), 0);
  EXPECT_EQ(c["whiteouts"].get<long long>(), 0);

  // Append to a lower file: one copy-up of its 11 bytes.
  ASSERT_TRUE(append_file(m("lower.txt"), "more\n"));
  c = ctl_info(m())["counters"];
  EXPECT_EQ(c["copyups"].get<long long>(), 1);
  EXPECT_EQ(c["copyup_bytes"].get<long long>(), 11);
  EXPECT_EQ(c["whiteouts"].get<long long>(), 0);
  // rm of a lower-only file: one whiteout.
  ASSERT_EQ(::unlink(m("only2.txt").c_str()), 0);
  c = ctl_info(m())["counters"];
  EXPECT_EQ(c["whiteouts"].get<long long>(), 1);
  EXPECT_EQ(c["copyups"].get<long long>(), 1);
  // rm of the copied-up file: its lower copy needs a whiteout too.
  ASSERT_EQ(::unlink(m("lower.txt").c_str()), 0);
  EXPECT_EQ(ctl_info(m())["counters"]["whiteouts"].get<long long>(), 2);

  // Open files are counted while open.
  int fd = ::open(m("dir/sub/deep.txt").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  int fd2 = ::open(m("new.txt").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd2, 0);
  c = ctl_info(m())["counters"];
  EXPECT_EQ(c["open_files"].get<long long>(), 2);
  EXPECT_GE(c["inodes"].get<long long>(), 3);
  ::close(fd);
  ::close(fd2);
  c = ctl_info(m())["counters"];
  EXPECT_EQ(c["open_files"].get<long long>(), 0);
  EXPECT_EQ(c["copyups"].get<long long>(), 1) << "creating a new file is no copy-up";

  // The text line shows the same numbers.
  auto lines = text_lines();
  ASSERT_GE(lines.size(), 8u);
  EXPECT_EQ(lines[7], counters_line(ctl_info(m())["counters"]));
}

TEST_F(Aufsctl, Which) {
  ASSERT_TRUE(mount("rw:l1=ro+wh:l2=ro+wh"));
  int rc = -1;
  // A lower file, shadowing the same name further down.
  auto w = ctl_which(m(), "lower.txt", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(w["name"].get<std::string>(), "lower.txt");
  EXPECT_TRUE(w["visible"].get<bool>());
  EXPECT_EQ(w["type"].get<std::string>(), "file");
  EXPECT_EQ(w["branch"].get<long long>(), 1);
  EXPECT_EQ(w["brid"].get<long long>(), 1);
  EXPECT_EQ(w["branch_path"].get<std::string>(), p("l1"));
  EXPECT_TRUE(w["copied_up"].is_boolean());
  EXPECT_FALSE(w["copied_up"].get<bool>());
  EXPECT_TRUE(w["lower_exists"].get<bool>());
  EXPECT_FALSE(w.contains("whiteout_branch"));
  auto r = ctl({m(), "which", "lower.txt"});
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "lower.txt: file on br1 (brid1, " + p("l1") + ")\n");

  w = ctl_which(m(), "only2.txt", &rc);
  EXPECT_EQ(w["branch"].get<long long>(), 2);
  EXPECT_FALSE(w["lower_exists"].get<bool>());
  EXPECT_FALSE(w["copied_up"].get<bool>());

  // Copied up by an append.
  ASSERT_TRUE(append_file(m("lower.txt"), "x\n"));
  w = ctl_which(m(), "lower.txt", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(w["branch"].get<long long>(), 0);
  EXPECT_EQ(w["branch_path"].get<std::string>(), p("rw"));
  EXPECT_TRUE(w["copied_up"].get<bool>());
  EXPECT_TRUE(w["lower_exists"].get<bool>());
  r = ctl({m(), "which", "lower.txt"});
  EXPECT_EQ(r.out, "lower.txt: file on br0 (brid0, " + p("rw") + "), copied up\n") << r;

  // A new file on the rw branch is not "copied up".
  ASSERT_TRUE(write_file(m("fresh.txt"), "f\n"));
  w = ctl_which(m(), "fresh.txt");
  EXPECT_EQ(w["branch"].get<long long>(), 0);
  EXPECT_FALSE(w["copied_up"].get<bool>());

  // Whited out.
  ASSERT_EQ(::unlink(m("only2.txt").c_str()), 0);
  w = ctl_which(m(), "only2.txt", &rc);
  EXPECT_EQ(rc, 0) << "--json exits 0 whenever the daemon answered (aufsctl(8))";
  EXPECT_EQ(w["name"].get<std::string>(), "only2.txt");
  EXPECT_FALSE(w["visible"].get<bool>());
  EXPECT_EQ(w["whiteout_branch"].get<long long>(), 0);
  EXPECT_FALSE(w.contains("branch"));
  r = ctl({m(), "which", "only2.txt"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(r.out, "only2.txt: whited out on br0\n") << r;

  // Not present anywhere.
  w = ctl_which(m(), "nothing-here", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_FALSE(w["visible"].get<bool>());
  EXPECT_FALSE(w.contains("whiteout_branch"));
  r = ctl({m(), "which", "nothing-here"});
  EXPECT_EQ(r.out, "nothing-here: not present\n") << r;

  // A directory merged from three branches, and a nested path.
  w = ctl_which(m(), "dir", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(w["type"].get<std::string>(), "dir");
  EXPECT_EQ(w["branch"].get<long long>(), 0);
  ASSERT_TRUE(w["layers"].is_array());
  ASSERT_EQ(w["layers"].size(), 3u);
  EXPECT_EQ(w["layers"][0].get<long long>(), 0);
  EXPECT_EQ(w["layers"][1].get<long long>(), 1);
  EXPECT_EQ(w["layers"][2].get<long long>(), 2);
  EXPECT_FALSE(w.contains("opaque_branch"));
  w = ctl_which(m(), "dir/sub/deep.txt", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(w["name"].get<std::string>(), "dir/sub/deep.txt");
  EXPECT_EQ(w["branch"].get<long long>(), 1);
  EXPECT_EQ(w["layers"].size(), 1u);

  // A directory removed and made again is opaque on the rw branch.
  ASSERT_TRUE(sh("rm -r " + q(m("gone")) + " && mkdir " + q(m("gone"))).ok());
  w = ctl_which(m(), "gone", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(w["type"].get<std::string>(), "dir");
  EXPECT_EQ(w["branch"].get<long long>(), 0);
  EXPECT_EQ(w["opaque_branch"].get<long long>(), 0);
  ASSERT_EQ(w["layers"].size(), 1u);
  EXPECT_EQ(w["layers"][0].get<long long>(), 0);
  EXPECT_EQ(list_dir(m("gone")), std::vector<std::string>{});

  // Absolute paths inside the mount, and "." / ".." that stay inside it.
  for (const std::string& same : std::vector<std::string>{m("dir/sub/deep.txt"), m("dir/./sub//deep.txt"),
                           "dir/sub/../sub/deep.txt", "./dir/sub/deep.txt"}) {
    w = ctl_which(m(), same, &rc);
    EXPECT_EQ(rc, 0) << same;
    EXPECT_EQ(w["name"], "dir/sub/deep.txt") << same;
  }
  w = ctl_which(m(), m("gone/../lower.txt"), &rc);
  EXPECT_EQ(w["name"], "lower.txt");
  // Outside the mount, or its root: one line saying so.
  for (const std::string& out : std::vector<std::string>{"../x", "dir/../../x", p("l1/lower.txt"), "/etc/passwd"}) {
    auto r = ctl({m(), "which", out});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(one_error_line(r, {"aufsctl: "}));
    EXPECT_NE(r.err.find("not inside the mount"), std::string::npos) << r;
  }
  r = ctl({m(), "which", m()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("the mount's root itself"), std::string::npos) << r;
}

TEST_F(Aufsctl, BadUsage) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = ctl({});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_TRUE(r.err.starts_with("usage: aufsctl")) << r;
  r = ctl({m(), "frobnicate"});
  EXPECT_EQ(r.exit_code, 2) << r;
  r = ctl({p("l1")});  // not a mount
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(one_error_line(r, {"aufsctl: "}));
  EXPECT_NE(r.err.find("not an aufs-fuse mount"), std::string::npos) << r;
  r = ctl({m(), "mod", p("l1")});  // mod needs =PERM
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(one_error_line(r, {"aufsctl: "}));
  r = ctl({m(), "append", p("missing")});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(one_error_line(r, {"aufsctl: "}));
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r;
  EXPECT_EQ(ctl_info(m())["branches"].size(), 2u);
  allow_log("branch change refused");
}

class AufsctlAsUser : public Aufsctl {
 protected:
  void SetUp() override {
    Aufsctl::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
    std::string r = root();
    if (errno_as(kNobody, kNogroup, [&] { return ::access(r.c_str(), X_OK) < 0 ? errno : 0; }) != 0)
      GTEST_SKIP() << "user " << kNobody << " cannot reach " << r;
    std::string bin = aufsctl_binary();
    if (bin.find('/') != std::string::npos &&
        errno_as(kNobody, kNogroup, [&] { return ::access(bin.c_str(), X_OK) < 0 ? errno : 0; }) != 0)
      GTEST_SKIP() << "user " << kNobody << " cannot run " << bin;
  }
};

TEST_F(AufsctlAsUser, NonOwnerCannotChangeBranches) {
  ASSERT_TRUE(mount("rw:l1=ro+wh", "allow_other"));
  auto before = ctl_info(m());
  std::string cmd = q(aufsctl_binary()) + " " + q(m());
  // Reading is allowed ...
  auto r = sh_as(kNobody, kNogroup, cmd + " --json");
  EXPECT_TRUE(r.ok()) << r;
  Json seen = Json::parse(r.out, nullptr, false);
  ASSERT_TRUE(seen.is_object()) << r;
  EXPECT_EQ(branch_rows(seen), branch_rows(before));
  // ... changing is not.
  for (std::string op : {"append " + q(p("extra")) + "=ro", "prepend " + q(p("extra")),
                         "del " + q(p("l1")), "mod " + q(p("rw")) + "=ro",
                         "remount " + q("append:" + p("extra"))}) {
    SCOPED_TRACE(op);
    r = sh_as(kNobody, kNogroup, cmd + " " + op);
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(one_error_line(r, {"aufsctl: "}));
    EXPECT_NE(r.err.find("only root or the mount's owner"), std::string::npos) << r;
  }
  // The raw interface refuses too.
  std::string cf = m(".wh..wh.aufs-fuse");
  std::string op = "append:" + p("extra");
  int e = errno_as(kNobody, kNogroup, [&] {
    return ::setxattr(cf.c_str(), "user.aufs.remount", op.data(), op.size(), 0) < 0 ? errno : 0;
  });
  EXPECT_TRUE(e == EACCES || e == EPERM) << errname(e);
  auto after = ctl_info(m());
  EXPECT_EQ(branch_rows(after), branch_rows(before));
  EXPECT_EQ(after["generation"].get<long long>(), before["generation"].get<long long>());
  EXPECT_EQ(lstat_errno(m("extra.txt")), ENOENT);
  // Root may.
  r = ctl({m(), "append", p("extra") + "=ro"});
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(ctl_info(m())["branches"].size(), 3u);
}

TEST_F(AufsctlAsUser, NonOwnerCanReadButNotResetRequestCounts) {
  ASSERT_TRUE(mount("rw:l1=ro+wh", "allow_other"));
  std::string cmd = q(aufsctl_binary()) + " " + q(m()) + " stats";
  auto r = sh_as(kNobody, kNogroup, cmd + " --json");
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_TRUE(Json::parse(r.out, nullptr, false).is_object()) << r;
  r = sh_as(kNobody, kNogroup, cmd + " --reset");
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("only root or the mount's owner may reset"), std::string::npos) << r;
  std::string cf = m(".wh..wh.aufs-fuse");
  int e = errno_as(kNobody, kNogroup, [&] {
    return ::setxattr(cf.c_str(), "user.aufs.stats", "reset", 5, 0) < 0 ? errno : 0;
  });
  EXPECT_TRUE(e == EACCES || e == EPERM) << errname(e);
  EXPECT_TRUE(ctl({m(), "stats", "--reset"}).ok());
}

}  // namespace
}  // namespace aufs::mt
