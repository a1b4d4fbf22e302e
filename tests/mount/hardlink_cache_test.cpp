// SPDX-License-Identifier: GPL-2.0-or-later
// Hard links under the kernel's caches: a change made through one name of a
// hard-linked file shows at once through every other name (data, size,
// mode, owner, times, xattrs, nlink), with the attribute cache's timeouts of
// real use (mount_cached) and keep_cache, on the rw branch and for lower
// hard links (served through pseudo-links after a copy-up).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <functional>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

// A bound unix socket's inode at path (the socket itself is closed).
bool make_socket(const std::string& path) {
  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (s < 0) return false;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) return ::close(s), false;
  path.copy(a.sun_path, path.size());
  bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(s);
  return ok;
}

// Makes an object of `kind` at path: "file", "fifo", "socket", "chr".
bool make_object(const std::string& kind, const std::string& path) {
  if (kind == "file") return write_file(path, "data\n");
  if (kind == "fifo") return ::mknod(path.c_str(), S_IFIFO | 0644, 0) == 0;
  if (kind == "socket") return make_socket(path);
  return ::mknod(path.c_str(), S_IFCHR | 0644, makedev(1, 3)) == 0;  // /dev/null's numbers
}

struct Attrs {
  ino_t ino;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  off_t size;
  nlink_t nlink;
  struct timespec mtim, ctim;
};

std::optional<Attrs> attrs(const std::string& path) {
  auto st = lstat_of(path);
  if (!st) return std::nullopt;
  return Attrs{st->st_ino, st->st_mode, st->st_uid, st->st_gid, st->st_size, st->st_nlink,
               st->st_mtim, st->st_ctim};
}

std::string show(const std::optional<Attrs>& a) {
  if (!a) return "(missing)";
  char buf[256];
  std::snprintf(buf, sizeof buf, "ino %lu mode %o uid %u gid %u size %ld nlink %lu mtime %ld.%09ld ctime %ld.%09ld",
                static_cast<unsigned long>(a->ino), a->mode, a->uid, a->gid, static_cast<long>(a->size),
                static_cast<unsigned long>(a->nlink), a->mtim.tv_sec, a->mtim.tv_nsec,
                a->ctim.tv_sec, a->ctim.tv_nsec);
  return buf;
}

bool same(const std::optional<Attrs>& a, const std::optional<Attrs>& b) {
  return a && b && show(a) == show(b);
}

class HardLinkCaches : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw"));
    mkdirs(p("l1/d"));
  }

  // Warms the kernel's caches through every name (attributes, and the page
  // cache of a regular file).
  void warm(const std::vector<std::string>& names, bool reg) {
    for (auto& n : names) {
      (void)attrs(m(n));
      if (reg) (void)read_file(m(n));
    }
  }

  // Every name shows the same attributes (and data) as `names[0]`.
  void expect_coherent(const std::vector<std::string>& names, bool reg, const std::string& what) {
    auto first = attrs(m(names[0]));
    ASSERT_TRUE(first) << what << ": " << names[0];
    for (size_t i = 1; i < names.size(); ++i) {
      auto other = attrs(m(names[i]));
      EXPECT_TRUE(same(first, other)) << what << ":\n  " << names[0] << ": " << show(first)
                                      << "\n  " << names[i] << ": " << show(other);
      if (reg) {
        EXPECT_EQ(read_file(m(names[i])), read_file(m(names[0]))) << what << ": " << names[i];
      }
    }
  }

  // Each change through one name, checked through the others at once.
  void exercise(const std::vector<std::string>& names, const std::string& kind) {
    bool reg = kind == "file";
    size_t k = 0;
    auto through = [&]() { return m(names[k++ % names.size()]); };
    auto step = [&](const std::string& what, const std::function<void(const std::string&)>& change) {
      warm(names, reg);
      change(through());
      expect_coherent(names, reg, kind + " " + what);
    };
    if (reg) {
      step("write", [&](const std::string& n) {
        ASSERT_TRUE(append_file(n, "more\n")) << n;
      });
      EXPECT_EQ(read_file(m(names.back())), "data\nmore\n");
      step("truncate", [&](const std::string& n) { ASSERT_SYS_OK(::truncate(n.c_str(), 3)); });
      EXPECT_EQ(attrs(m(names.back()))->size, 3);
      step("setxattr", [&](const std::string& n) {
        ASSERT_SYS_OK(::lsetxattr(n.c_str(), "user.k", "v", 1, 0));
      });
      for (auto& n : names) EXPECT_EQ(get_xattr(m(n), "user.k"), std::optional<std::string>("v")) << n;
    }
    step("chmod", [&](const std::string& n) { ASSERT_SYS_OK(::chmod(n.c_str(), 0600)); });
    EXPECT_EQ(attrs(m(names.back()))->mode & 07777, 0600u);
    if (::geteuid() == 0) {
      step("chown", [&](const std::string& n) { ASSERT_SYS_OK(::lchown(n.c_str(), 4321, 4321)); });
      EXPECT_EQ(attrs(m(names.back()))->uid, 4321u);
    }
    step("utimes", [&](const std::string& n) {
      struct timespec ts[2] = {{1'000'000'000, 0}, {1'000'000'000, 0}};
      ASSERT_SYS_OK(::utimensat(AT_FDCWD, n.c_str(), ts, AT_SYMLINK_NOFOLLOW));
    });
    EXPECT_EQ(attrs(m(names.back()))->mtim.tv_sec, 1'000'000'000);
    // Unlink of one name: the others agree, and count one link less.
    warm(names, reg);
    ASSERT_SYS_OK(::unlink(m(names[0]).c_str()));
    std::vector<std::string> rest(names.begin() + 1, names.end());
    expect_coherent(rest, reg, kind + " unlink");
    // Every name counts the names left, on the rw branch and for a copied-up
    // lower hard link served through its pseudo-link.
    for (auto& n : rest) EXPECT_EQ(attrs(m(n))->nlink, rest.size()) << kind << ": " << n;
  }

  // Names x, d/x2, x3 of one object on `branch` (made before the mount).
  std::vector<std::string> make_links(const std::string& branch, const std::string& kind) {
    std::vector<std::string> names = {"x", "d/x2", "x3"};
    mkdirs(p(branch + "/d"));
    EXPECT_TRUE(make_object(kind, p(branch + "/x"))) << kind << ": " << errname(errno);
    for (size_t i = 1; i < names.size(); ++i)
      EXPECT_EQ(::link(p(branch + "/x").c_str(), p(branch + "/" + names[i]).c_str()), 0);
    return names;
  }

  void run_kind(const std::string& branch, const std::string& kind, bool cached) {
    if (kind == "chr" && ::geteuid() != 0) GTEST_SKIP() << "mknod of a device needs root";
    auto names = make_links(branch, kind);
    ASSERT_FALSE(HasFailure());
    // Uncached, every access looks its name up again (the node is re-resolved
    // through each name in turn).
    ASSERT_TRUE(cached ? mount_cached("rw:l1=ro+wh") : mount("rw:l1=ro+wh"));
    exercise(names, kind);
  }
};

class HardLinkKinds
    : public HardLinkCaches,
      public ::testing::WithParamInterface<std::tuple<const char*, const char*, bool>> {};

TEST_P(HardLinkKinds, ChangeThroughOneNameShowsThroughAll) {
  auto [branch, kind, cached] = GetParam();
  run_kind(branch, kind, cached);
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, HardLinkKinds,
    ::testing::Combine(::testing::Values("rw", "l1"),
                       ::testing::Values("file", "fifo", "socket", "chr"), ::testing::Bool()),
    [](const auto& info) {
      return std::string(std::get<0>(info.param)) + "_" + std::get<1>(info.param) +
             (std::get<2>(info.param) ? "_cached" : "_uncached");
    });

// Links made through the union (one node from the start), written through
// a name opened before the link existed.
TEST_F(HardLinkCaches, LinkMadeThroughUnionSharesOpenData) {
  write_file(p("l1/f"), "data\n");
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh"));
  ASSERT_EQ(read_file(m("f")), "data\n");
  ASSERT_SYS_OK(::link(m("f").c_str(), m("d/g").c_str()));
  std::vector<std::string> names = {"f", "d/g"};
  expect_coherent(names, true, "after link");
  exercise(names, "file");
}

}  // namespace
}  // namespace aufs::mt
