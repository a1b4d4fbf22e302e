// SPDX-License-Identifier: GPL-2.0-or-later
// Non-root callers on an allow_other mount, and privilege bits.
//
// Every operation is run twice, as the same user with the same tree: once
// through the union, once on a plain directory (the kernel's answer). The
// errno and the resulting tree (owners, modes, contents) must be equal.
// setuid/setgid bits after copy-up by chown or write are compared the same
// way. security.capability is never carried into the rw branch.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <functional>
#include <sstream>

#include "rel_support.hpp"

namespace aufs::rel {
namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;
constexpr uid_t kOther = 1000;

class Callers : public RelTest {
 protected:
  void SetUp() override {
    RelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
    std::string r = root();
    if (errno_as(kNobody, kNogroup, [&] { return ::access(r.c_str(), X_OK) < 0 ? errno : 0; }) != 0)
      GTEST_SKIP() << "user " << kNobody << " cannot reach " << r << " (an ancestor of $TMPDIR is not searchable)";
    mkdirs(p("rw"));
    build(p("l1"));
    build(p("plain"));
    lower_before_ = digest_tree(p("l1"));
  }
  void TearDown() override {
    if (!IsSkipped() && !lower_before_.empty()) {
      auto now = digest_tree(p("l1"));
      EXPECT_TRUE(now == lower_before_) << "lower branch modified:\n" << digest_diff(lower_before_, now);
    }
    RelTest::TearDown();
  }

  // The same tree for the lower branch and the plain reference.
  void build(const std::string& dir) {
    mkdirs(dir);
    ASSERT_TRUE(write_file(dir + "/secret", "s3cret\n", 0600));
    ASSERT_TRUE(write_file(dir + "/ro644", "readable\n", 0644));
    mkdirs(dir + "/pub");
    ASSERT_TRUE(write_file(dir + "/pub/rootfile", "root's\n", 0644));
    mkdirs(dir + "/tmp");
    ASSERT_EQ(::chmod((dir + "/tmp").c_str(), 01777), 0);
    ASSERT_TRUE(write_file(dir + "/tmp/other", "other user's\n", 0666));
    ASSERT_EQ(::chown((dir + "/tmp/other").c_str(), kOther, kOther), 0);
    ASSERT_TRUE(write_file(dir + "/tmp/mine", "nobody's\n", 0644));
    ASSERT_EQ(::chown((dir + "/tmp/mine").c_str(), kNobody, kNogroup), 0);
    mkdirs(dir + "/priv");
    ASSERT_EQ(::chmod((dir + "/priv").c_str(), 0700), 0);
    ASSERT_TRUE(write_file(dir + "/priv/inner", "inner\n", 0644));
    // setuid/setgid programs (content: a copy of /bin/true).
    std::string prog = read_file("/bin/true");
    ASSERT_FALSE(prog.empty());
    struct Sx {
      const char* name;
      mode_t mode;
      uid_t uid;
      gid_t gid;
    };
    for (auto x : {Sx{"suid_w", 04755, 0, 0}, Sx{"suid_c", 04755, 0, 0}, Sx{"suid_cs", 04755, 0, 0},
                   Sx{"sgid_c", 02755, 0, 50}, Sx{"sgid_w", 02755, 0, 50}, Sx{"both_c", 06755, 0, 50},
                   Sx{"both_t", 06755, 0, 0}, Sx{"usuid_w", 04755, kNobody, kNogroup},
                   Sx{"usgid_w", 02775, kNobody, kNogroup}, Sx{"usuid_t", 04777, kNobody, kNogroup},
                   Sx{"suid_m", 04755, 0, 0}}) {
      std::string f = dir + "/" + x.name;
      ASSERT_TRUE(write_file(f, prog, 0755));
      ASSERT_EQ(::chown(f.c_str(), x.uid, x.gid), 0);
      ASSERT_EQ(::chmod(f.c_str(), x.mode), 0);
    }
  }

  // errno of fn(base) as user uid, for the union and the plain tree.
  void same_errno(const std::string& what, uid_t uid, gid_t gid,
                  const std::function<int(const std::string&)>& fn, int expect = -1) {
    std::string mb = m(), pb = p("plain");
    int eu = errno_as(uid, gid, [&] { return fn(mb); });
    int ep = errno_as(uid, gid, [&] { return fn(pb); });
    EXPECT_EQ(eu, ep) << what << ": union " << errname(eu) << ", plain directory " << errname(ep);
    if (expect >= 0) {
      EXPECT_EQ(ep, expect) << what << " (reference)";
    }
    ++compared_;
  }
  void same_errno_root(const std::string& what, const std::function<int(const std::string&)>& fn) {
    int eu = fn(m()), ep = fn(p("plain"));
    EXPECT_EQ(eu, ep) << what << ": union " << errname(eu) << ", plain directory " << errname(ep);
    ++compared_;
  }
  // The union and the plain tree look the same (owners, modes, contents).
  void same_trees(const std::string& when) {
    DigestOptions o;
    o.times = false;
    o.xattrs = false;
    o.dir_nlink = false;
    o.dir_size = false;
    auto u = digest_tree(m(), o), pl = digest_tree(p("plain"), o);
    EXPECT_EQ(u, pl) << when << ": union differs from the plain directory:\n" << digest_diff(pl, u);
  }

  std::vector<std::string> lower_before_;
  int compared_ = 0;
};

std::string at(const std::string& base, const char* rel) { return base + "/" + rel; }

TEST_F(Callers, NonRootCannotDoWhatTheKernelForbids) {
  OwnDaemon* d = start_own("rw:l1=ro+wh", "allow_other");
  ASSERT_NE(d, nullptr);
  auto u = kNobody;
  auto g = kNogroup;
  same_errno("read 0600 root file", u, g, [](auto b) { return err_of(::open(at(b, "secret").c_str(), O_RDONLY | O_CLOEXEC)); }, EACCES);
  same_errno("write 0644 root file", u, g, [](auto b) { return err_of(::open(at(b, "ro644").c_str(), O_WRONLY | O_CLOEXEC)); }, EACCES);
  same_errno("truncate 0644 root file", u, g, [](auto b) { return err_of(::truncate(at(b, "ro644").c_str(), 0)); }, EACCES);
  same_errno("chmod root file", u, g, [](auto b) { return err_of(::chmod(at(b, "ro644").c_str(), 0666)); }, EPERM);
  same_errno("chown root file", u, g, [](auto b) { return err_of(::chown(at(b, "ro644").c_str(), kNobody, kNogroup)); }, EPERM);
  same_errno("utimes(explicit) on root file", u, g, [](auto b) {
    struct timeval tv[2] = {{1, 0}, {1, 0}};
    return err_of(::utimes(at(b, "ro644").c_str(), tv));
  }, EPERM);
  same_errno("utimes(now) on root file", u, g, [](auto b) { return err_of(::utimes(at(b, "ro644").c_str(), nullptr)); }, EACCES);
  same_errno("setxattr user.* on root file", u, g, [](auto b) {
    return err_of(::setxattr(at(b, "ro644").c_str(), "user.x", "1", 1, 0));
  });
  same_errno("unlink in root dir", u, g, [](auto b) { return err_of(::unlink(at(b, "pub/rootfile").c_str())); }, EACCES);
  same_errno("create in root dir", u, g, [](auto b) {
    return err_of(::open(at(b, "pub/new").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  }, EACCES);
  same_errno("rename in root dir", u, g, [](auto b) { return err_of(::rename(at(b, "pub/rootfile").c_str(), at(b, "pub/x").c_str())); }, EACCES);
  same_errno("enter 0700 dir", u, g, [](auto b) { return err_of(::open(at(b, "priv/inner").c_str(), O_RDONLY | O_CLOEXEC)); }, EACCES);
  same_errno("rmdir 0700 root dir", u, g, [](auto b) { return err_of(::rmdir(at(b, "priv").c_str())); }, EACCES);
  // Sticky directory: another user's file.
  same_errno("unlink other's file in sticky dir", u, g, [](auto b) { return err_of(::unlink(at(b, "tmp/other").c_str())); }, EPERM);
  same_errno("rename other's file in sticky dir", u, g, [](auto b) {
    return err_of(::rename(at(b, "tmp/other").c_str(), at(b, "tmp/stolen").c_str()));
  }, EPERM);
  same_errno("rename over other's file in sticky dir", u, g, [](auto b) {
    return err_of(::rename(at(b, "tmp/mine").c_str(), at(b, "tmp/other").c_str()));
  }, EPERM);
  same_errno("chmod other's file", u, g, [](auto b) { return err_of(::chmod(at(b, "tmp/other").c_str(), 0600)); }, EPERM);
  same_errno("hard link to 0600 root file (protected_hardlinks)", u, g, [](auto b) {
    return err_of(::link(at(b, "secret").c_str(), at(b, "tmp/hl").c_str()));
  });
  // Allowed: own file, own new files. Written through the union, they land
  // in the rw branch owned by the caller.
  same_errno("write own file in sticky dir", u, g, [](auto b) {
    int fd = ::open(at(b, "tmp/mine").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return errno;
    int e = ::write(fd, "more\n", 5) == 5 ? 0 : errno;
    ::close(fd);
    return e;
  }, 0);
  same_errno("write other's 0666 file", u, g, [](auto b) {
    int fd = ::open(at(b, "tmp/other").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return errno;
    int e = ::write(fd, "scribble\n", 9) == 9 ? 0 : errno;
    ::close(fd);
    return e;
  }, 0);
  same_errno("create in sticky dir", u, g, [](auto b) {
    int fd = ::open(at(b, "tmp/new").c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
  }, 0);
  same_errno("mkdir in sticky dir", u, g, [](auto b) { return err_of(::mkdir(at(b, "tmp/newdir").c_str(), 0750)); }, 0);
  same_errno("symlink in sticky dir", u, g, [](auto b) { return err_of(::symlink("mine", at(b, "tmp/newlink").c_str())); }, 0);
  same_errno("chmod own file", u, g, [](auto b) { return err_of(::chmod(at(b, "tmp/mine").c_str(), 0600)); }, 0);
  same_errno("chown own file to root", u, g, [](auto b) { return err_of(::chown(at(b, "tmp/mine").c_str(), 0, 0)); }, EPERM);
  same_errno("unlink own file in sticky dir", u, g, [](auto b) { return err_of(::unlink(at(b, "tmp/new").c_str())); }, 0);
  same_trees("after the non-root operations");
  for (auto n : {"tmp/newdir", "tmp/newlink", "tmp/mine"}) {
    auto st = lstat_of(p(std::string("rw/") + n));
    ASSERT_TRUE(st.has_value()) << n;
    EXPECT_EQ(st->st_uid, kNobody) << n;
    EXPECT_EQ(st->st_gid, kNogroup) << n;
  }
  // other's file, written by nobody: copied up, still other's.
  auto o = lstat_of(p("rw/tmp/other"));
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->st_uid, kOther);
  EXPECT_FALSE(exists(p("rw/secret")));
  EXPECT_FALSE(exists(p("rw/pub/rootfile")));
  report("callers", "non-root: " + std::to_string(compared_) + " operations compared with a plain directory");
  stop_own(d);
}

TEST_F(Callers, SetIdBitsAfterCopyUpAsOnAPlainDirectory) {
  OwnDaemon* d = start_own("rw:l1=ro+wh", "allow_other,suid");
  ASSERT_NE(d, nullptr);
  auto write_one = [](const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int e = ::pwrite(fd, "\x7f", 1, 0) == 1 ? 0 : errno;  // same first byte (ELF)
    ::close(fd);
    return e;
  };
  // By root (CAP_FSETID, CAP_CHOWN).
  same_errno_root("root writes a setuid file", [&](auto b) { return write_one(at(b, "suid_w")); });
  same_errno_root("root writes a setgid file", [&](auto b) { return write_one(at(b, "sgid_w")); });
  same_errno_root("root chowns a setuid file to another user", [](auto b) { return err_of(::chown(at(b, "suid_c").c_str(), kOther, kOther)); });
  same_errno_root("root chowns a setuid file to its owner", [](auto b) { return err_of(::chown(at(b, "suid_cs").c_str(), 0, 0)); });
  same_errno_root("root chgrps a setgid file", [](auto b) { return err_of(::chown(at(b, "sgid_c").c_str(), -1, 100)); });
  same_errno_root("root chowns a setuid+setgid file", [](auto b) { return err_of(::chown(at(b, "both_c").c_str(), kNobody, -1)); });
  same_errno_root("root truncates a setuid+setgid file", [](auto b) { return err_of(::truncate(at(b, "both_t").c_str(), 100)); });
  same_errno_root("root chmods a setuid file", [](auto b) { return err_of(::chmod(at(b, "suid_m").c_str(), 04711)); });
  // By the owner without privileges: writing clears the bits.
  same_errno("owner writes own setuid file", kNobody, kNogroup, [&](auto b) { return write_one(at(b, "usuid_w")); }, 0);
  same_errno("owner writes own setgid file", kNobody, kNogroup, [&](auto b) { return write_one(at(b, "usgid_w")); }, 0);
  same_errno("owner truncates own setuid file", kNobody, kNogroup, [](auto b) { return err_of(::truncate(at(b, "usuid_t").c_str(), 10)); }, 0);
  for (auto n : {"suid_w", "sgid_w", "suid_c", "suid_cs", "sgid_c", "both_c", "both_t", "suid_m", "usuid_w",
                 "usgid_w", "usuid_t"}) {
    auto un = lstat_of(m(n)), pl = lstat_of(p(std::string("plain/") + n)), rw = lstat_of(p(std::string("rw/") + n));
    ASSERT_TRUE(un && pl) << n;
    char a[8], b[8];
    std::snprintf(a, sizeof a, "%05o", un->st_mode & 07777);
    std::snprintf(b, sizeof b, "%05o", pl->st_mode & 07777);
    EXPECT_STREQ(a, b) << n << ": mode through the union vs on a plain directory";
    EXPECT_EQ(un->st_uid, pl->st_uid) << n;
    EXPECT_EQ(un->st_gid, pl->st_gid) << n;
    ASSERT_TRUE(rw.has_value()) << n << " was not copied up";
    EXPECT_EQ(rw->st_mode & 07777, un->st_mode & 07777) << n << ": rw branch copy";
  }
  same_trees("after the set-id operations");
  stop_own(d);
}

TEST_F(Callers, SecurityCapabilityIsNotCopiedUp) {
  if (!run({"setcap", "-v", "cap_net_raw+ep", "/bin/true"}).ok() && !run({"which", "setcap"}).ok())
    GTEST_SKIP() << "setcap not installed (libcap2-bin)";
  std::string prog = read_file("/bin/true");
  for (auto n : {"cap_chmod", "cap_write", "cap_chown", "cap_touch"}) {
    ASSERT_TRUE(write_file(p(std::string("l1/") + n), prog, 0755));
    auto r = run({"setcap", "cap_net_raw+ep", p(std::string("l1/") + n)});
    ASSERT_TRUE(r.ok()) << r;
    ASSERT_TRUE(get_xattr(p(std::string("l1/") + n), "security.capability").has_value());
  }
  lower_before_ = digest_tree(p("l1"));
  OwnDaemon* d = start_own("rw:l1=ro+wh", "allow_other,suid");
  ASSERT_NE(d, nullptr);
  // Before copy-up the union shows the lower file as it is.
  EXPECT_TRUE(get_xattr(m("cap_chmod"), "security.capability").has_value());
  EXPECT_EQ(::chmod(m("cap_chmod").c_str(), 0750), 0);
  int fd = ::open(m("cap_write").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::pwrite(fd, "\x7f", 1, 0), 1);
  ::close(fd);
  EXPECT_EQ(::chown(m("cap_chown").c_str(), 0, 0), 0);
  EXPECT_EQ(::utimes(m("cap_touch").c_str(), nullptr), 0);
  for (auto n : {"cap_chmod", "cap_write", "cap_chown", "cap_touch"}) {
    ASSERT_TRUE(exists(p(std::string("rw/") + n))) << n << " not copied up";
    errno = 0;
    EXPECT_FALSE(get_xattr(p(std::string("rw/") + n), "security.capability").has_value())
        << n << ": file capability carried into the rw branch";
    EXPECT_FALSE(get_xattr(m(n), "security.capability").has_value()) << n << ": visible through the union";
    auto gc = run({"getcap", m(n)});
    EXPECT_EQ(gc.out.find("cap_net_raw"), std::string::npos) << gc.out;
  }
  stop_own(d);
}

}  // namespace
}  // namespace aufs::rel
