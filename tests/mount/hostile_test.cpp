// SPDX-License-Identifier: GPL-2.0-or-later
// Hostile branch content: symlinks pointing outside the branches. The kernel
// follows symlinks met on the mount (normal symlink semantics); the daemon
// itself must only ever act on the links, never on their targets.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

class Hostile : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw"));
    mkdirs(p("l1"));
    mkdirs(p("outside_dir"));
    ASSERT_TRUE(write_file(p("outside_dir/f"), "outside\n", 0644));
    ASSERT_TRUE(write_file(p("outside_file"), "precious\n", 0644));
    ASSERT_EQ(::symlink("/etc", p("l1/etc").c_str()), 0);
    ASSERT_EQ(::symlink("../../..", p("l1/x").c_str()), 0);
    ASSERT_EQ(::symlink(p("outside_file").c_str(), p("l1/abs").c_str()), 0);
    ASSERT_EQ(::symlink(p("outside_dir").c_str(), p("l1/d").c_str()), 0);
    before_l1_ = snapshot(p("l1"));
    before_out_ = snapshot(p("outside_dir")) + snapshot(p("outside_file"));
    etc_ = lstat_of("/etc");
    ASSERT_TRUE(etc_.has_value());
    auto slash = lstat_of("/");
    ASSERT_TRUE(slash.has_value());
    slash_ = *slash;
  }
  void TearDown() override {
    if (!IsSkipped() && !root().empty()) {
      EXPECT_EQ(snapshot(p("l1")), before_l1_) << "lower branch modified";
      EXPECT_EQ(snapshot(p("outside_dir")) + snapshot(p("outside_file")), before_out_)
          << "a symlink target outside the branches was modified";
      auto etc = lstat_of("/etc");
      ASSERT_TRUE(etc.has_value());
      // (Owner and mode only: other activity on the host may touch times.)
      EXPECT_EQ(etc->st_uid, etc_->st_uid);
      EXPECT_EQ(etc->st_mode, etc_->st_mode);
      EXPECT_TRUE(exists("/etc/passwd"));
      auto slash = lstat_of("/");
      ASSERT_TRUE(slash.has_value());
      EXPECT_EQ(slash->st_uid, slash_.st_uid);
      EXPECT_EQ(slash->st_mode, slash_.st_mode);
    }
    MountTest::TearDown();
  }
  std::string before_l1_, before_out_;
  std::optional<struct stat> etc_;
  struct stat slash_ {};
};

TEST_F(Hostile, LinksAreShownAsLinks) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  for (auto& [name, target] : std::vector<std::pair<std::string, std::string>>{
           {"etc", "/etc"}, {"x", "../../.."}, {"abs", p("outside_file")}, {"d", p("outside_dir")}}) {
    auto st = lstat_of(m(name));
    ASSERT_TRUE(st.has_value()) << name;
    EXPECT_TRUE(S_ISLNK(st->st_mode)) << name;
    EXPECT_EQ(readlink_of(m(name)), target) << name;
  }
  // The kernel follows the links, as for any symlink.
  auto r = sh("ls mnt/d/", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "f\n");
  EXPECT_EQ(read_file(m("abs")), "precious\n");
  EXPECT_EQ(list_dir(p("rw")),
            (std::vector<std::string>{".wh..wh.aufs", ".wh..wh.orph", ".wh..wh.plnk"}));
}

TEST_F(Hostile, RmOfDirSymlinkRemovesOnlyTheLink) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("rm mnt/d && rm mnt/etc", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(lstat_errno(m("d")), ENOENT);
  EXPECT_EQ(lstat_errno(m("etc")), ENOENT);
  EXPECT_TRUE(exists(p("rw/.wh.d")));
  EXPECT_TRUE(exists(p("rw/.wh.etc")));
  EXPECT_EQ(read_file(p("outside_dir/f")), "outside\n");
  EXPECT_TRUE(exists("/etc/passwd"));
}

TEST_F(Hostile, ChownOfSymlinkCopiesTheLinkUpAndLeavesTheTarget) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("chown -h 1234 mnt/x && chown -h 1234:1234 mnt/abs && chown -h 1234 mnt/d", root());
  ASSERT_TRUE(r.ok()) << r;
  for (auto& [name, target] : std::vector<std::pair<std::string, std::string>>{
           {"x", "../../.."}, {"abs", p("outside_file")}, {"d", p("outside_dir")}}) {
    auto st = lstat_of(p("rw/" + name));
    ASSERT_TRUE(st.has_value()) << name;
    EXPECT_TRUE(S_ISLNK(st->st_mode)) << name;
    EXPECT_EQ(st->st_uid, 1234u) << name;
    EXPECT_EQ(readlink_of(p("rw/" + name)), target) << name;
    EXPECT_EQ(lstat_of(m(name))->st_uid, 1234u) << name;
  }
  EXPECT_EQ(lstat_of(p("outside_file"))->st_uid, 0u);
  EXPECT_EQ(lstat_of(p("outside_dir"))->st_uid, 0u);
  EXPECT_EQ(lstat_of(p("l1/x"))->st_uid, 0u);
}

TEST_F(Hostile, MvOfSymlinkMovesTheLink) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("mv mnt/abs mnt/abs2 && mv mnt/d mnt/d2", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(lstat_errno(m("abs")), ENOENT);
  EXPECT_EQ(readlink_of(m("abs2")), p("outside_file"));
  EXPECT_EQ(readlink_of(p("rw/abs2")), p("outside_file"));
  EXPECT_TRUE(exists(p("rw/.wh.abs")));
  EXPECT_EQ(readlink_of(p("rw/d2")), p("outside_dir"));
  EXPECT_TRUE(exists(p("rw/.wh.d")));
  EXPECT_EQ(read_file(p("outside_file")), "precious\n");
}

TEST_F(Hostile, SymlinkedDirInsideBranchIsNeverTraversedByTheDaemon) {
  // l1 has a real dir "real/" with a file. After the union looked it up, a
  // symlink "real" -> outside_dir is planted in the rw branch, exactly where
  // the daemon would copy "real" up. Creating, chmod-ing or unlinking
  // children through the open union directory must never go through that
  // symlink: the daemon resolves branch paths without following links.
  mkdirs(p("l1/real"));
  ASSERT_TRUE(write_file(p("l1/real/inner"), "inner\n"));
  before_l1_ = snapshot(p("l1"));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  // Reach l1/real/inner, then plant a symlink in the rw branch where the
  // daemon will copy "real" up.
  EXPECT_EQ(read_file(m("real/inner")), "inner\n");
  int dfd = ::open(m("real").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dfd, 0) << errname(errno);
  ASSERT_EQ(::symlink(p("outside_dir").c_str(), p("rw/real").c_str()), 0);
  // Operations relative to the already open union directory.
  int fd = ::openat(dfd, "created", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
  ::fchmodat(dfd, "inner", 0600, 0);
  ::unlinkat(dfd, "inner", 0);
  ::mkdirat(dfd, "newdir", 0755);
  ::close(dfd);
  // Whatever the outcome of these calls, nothing appeared outside and the
  // planted link is still just a link.
  EXPECT_EQ(list_dir(p("outside_dir")), (std::vector<std::string>{"f"}));
  EXPECT_EQ(read_file(p("outside_dir/f")), "outside\n");
  EXPECT_EQ(lstat_of(p("outside_dir/f"))->st_mode & 07777, 0644u);
  auto planted = lstat_of(p("rw/real"));
  ASSERT_TRUE(planted.has_value());
  EXPECT_TRUE(S_ISLNK(planted->st_mode));
  EXPECT_EQ(readlink_of(p("rw/real")), p("outside_dir"));
  EXPECT_FALSE(exists(p("rw/.wh.real")));
  ::unlink(p("rw/real").c_str());
}

TEST_F(Hostile, SymlinkAsWhiteoutBaseIsNotUsed) {
  // A planted .wh..wh.aufs symlink in the rw branch must not make whiteouts
  // links to (or through) its target.
  ASSERT_TRUE(write_file(p("l1/victim"), "v\n"));
  before_l1_ = snapshot(p("l1"));
  ASSERT_EQ(::symlink(p("outside_file").c_str(), p("rw/.wh..wh.aufs").c_str()), 0);
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_SYS_OK(::unlink(m("victim").c_str()));
  EXPECT_EQ(lstat_errno(m("victim")), ENOENT);
  EXPECT_TRUE(list_dir(m()).size() == 4u) << "etc, x, abs, d expected";
  auto wh = lstat_of(p("rw/.wh.victim"));
  ASSERT_TRUE(wh.has_value());
  EXPECT_TRUE(S_ISREG(wh->st_mode)) << "whiteout is not a regular file";
  EXPECT_EQ(lstat_of(p("outside_file"))->st_nlink, 1u);
}

TEST_F(Hostile, NonRegularWhiteoutInLowerBranchIsEIO) {
  // AUFS: a whiteout that is not a regular file is invalid (EIO).
  mkdirs(p("l2"));
  ASSERT_TRUE(write_file(p("l2/foo"), "foo\n"));
  ASSERT_EQ(::symlink("/etc/passwd", p("l1/.wh.foo").c_str()), 0);
  before_l1_ = snapshot(p("l1"));
  allow_log("invalid whiteout");
  ASSERT_TRUE(mount("rw:l1=ro+wh:l2=ro"));
  struct stat st;
  EXPECT_ERRNO(EIO, ::lstat(m("foo").c_str(), &st));
  EXPECT_EQ(read_file("/etc/passwd").empty(), false);
}

}  // namespace
}  // namespace aufs::mt
