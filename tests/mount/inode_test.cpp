// SPDX-License-Identifier: GPL-2.0-or-later
// Inode numbers: stable across copy-up, equal to readdir's d_ino, shared by
// lower hard links.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <sstream>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

std::map<std::string, ino_t> readdir_inos(const std::string& dir) {
  std::map<std::string, ino_t> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (auto* e = ::readdir(d)) out[e->d_name] = e->d_ino;
  ::closedir(d);
  return out;
}

// "ls -i" output: name -> ino.
std::map<std::string, ino_t> ls_inos(const std::string& dir) {
  std::map<std::string, ino_t> out;
  auto r = sh("ls -1ai " + q(dir));
  EXPECT_TRUE(r.ok()) << r;
  std::istringstream in(r.out);
  ino_t ino;
  std::string name;
  while (in >> ino >> name) out[name] = ino;
  return out;
}

class Inodes : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw/both"));
    mkdirs(p("l1/both"));
    mkdirs(p("l1/lowdir"));
    write_file(p("l1/f"), "f\n");
    write_file(p("l1/h1"), "linked\n");
    ASSERT_EQ(::link(p("l1/h1").c_str(), p("l1/h2").c_str()), 0);
    write_file(p("rw/up"), "up\n");
    write_file(p("l1/both/low"), "low\n");
    write_file(p("rw/both/high"), "high\n");
    before_ = snapshot(p("l1"));
  }
  std::string before_;
};

TEST_F(Inodes, StableAcrossCopyUpAndEqualToDino) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto before = stat_of(m("f"));
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(readdir_inos(m())["f"], before->st_ino);
  EXPECT_EQ(ls_inos(m())["f"], before->st_ino);

  auto r = sh("chmod 0600 mnt/f", root());
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_TRUE(exists(p("rw/f")));
  auto after = stat_of(m("f"));
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->st_ino, before->st_ino);
  EXPECT_EQ(after->st_mode & 07777, 0600u);
  EXPECT_EQ(readdir_inos(m())["f"], before->st_ino);
  EXPECT_EQ(ls_inos(m())["f"], before->st_ino);

  // Directories too.
  auto d0 = stat_of(m("lowdir"));
  ASSERT_TRUE(d0.has_value());
  ASSERT_TRUE(write_file(m("lowdir/new"), "x"));
  ASSERT_TRUE(exists(p("rw/lowdir/new")));
  auto d1 = stat_of(m("lowdir"));
  ASSERT_TRUE(d1.has_value());
  EXPECT_EQ(d1->st_ino, d0->st_ino);
  EXPECT_EQ(readdir_inos(m())["lowdir"], d0->st_ino);
}

TEST_F(Inodes, ReaddirInoEqualsStatInoEverywhere) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  for (std::string dir : {m(), m("both"), m("lowdir")}) {
    auto inos = readdir_inos(dir);
    ASSERT_FALSE(inos.empty()) << dir;
    for (auto& [name, ino] : inos) {
      if (dir == m() && name == "..") continue;  // outside the union
      auto st = lstat_of(dir + "/" + name);
      ASSERT_TRUE(st.has_value()) << dir << "/" << name;
      EXPECT_EQ(ino, st->st_ino) << dir << "/" << name;
    }
  }
  auto st = stat_of(m());
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_ino, 2u) << "AUFS root inode number is 2";
  // Every object reports the mount's own device.
  for (auto& n : {"f", "up", "both", "both/low", "both/high", "lowdir"})
    EXPECT_EQ(lstat_of(m(n))->st_dev, st->st_dev) << n;
  // Distinct objects, distinct numbers.
  std::map<ino_t, std::string> seen;
  for (auto& n : {"f", "up", "both", "both/low", "both/high", "lowdir", "h1"}) {
    ino_t i = lstat_of(m(n))->st_ino;
    EXPECT_EQ(seen.count(i), 0u) << n << " shares st_ino with " << seen[i];
    seen[i] = n;
  }
}

TEST_F(Inodes, LowerHardLinksShareStIno) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto a = lstat_of(m("h1"));
  auto b = lstat_of(m("h2"));
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(a->st_ino, b->st_ino);
  EXPECT_EQ(a->st_nlink, 2u);
  auto inos = readdir_inos(m());
  EXPECT_EQ(inos["h1"], inos["h2"]);
  auto r = sh("find mnt -samefile mnt/h1 | sort", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "mnt/h1\nmnt/h2\n");
}

TEST_F(Inodes, CopiedUpHardLinkKeepsIdentityAndContentForOtherName) {
  // AUFS pseudo-links: after one name of a lower hard link is copied up,
  // the other name shows the same inode number and the new content.
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto before = lstat_of(m("h2"));
  ASSERT_TRUE(before.has_value());
  auto r = sh("echo more >> mnt/h1", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(read_file(m("h1")), "linked\nmore\n");
  EXPECT_EQ(read_file(m("h2")), "linked\nmore\n");
  auto a = lstat_of(m("h1"));
  auto b = lstat_of(m("h2"));
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(a->st_ino, before->st_ino);
  EXPECT_EQ(b->st_ino, before->st_ino);
  EXPECT_EQ(snapshot(p("l1")), before_);
}

// A removed entry's branch inode number may be reused by the branch
// filesystem for the next file made there (ext4 does so at once). The union
// must not hand the new file the old object's identity, above all while the
// old object is still in use.
TEST_F(Inodes, RecreatedNameAfterRemovalOfCopiedUpDirWhileOpen) {
  mkdirs(p("l1/gone/sub"));
  write_file(p("l1/gone/f"), "f\n");
  before_ = snapshot(p("l1"));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  int dfd = ::open(m("gone").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dfd, 0) << errname(errno);
  auto old = lstat_of(m("gone"));
  ASSERT_TRUE(old.has_value());
  auto r = sh("rm -rf mnt/gone && echo file > mnt/gone", root());
  EXPECT_TRUE(r.ok()) << r;
  auto st = lstat_of(m("gone"));
  EXPECT_TRUE(st.has_value()) << errname(lstat_errno(m("gone")));
  if (st) {
    EXPECT_TRUE(S_ISREG(st->st_mode));
    EXPECT_NE(st->st_ino, old->st_ino) << "the new file took the removed directory's identity";
  }
  EXPECT_EQ(read_file(m("gone")), "file\n");
  ::close(dfd);
  EXPECT_EQ(snapshot(p("l1")), before_);
}

TEST_F(Inodes, RecreatedNameAfterRemovalOfCopiedUpFileWhileOpen) {
  ASSERT_TRUE(write_file(p("l1/g"), "old\n"));
  before_ = snapshot(p("l1"));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  int fd = ::open(m("g").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << errname(errno);
  auto r = sh("chmod 0600 mnt/g && rm mnt/g && echo new > mnt/g", root());
  EXPECT_TRUE(r.ok()) << r;
  // The open file is the removed one: its data and identity stay its own.
  char buf[16] = {};
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), 4);
  EXPECT_EQ(std::string(buf, 4), "old\n");
  struct stat ost;
  ASSERT_EQ(::fstat(fd, &ost), 0);
  auto nst = lstat_of(m("g"));
  ASSERT_TRUE(nst.has_value());
  EXPECT_NE(nst->st_ino, ost.st_ino) << "a new file shares st_ino with a removed, still open one";
  EXPECT_EQ(read_file(m("g")), "new\n");
  ::close(fd);
  EXPECT_EQ(snapshot(p("l1")), before_);
}

}  // namespace
}  // namespace aufs::mt
