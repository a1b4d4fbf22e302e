// SPDX-License-Identifier: GPL-2.0-or-later
// Whiteouts, opaque directories, reserved names and name lengths.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

const std::vector<std::string> kRwMeta = {".wh..wh.aufs", ".wh..wh.orph", ".wh..wh.plnk"};

std::vector<std::string> with_meta(std::vector<std::string> v) {
  v.insert(v.end(), kRwMeta.begin(), kRwMeta.end());
  std::sort(v.begin(), v.end());
  return v;
}

void expect_linked_to_base(const std::string& path, const std::string& base) {
  auto w = lstat_of(path);
  auto b = lstat_of(base);
  ASSERT_TRUE(w.has_value()) << path << " missing";
  ASSERT_TRUE(b.has_value()) << base << " missing";
  EXPECT_TRUE(S_ISREG(w->st_mode)) << path;
  EXPECT_EQ(w->st_size, 0) << path;
  EXPECT_EQ(w->st_ino, b->st_ino) << path << " is not a hard link to " << base;
}

bool no_wh_names(const std::vector<std::string>& names) {
  return std::none_of(names.begin(), names.end(),
                      [](const std::string& n) { return n.starts_with(".wh."); });
}

class Whiteout : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw"));
    mkdirs(p("l1/d"));
    write_file(p("l1/d/f1"), "one\n");
    write_file(p("l1/d/f2"), "two\n");
    write_file(p("l1/top.txt"), "top\n");
    lower_before_ = snapshot(p("l1"));
  }
  std::string lower_before_;
};

TEST_F(Whiteout, RmdirOfLowerDirWritesWhiteoutAndMkdirMakesOpaqueDir) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("rm -rf mnt/d", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(lstat_errno(m("d")), ENOENT);
  EXPECT_EQ(list_dir(m()), (std::vector<std::string>{"top.txt"}));
  // Only the whiteout remains in the rw branch (the copied-up dir and its
  // child whiteouts are gone, no temporaries are left over).
  EXPECT_EQ(list_dir(p("rw")), with_meta({".wh.d"}));
  expect_linked_to_base(p("rw/.wh.d"), p("rw/.wh..wh.aufs"));

  // mkdir over the whiteout: an opaque dir, lower contents stay hidden.
  ASSERT_SYS_OK(::mkdir(m("d").c_str(), 0755));
  auto st = lstat_of(p("rw/d"));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(S_ISDIR(st->st_mode));
  EXPECT_FALSE(exists(p("rw/.wh.d")));
  expect_linked_to_base(p("rw/d/.wh..wh..opq"), p("rw/.wh..wh.aufs"));
  EXPECT_TRUE(list_dir(m("d")).empty());
  EXPECT_EQ(lstat_errno(m("d/f1")), ENOENT);
  auto ls = sh("ls -A mnt/d", root());
  EXPECT_TRUE(ls.ok()) << ls;
  EXPECT_EQ(ls.out, "");
  ASSERT_TRUE(write_file(m("d/f1"), "new\n"));
  EXPECT_EQ(read_file(m("d/f1")), "new\n");
  EXPECT_EQ(list_dir(m("d")), (std::vector<std::string>{"f1"}));
  EXPECT_EQ(list_dir(p("rw/d")), (std::vector<std::string>{".wh..wh..opq", "f1"}));
  EXPECT_EQ(list_dir(p("rw")), with_meta({"d"}));
  EXPECT_EQ(snapshot(p("l1")), lower_before_);
}

TEST_F(Whiteout, UnlinkOfLowerFileWritesWhiteout) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_SYS_OK(::unlink(m("d/f1").c_str()));
  EXPECT_EQ(lstat_errno(m("d/f1")), ENOENT);
  EXPECT_EQ(list_dir(m("d")), (std::vector<std::string>{"f2"}));
  EXPECT_EQ(list_dir(p("rw/d")), (std::vector<std::string>{".wh.f1"}));
  expect_linked_to_base(p("rw/d/.wh.f1"), p("rw/.wh..wh.aufs"));
  // A file created and removed on the rw branch only leaves no whiteout.
  ASSERT_TRUE(write_file(m("d/tmp"), "x"));
  EXPECT_TRUE(exists(p("rw/d/tmp")));
  ASSERT_SYS_OK(::unlink(m("d/tmp").c_str()));
  EXPECT_EQ(list_dir(p("rw/d")), (std::vector<std::string>{".wh.f1"}));
  // Recreating the whited-out name removes the whiteout.
  ASSERT_TRUE(write_file(m("d/f1"), "again\n"));
  EXPECT_EQ(read_file(m("d/f1")), "again\n");
  EXPECT_EQ(list_dir(p("rw/d")), (std::vector<std::string>{"f1"}));
  EXPECT_EQ(snapshot(p("l1")), lower_before_);
}

TEST_F(Whiteout, NolwhWhiteoutsArePlainFiles) {
  ASSERT_TRUE(mount("rw=rw+nolwh:l1=ro+wh"));
  EXPECT_FALSE(exists(p("rw/.wh..wh.aufs")));
  ASSERT_SYS_OK(::unlink(m("top.txt").c_str()));
  EXPECT_EQ(lstat_errno(m("top.txt")), ENOENT);
  auto st = lstat_of(p("rw/.wh.top.txt"));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(S_ISREG(st->st_mode));
  EXPECT_EQ(st->st_size, 0);
  EXPECT_EQ(st->st_nlink, 1u);
  EXPECT_EQ(st->st_mode & 07777, 0444u);
}

TEST_F(Whiteout, ReaddirNeverShowsWhiteoutNames) {
  write_file(p("l1/.wh.ghost"), "");
  write_file(p("l1/d/.wh..wh..opq"), "");
  mkdirs(p("l2"));
  write_file(p("l2/ghost"), "boo\n");
  ASSERT_TRUE(mount("rw:l1=ro+wh:l2=ro"));
  ASSERT_SYS_OK(::unlink(m("top.txt").c_str()));
  ASSERT_TRUE(exists(p("rw/.wh.top.txt")));
  auto names = list_dir(m());
  EXPECT_TRUE(no_wh_names(names));
  EXPECT_EQ(names, (std::vector<std::string>{"d"}));
  EXPECT_TRUE(no_wh_names(list_dir(m("d"))));
  auto ls = sh("ls -a mnt mnt/d", root());
  ASSERT_TRUE(ls.ok()) << ls;
  EXPECT_EQ(ls.out.find(".wh."), std::string::npos) << ls.out;
  auto find = sh("find mnt", root());
  ASSERT_TRUE(find.ok()) << find;
  EXPECT_EQ(find.out.find(".wh."), std::string::npos) << find.out;
}

TEST_F(Whiteout, WhiteoutPrefixedNamesAreRejectedWithEperm) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  ASSERT_SYS_OK(::unlink(m("top.txt").c_str()));
  struct stat st;
  EXPECT_ERRNO(EPERM, ::lstat(m(".wh.x").c_str(), &st));
  EXPECT_ERRNO(EPERM, ::lstat(m(".wh.top.txt").c_str(), &st));   // exists on rw
  EXPECT_ERRNO(EPERM, ::lstat(m(".wh..wh.aufs").c_str(), &st));  // exists on rw
  EXPECT_ERRNO(EPERM, ::lstat(m("d/.wh.f1").c_str(), &st));
  auto r = sh("stat mnt/.wh.x", root());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("Operation not permitted"), std::string::npos) << r;
  EXPECT_ERRNO(EPERM, ::open(m(".wh.foo").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  EXPECT_ERRNO(EPERM, ::mkdir(m(".wh.foo").c_str(), 0755));
  EXPECT_ERRNO(EPERM, ::symlink("x", m(".wh.foo").c_str()));
  EXPECT_ERRNO(EPERM, ::mknod(m(".wh.foo").c_str(), S_IFIFO | 0644, 0));
  EXPECT_ERRNO(EPERM, ::rename(m("d/f1").c_str(), m(".wh.foo").c_str()));
  EXPECT_ERRNO(EPERM, ::link(m("d/f1").c_str(), m(".wh.foo").c_str()));
  r = sh("touch mnt/.wh.foo", root());
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_FALSE(exists(p("rw/.wh.foo")));
  EXPECT_EQ(list_dir(p("rw")), with_meta({".wh.top.txt"}));
  EXPECT_EQ(snapshot(p("l1")), lower_before_);
}

TEST_F(Whiteout, NameLengthLimitIs242) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  std::string n242(242, 'a'), n243(243, 'b');
  int fd = ::open(m(n242).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  EXPECT_GE(fd, 0) << errname(errno);
  if (fd >= 0) ::close(fd);
  EXPECT_TRUE(exists(p("rw/" + n242)));
  EXPECT_TRUE(exists(m(n242)));
  EXPECT_ERRNO(ENAMETOOLONG, ::open(m(n243).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  EXPECT_ERRNO(ENAMETOOLONG, ::mkdir(m(n243).c_str(), 0755));
  struct stat st;
  EXPECT_ERRNO(ENAMETOOLONG, ::lstat(m(n243).c_str(), &st));
  EXPECT_FALSE(exists(p("rw/" + n243)));
  // Removing the 242-byte lower name needs a whiteout of 246 bytes.
  write_file(p("l1/" + std::string(242, 'c')), "long\n");
  ASSERT_SYS_OK(::unlink(m(std::string(242, 'c')).c_str()));
  EXPECT_TRUE(exists(p("rw/.wh." + std::string(242, 'c'))));
  EXPECT_EQ(lstat_errno(m(std::string(242, 'c'))), ENOENT);

  // A longer name on a lower branch is listed but cannot be looked up.
  std::string n250(250, 'd');
  write_file(p("l1/" + n250), "too long\n");
  auto names = list_dir(m());
  EXPECT_NE(std::find(names.begin(), names.end(), n250), names.end());
  EXPECT_ERRNO(ENAMETOOLONG, ::lstat(m(n250).c_str(), &st));

  auto r = sh("stat -f -c %l mnt", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "242\n");
  struct statvfs sv;
  ASSERT_SYS_OK(::statvfs(m().c_str(), &sv));
  EXPECT_EQ(sv.f_namemax, 242u);
}

TEST_F(Whiteout, RmdirOfDirWithLowerContentIsENOTEMPTY) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  EXPECT_ERRNO(ENOTEMPTY, ::rmdir(m("d").c_str()));
  auto r = sh("rmdir mnt/d", root());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(exists(m("d/f1")));
  EXPECT_EQ(list_dir(p("rw")), kRwMeta);
  // Whiteouts make it logically empty.
  ASSERT_SYS_OK(::unlink(m("d/f1").c_str()));
  EXPECT_ERRNO(ENOTEMPTY, ::rmdir(m("d").c_str()));
  ASSERT_SYS_OK(::unlink(m("d/f2").c_str()));
  EXPECT_SYS_OK(::rmdir(m("d").c_str()));
  EXPECT_EQ(lstat_errno(m("d")), ENOENT);
  EXPECT_EQ(list_dir(p("rw")), with_meta({".wh.d"}));
  EXPECT_EQ(snapshot(p("l1")), lower_before_);
}

TEST_F(Whiteout, RmRfOfDeepLowerTreeThenRecreateShowsNothingOld) {
  mkdirs(p("l1/t/a/b"));
  write_file(p("l1/t/a/b/deep"), "deep\n");
  write_file(p("l1/t/a/mid"), "mid\n");
  write_file(p("l1/t/top"), "top\n");
  lower_before_ = snapshot(p("l1"));
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  auto r = sh("rm -rf mnt/t", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(lstat_errno(m("t")), ENOENT);
  EXPECT_EQ(list_dir(p("rw")), with_meta({".wh.t"}));
  // Recreate the whole path: every level is new and empty.
  r = sh("mkdir -p mnt/t/a/b", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(list_dir(m("t")), (std::vector<std::string>{"a"}));
  EXPECT_EQ(list_dir(m("t/a")), (std::vector<std::string>{"b"}))
      << "lower t/a shows through a recreated dir";
  EXPECT_EQ(lstat_errno(m("t/a/mid")), ENOENT);
  EXPECT_TRUE(list_dir(m("t/a/b")).empty());
  EXPECT_EQ(lstat_errno(m("t/a/b/deep")), ENOENT);
  EXPECT_EQ(lstat_errno(m("t/top")), ENOENT);
  auto find = sh("find mnt/t | sort", root());
  ASSERT_TRUE(find.ok()) << find;
  EXPECT_EQ(find.out, "mnt/t\nmnt/t/a\nmnt/t/a/b\n");
  EXPECT_TRUE(exists(p("rw/t/.wh..wh..opq")));
  EXPECT_EQ(snapshot(p("l1")), lower_before_);
}

TEST_F(Whiteout, TypeChangesOverWhiteouts) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  // Lower dir replaced by a file.
  auto r = sh("rm -rf mnt/d && echo file > mnt/d", root());
  ASSERT_TRUE(r.ok()) << r;
  auto st = lstat_of(m("d"));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(S_ISREG(st->st_mode));
  EXPECT_EQ(read_file(m("d")), "file\n");
  EXPECT_FALSE(exists(p("rw/.wh.d")));
  // Lower file replaced by a dir: opaque, empty.
  r = sh("rm mnt/top.txt && mkdir mnt/top.txt", root());
  ASSERT_TRUE(r.ok()) << r;
  st = lstat_of(m("top.txt"));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(S_ISDIR(st->st_mode));
  EXPECT_TRUE(list_dir(m("top.txt")).empty());
  EXPECT_FALSE(exists(p("rw/.wh.top.txt")));
  EXPECT_EQ(list_dir(m()), (std::vector<std::string>{"d", "top.txt"}));
  EXPECT_EQ(snapshot(p("l1")), lower_before_);
}

TEST_F(Whiteout, RwBranchMetadataCreatedAtMount) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  EXPECT_EQ(list_dir(p("rw")), kRwMeta);
  auto base = lstat_of(p("rw/.wh..wh.aufs"));
  ASSERT_TRUE(base.has_value());
  EXPECT_TRUE(S_ISREG(base->st_mode));
  EXPECT_EQ(base->st_mode & 07777, 0444u);
  EXPECT_EQ(base->st_size, 0);
  for (auto d : {"rw/.wh..wh.plnk", "rw/.wh..wh.orph"}) {
    auto st = lstat_of(p(d));
    ASSERT_TRUE(st.has_value()) << d;
    EXPECT_TRUE(S_ISDIR(st->st_mode)) << d;
    EXPECT_EQ(st->st_mode & 07777, 0700u) << d;
  }
  // Read-only branches get nothing.
  EXPECT_EQ(snapshot(p("l1")), lower_before_);
}

class LowerWhiteouts : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw"));
    // l1: an image layer with a whiteout and an opaque dir.
    mkdirs(p("l1/op"));
    write_file(p("l1/.wh.hidden"), "", 0444);
    write_file(p("l1/op/.wh..wh..opq"), "", 0444);
    write_file(p("l1/op/top.txt"), "top\n");
    // l2: what l1 hides.
    mkdirs(p("l2/op/deep"));
    write_file(p("l2/hidden"), "should be hidden\n");
    write_file(p("l2/visible.txt"), "visible\n");
    write_file(p("l2/op/low.txt"), "low\n");
    write_file(p("l2/op/deep/x"), "x\n");
    before_l1_ = snapshot(p("l1"));
    before_l2_ = snapshot(p("l2"));
  }
  std::string before_l1_, before_l2_;
};

TEST_F(LowerWhiteouts, RoWhBranchWhiteoutsAndOpaqueDirsHide) {
  ASSERT_TRUE(mount("rw:l1=ro+wh:l2=ro"));
  EXPECT_EQ(list_dir(m()), (std::vector<std::string>{"op", "visible.txt"}));
  EXPECT_EQ(lstat_errno(m("hidden")), ENOENT);
  EXPECT_EQ(list_dir(m("op")), (std::vector<std::string>{"top.txt"}));
  EXPECT_EQ(lstat_errno(m("op/low.txt")), ENOENT);
  EXPECT_EQ(lstat_errno(m("op/deep")), ENOENT);
  EXPECT_EQ(lstat_errno(m("op/deep/x")), ENOENT);
  EXPECT_EQ(read_file(m("op/top.txt")), "top\n");
  EXPECT_EQ(read_file(m("visible.txt")), "visible\n");
  // Creating the hidden name shows only the new file.
  ASSERT_TRUE(write_file(m("hidden"), "new\n"));
  EXPECT_EQ(read_file(m("hidden")), "new\n");
  ASSERT_TRUE(write_file(m("op/low.txt"), "mine\n"));
  EXPECT_EQ(read_file(m("op/low.txt")), "mine\n");
  EXPECT_EQ(list_dir(m("op")), (std::vector<std::string>{"low.txt", "top.txt"}));
  EXPECT_EQ(snapshot(p("l1")), before_l1_);
  EXPECT_EQ(snapshot(p("l2")), before_l2_);
}

TEST_F(LowerWhiteouts, PlainRoBranchWhiteoutsAreIgnoredButNotListed) {
  ASSERT_TRUE(mount("rw:l1=ro:l2=ro"));
  auto names = list_dir(m());
  EXPECT_EQ(names, (std::vector<std::string>{"hidden", "op", "visible.txt"}));
  EXPECT_EQ(read_file(m("hidden")), "should be hidden\n");
  EXPECT_EQ(list_dir(m("op")), (std::vector<std::string>{"deep", "low.txt", "top.txt"}));
  EXPECT_EQ(read_file(m("op/deep/x")), "x\n");
  struct stat st;
  EXPECT_ERRNO(EPERM, ::lstat(m(".wh.hidden").c_str(), &st));
  EXPECT_ERRNO(EPERM, ::lstat(m("op/.wh..wh..opq").c_str(), &st));
  EXPECT_EQ(snapshot(p("l1")), before_l1_);
  EXPECT_EQ(snapshot(p("l2")), before_l2_);
}

TEST_F(LowerWhiteouts, RrWhBranchHonoursWhiteouts) {
  ASSERT_TRUE(mount("rw:l1=rr+wh:l2=rr"));
  EXPECT_EQ(list_dir(m()), (std::vector<std::string>{"op", "visible.txt"}));
  EXPECT_EQ(list_dir(m("op")), (std::vector<std::string>{"top.txt"}));
}

TEST_F(MountTest, FileOverDirAndDirOverFile) {
  // l1 (upper): file x, dir y.  l2 (lower): dir x, file y.
  mkdirs(p("rw"));
  mkdirs(p("l1/y"));
  write_file(p("l1/x"), "file x\n");
  write_file(p("l1/y/inner-l1"), "1\n");
  mkdirs(p("l2/x"));
  write_file(p("l2/x/inner-l2"), "2\n");
  write_file(p("l2/y"), "file y\n");
  ASSERT_TRUE(mount("rw:l1=ro+wh:l2=ro+wh"));
  auto x = lstat_of(m("x"));
  auto y = lstat_of(m("y"));
  ASSERT_TRUE(x.has_value());
  ASSERT_TRUE(y.has_value());
  EXPECT_TRUE(S_ISREG(x->st_mode));
  EXPECT_TRUE(S_ISDIR(y->st_mode));
  EXPECT_EQ(read_file(m("x")), "file x\n");
  struct stat st;
  EXPECT_ERRNO(ENOTDIR, ::lstat(m("x/inner-l2").c_str(), &st));
  EXPECT_EQ(list_dir(m("y")), (std::vector<std::string>{"inner-l1"}));
  auto r = sh("find mnt -printf '%y %P\\n' | sort", root());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "d \nd y\nf x\nf y/inner-l1\n");
  // Removing the upper file makes the name vanish (whiteout), it does not
  // uncover the lower dir.
  ASSERT_SYS_OK(::unlink(m("x").c_str()));
  EXPECT_EQ(lstat_errno(m("x")), ENOENT);
  EXPECT_TRUE(exists(p("rw/.wh.x")));
}

}  // namespace
}  // namespace aufs::mt
