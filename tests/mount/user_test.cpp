// SPDX-License-Identifier: GPL-2.0-or-later
// A non-root user on a mount started by root with allow_other: files are
// created as the caller, permissions are enforced (default_permissions).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

class AsUser : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
    std::string r = root();
    if (errno_as(kNobody, kNogroup, [&] { return ::access(r.c_str(), X_OK) < 0 ? errno : 0; }) != 0)
      GTEST_SKIP() << "user " << kNobody << " cannot reach " << r
                   << " (an ancestor of $TMPDIR is not searchable)";
    mkdirs(p("rw"));
    mkdirs(p("l1/pub"));
    ASSERT_EQ(::chmod(p("l1/pub").c_str(), 01777), 0);
    ASSERT_TRUE(write_file(p("l1/pub/rootfile"), "root's\n", 0644));
    ASSERT_TRUE(write_file(p("l1/rofile"), "readable\n", 0644));
    ASSERT_TRUE(write_file(p("l1/secret"), "s3cret\n", 0600));
    before_ = snapshot(p("l1"));
  }
  void TearDown() override {
    if (!IsSkipped() && !root().empty()) {
      EXPECT_EQ(snapshot(p("l1")), before_) << "lower branch modified";
    }
    MountTest::TearDown();
  }
  std::string before_;
};

TEST_F(AsUser, CreateInWorldWritableDirIsOwnedByCaller) {
  ASSERT_TRUE(mount("rw:l1=ro+wh", "allow_other"));
  auto r = sh_as(kNobody, kNogroup, "echo mine > mnt/pub/mine && mkdir mnt/pub/mydir", root());
  ASSERT_TRUE(r.ok()) << r;
  auto st = lstat_of(p("rw/pub/mine"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_uid, kNobody);
  EXPECT_EQ(st->st_gid, kNogroup);
  EXPECT_EQ(read_file(p("rw/pub/mine")), "mine\n");
  auto d = lstat_of(p("rw/pub/mydir"));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->st_uid, kNobody);
  EXPECT_EQ(d->st_gid, kNogroup);
  // The copied-up parent keeps root ownership and the sticky mode.
  auto pub = lstat_of(p("rw/pub"));
  ASSERT_TRUE(pub.has_value());
  EXPECT_EQ(pub->st_uid, 0u);
  EXPECT_EQ(pub->st_mode & 07777, 01777u);
  auto u = lstat_of(m("pub/mine"));
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->st_uid, kNobody);
  // The owner can remove what it made; no whiteout needed.
  r = sh_as(kNobody, kNogroup, "rm mnt/pub/mine && rmdir mnt/pub/mydir", root());
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(list_dir(p("rw/pub")), std::vector<std::string>{});
}

TEST_F(AsUser, CannotDeleteOrChangeRootFiles) {
  ASSERT_TRUE(mount("rw:l1=ro+wh", "allow_other"));
  std::string rofile = m("rofile"), rootfile = m("pub/rootfile"), secret = m("secret");
  EXPECT_EQ(errno_as(kNobody, kNogroup, [&] { return err_of(::unlink(rofile.c_str())); }),
            EACCES);
  EXPECT_EQ(errno_as(kNobody, kNogroup, [&] { return err_of(::unlink(rootfile.c_str())); }),
            EPERM)
      << "sticky directory";
  EXPECT_EQ(errno_as(kNobody, kNogroup, [&] { return err_of(::chmod(rofile.c_str(), 0666)); }),
            EPERM);
  EXPECT_EQ(errno_as(kNobody, kNogroup,
                     [&] { return err_of(::chown(rofile.c_str(), kNobody, kNogroup)); }),
            EPERM);
  EXPECT_EQ(errno_as(kNobody, kNogroup,
                     [&] { return err_of(::open(rofile.c_str(), O_WRONLY | O_CLOEXEC)); }),
            EACCES);
  EXPECT_EQ(errno_as(kNobody, kNogroup, [&] { return err_of(::truncate(rofile.c_str(), 0)); }),
            EACCES);
  EXPECT_EQ(errno_as(kNobody, kNogroup,
                     [&] { return err_of(::rename(rootfile.c_str(), (rootfile + "2").c_str())); }),
            EPERM);
  auto r = sh_as(kNobody, kNogroup, "rm -f mnt/rofile; chmod 777 mnt/rofile", root());
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_EQ(read_file(m("rofile")), "readable\n");
  EXPECT_EQ(read_file(m("pub/rootfile")), "root's\n");
  EXPECT_EQ(lstat_of(m("rofile"))->st_mode & 07777, 0644u);
  // Nothing was copied up or whited out.
  EXPECT_EQ(list_dir(p("rw")),
            (std::vector<std::string>{".wh..wh.aufs", ".wh..wh.orph", ".wh..wh.plnk"}));
}

TEST_F(AsUser, OwnerCanModifyOwnLowerFileInRootDir) {
  // The caller may write its file but not the (root-owned) directories the
  // copy-up has to create: the daemon copies up on its behalf.
  mkdirs(p("l1/rootdir"));
  ASSERT_TRUE(write_file(p("l1/rootdir/userfile"), "user data\n", 0644));
  ASSERT_EQ(::chown(p("l1/rootdir/userfile").c_str(), kNobody, kNogroup), 0);
  before_ = snapshot(p("l1"));
  ASSERT_TRUE(mount("rw:l1=ro+wh", "allow_other"));
  auto r = sh_as(kNobody, kNogroup, "echo more >> mnt/rootdir/userfile && chmod 0600 mnt/rootdir/userfile",
                 root());
  ASSERT_TRUE(r.ok()) << r;
  auto st = lstat_of(p("rw/rootdir/userfile"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_uid, kNobody);
  EXPECT_EQ(st->st_gid, kNogroup);
  EXPECT_EQ(st->st_mode & 07777, 0600u);
  EXPECT_EQ(read_file(p("rw/rootdir/userfile")), "user data\nmore\n");
  auto d = lstat_of(p("rw/rootdir"));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->st_uid, 0u);
  EXPECT_EQ(d->st_mode & 07777, 0755u);
  // ... but cannot create in that directory.
  r = sh_as(kNobody, kNogroup, "touch mnt/rootdir/new", root());
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_FALSE(exists(p("rw/rootdir/new")));
}

TEST_F(AsUser, CannotReadPrivateRootFile) {
  ASSERT_TRUE(mount("rw:l1=ro+wh", "allow_other"));
  std::string secret = m("secret"), rofile = m("rofile");
  EXPECT_EQ(errno_as(kNobody, kNogroup,
                     [&] { return err_of(::open(secret.c_str(), O_RDONLY | O_CLOEXEC)); }),
            EACCES);
  auto r = sh_as(kNobody, kNogroup, "cat mnt/secret", root());
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "");
  r = sh_as(kNobody, kNogroup, "cat mnt/rofile", root());
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "readable\n");
}

TEST_F(AsUser, WithoutAllowOtherOtherUsersAreLockedOut) {
  ASSERT_TRUE(mount("rw:l1=ro+wh"));
  std::string rofile = m("rofile");
  struct stat st;
  EXPECT_EQ(errno_as(kNobody, kNogroup, [&] { return err_of(::stat(rofile.c_str(), &st)); }),
            EACCES);
  EXPECT_EQ(read_file(rofile), "readable\n");
}

// acl: the kernel enforces POSIX ACLs read from the branches. Without it
// only the mode bits count (FUSE default_permissions).
std::string access_acl(uid_t user) {
  // posix_acl_xattr format: version 2, then (tag, perm, id) entries.
  std::string v;
  auto u32 = [&](uint32_t x) { v.append(reinterpret_cast<const char*>(&x), 4); };
  auto u16 = [&](uint16_t x) { v.append(reinterpret_cast<const char*>(&x), 2); };
  auto ent = [&](uint16_t tag, uint16_t perm, uint32_t id) { u16(tag); u16(perm); u32(id); };
  u32(2);
  ent(0x01, 6, ~0u);   // user::rw-
  ent(0x02, 4, user);  // user:USER:r--
  ent(0x04, 0, ~0u);   // group::---
  ent(0x10, 4, ~0u);   // mask::r--
  ent(0x20, 0, ~0u);   // other::---
  return v;
}

class Acl : public AsUser {
 protected:
  void SetUp() override {
    AsUser::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::string acl = access_acl(kNobody);
    ASSERT_TRUE(write_file(p("l1/aclfile"), "by acl\n", 0600));
    if (::setxattr(p("l1/aclfile").c_str(), "system.posix_acl_access", acl.data(), acl.size(), 0) != 0)
      GTEST_SKIP() << "branch file system without POSIX ACLs: " << errname(errno);
    before_ = snapshot(p("l1"));
  }
};

TEST_F(Acl, AclOptionEnforcesBranchAcls) {
  ASSERT_TRUE(mount("rw:l1=ro+wh", "allow_other,acl"));
  auto r = sh_as(kNobody, kNogroup, "cat mnt/aclfile", root());
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "by acl\n");
  // The ACL grants nothing more: no write.
  EXPECT_FALSE(sh_as(kNobody, kNogroup, "echo x >> mnt/aclfile", root()).ok());
}

TEST_F(Acl, WithoutAclOnlyModeBitsCount) {
  ASSERT_TRUE(mount("rw:l1=ro+wh", "allow_other,noacl"));
  auto r = sh_as(kNobody, kNogroup, "cat mnt/aclfile", root());
  EXPECT_FALSE(r.ok()) << "mode 0640 root:root, caller nobody: " << r;
}

}  // namespace
}  // namespace aufs::mt
