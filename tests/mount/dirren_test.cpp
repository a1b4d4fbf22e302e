// SPDX-License-Identifier: GPL-2.0-or-later
// -o dirren: renaming a directory with lower parts through a redirect
// record, seen through the real daemon; and a Docker-aufs layout fixture.
#include <stdio.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "mount_fixture.hpp"
#include "tools_support.hpp"

namespace aufs::mt {
namespace {

class Dirren : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdirs(p("rw"));
    mkdirs(p("l1/d/sub"));
    mkdirs(p("l2/d"));
    write_file(p("l1/d/x"), "x\n");
    write_file(p("l1/d/sub/y"), "y\n");
    write_file(p("l2/d/z"), "z\n");
    before1_ = snapshot(p("l1"));
    before2_ = snapshot(p("l2"));
  }
  void TearDown() override {
    if (!IsSkipped() && !root().empty()) {
      EXPECT_EQ(snapshot(p("l1")), before1_) << "lower branch modified";
      EXPECT_EQ(snapshot(p("l2")), before2_) << "lower branch modified";
    }
    MountTest::TearDown();
  }
  static constexpr const char* kBranches = "rw:l1=ro+wh:l2=ro+wh";
  std::string before1_, before2_;
};

TEST_F(Dirren, WithoutDirrenRenameIsExdev) {
  ASSERT_TRUE(mount(kBranches));
  EXPECT_ERRNO(EXDEV, ::rename(m("d").c_str(), m("e").c_str()));
  EXPECT_TRUE(exists(m("d/x")));
}

TEST_F(Dirren, MvShowsLowerContentsUnderNewNameAndAfterRemount) {
  ASSERT_TRUE(mount(kBranches, "dirren"));
  auto d_ino = lstat_of(m("d"))->st_ino;
  auto x_ino = lstat_of(m("d/x"))->st_ino;
  auto z_ino = lstat_of(m("d/z"))->st_ino;
  ASSERT_SYS_OK(::rename(m("d").c_str(), m("e").c_str()));  // no EXDEV, no copy
  const std::vector<std::string> tree = {"e", "e/sub", "e/sub/y", "e/x", "e/z"};
  auto check = [&] {
    EXPECT_EQ(list_tree(m()), tree);
    EXPECT_EQ(lstat_errno(m("d")), ENOENT);
    auto t = sh("tree --charset=ascii --noreport -a e", m());
    EXPECT_TRUE(t.ok()) << t;
    EXPECT_EQ(t.out, "e\n|-- sub\n|   `-- y\n|-- x\n`-- z\n");
    auto c = sh("cat e/x e/sub/y e/z", m());
    EXPECT_EQ(c.out, "x\ny\nz\n");
    auto li = sh("ls -id e; ls -i e", m());
    EXPECT_NE(li.out.find(std::to_string(d_ino) + " e\n"), std::string::npos) << li.out;
    EXPECT_NE(li.out.find(std::to_string(x_ino) + " x"), std::string::npos) << li.out;
    EXPECT_NE(li.out.find(std::to_string(z_ino) + " z"), std::string::npos) << li.out;
    EXPECT_EQ(lstat_of(m("e"))->st_ino, d_ino);
  };
  check();
  EXPECT_FALSE(exists(p("rw/e/x")));  // nothing was copied
  EXPECT_TRUE(exists(p("rw/e/.wh..wh..dr.aufs-fuse")));
  EXPECT_TRUE(exists(p("rw/.wh.d")));
  unmount();
  ASSERT_TRUE(mount(kBranches, "dirren"));
  check();
}

TEST_F(Dirren, RmRedirectedLowerFileAndRenameTwice) {
  ASSERT_TRUE(mount(kBranches, "dirren"));
  auto mv = sh("mv d e && rm e/x && mv e f && echo new > f/sub/n && cat f/sub/y", m());
  ASSERT_TRUE(mv.ok()) << mv;
  EXPECT_EQ(mv.out, "y\n");
  EXPECT_EQ(list_tree(m()), (std::vector<std::string>{"f", "f/sub", "f/sub/n", "f/sub/y", "f/z"}));
  EXPECT_TRUE(exists(p("rw/f/.wh.x")));
  EXPECT_EQ(read_file(p("rw/f/sub/n")), "new\n");
  // rmdir must see the redirected lower contents.
  EXPECT_ERRNO(ENOTEMPTY, ::rmdir(m("f").c_str()));
  unmount();
  ASSERT_TRUE(mount(kBranches, "dirren"));
  EXPECT_EQ(list_tree(m()), (std::vector<std::string>{"f", "f/sub", "f/sub/n", "f/sub/y", "f/z"}));
  auto rm = sh("rm -r f && ls -A", m());
  ASSERT_TRUE(rm.ok()) << rm;
  EXPECT_EQ(rm.out, "");
  unmount();
  ASSERT_TRUE(mount(kBranches, "dirren"));
  EXPECT_EQ(list_dir(m()), std::vector<std::string>{});
}

TEST_F(Dirren, CheckerAcceptsRecords) {
  ASSERT_TRUE(mount(kBranches, "dirren"));
  ASSERT_TRUE(sh("mv d e && mv e/sub e/sub2", m()).ok());
  unmount();
  EXPECT_TRUE(exists(p("rw/e/sub2/.wh..wh..dr.aufs-fuse")));
  std::string bin = tool_binary("AUFS_FUSE_CHECK_BIN", "aufs-fuse-check");
  auto r = run({bin, "--fix", p("rw")});
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_NE(r.out.find(" 0 issues"), std::string::npos) << r.out;
  EXPECT_TRUE(exists(p("rw/e/.wh..wh..dr.aufs-fuse")));
  ASSERT_TRUE(mount(kBranches, "dirren"));
  EXPECT_EQ(list_tree(m()), (std::vector<std::string>{"e", "e/sub2", "e/sub2/y", "e/x", "e/z"}));
}

// udba=notify with dirren: the recorded lower directory is watched at its
// own path, so an edit there shows under the new name at once (the kernel
// caches names for an hour in this mode).
class DirrenNotify : public MountTest {};

TEST_F(DirrenNotify, EditOfRedirectedLowerDirIsSeen) {
  mkdirs(p("rw"));
  mkdirs(p("l1/d"));
  write_file(p("l1/d/x"), "x\n");
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh", "udba=notify,dirren"));
  ASSERT_SYS_OK(::rename(m("d").c_str(), m("e").c_str()));
  unmount();  // a fresh lookup of e watches l1/d through the record
  ASSERT_TRUE(mount_cached("rw:l1=ro+wh", "udba=notify,dirren"));
  EXPECT_EQ(read_file(m("e/x")), "x\n");
  EXPECT_EQ(lstat_errno(m("e/new")), ENOENT);  // cached as absent
  ASSERT_TRUE(write_file(p("l1/d/new"), "new\n"));
  ASSERT_TRUE(write_file(p("l1/d/x"), "x2\n"));
  // Under the 1 s timeouts of an unwatched directory: only a watch works.
  EXPECT_TRUE(eventually([&] {
    return lstat_errno(m("e/new")) == 0 && read_file(m("e/x")) == "x2\n";
  }, 800)) << errname(lstat_errno(m("e/new"))) << " " << read_file(m("e/x"));
}

// Docker's aufs storage driver: /var/lib/docker/aufs/diff/<id> per layer and
// layers/<id> listing the parents nearest first; a container mounts
// diff/<id> as rw and its parents as ro+wh (aufs-fuse(5)).
class DockerAufs : public MountTest {};

TEST_F(DockerAufs, HandBuiltLayoutMountsAsDockerDid) {
  std::string top = "c0ffee", init = "c0ffee-init", mid = "5e11", base = "ba5e";
  auto diff = [&](const std::string& id, const std::string& rel = "") {
    return p("docker/aufs/diff/" + id + (rel.empty() ? "" : "/" + rel));
  };
  for (auto id : {top, init, mid, base}) {
    mkdirs(diff(id));
    // Committed layers carry the metadata AUFS made on its rw branch.
    write_file(diff(id, ".wh..wh.aufs"), "", 0444);
    mkdirs(diff(id, ".wh..wh.plnk"), 0700);
    mkdirs(diff(id, ".wh..wh.orph"), 0700);
  }
  mkdirs(diff(base, "etc/conf.d"));
  mkdirs(diff(base, "usr/bin"));
  write_file(diff(base, "etc/hostname"), "base\n");
  write_file(diff(base, "etc/conf.d/a"), "a\n");
  write_file(diff(base, "usr/bin/tool"), "tool\n");
  write_file(diff(base, "gone"), "gone\n");
  // mid: deletes /gone, replaces /etc (opaque), adds a file.
  mkdirs(diff(mid, "etc"));
  write_file(diff(mid, ".wh.gone"), "", 0444);
  write_file(diff(mid, "etc/.wh..wh..opq"), "", 0444);
  write_file(diff(mid, "etc/os-release"), "mid\n");
  mkdirs(diff(mid, "usr/bin"));
  write_file(diff(mid, "usr/bin/.wh.tool"), "", 0444);
  write_file(diff(mid, "usr/bin/tool2"), "tool2\n");
  // init: what Docker puts there (hostname, resolv.conf, ...).
  mkdirs(diff(init, "etc"));
  write_file(diff(init, "etc/hostname"), "");
  write_file(diff(init, "etc/resolv.conf"), "");
  mkdirs(p("docker/aufs/layers"));
  write_file(p("docker/aufs/layers/" + top), init + "\n" + mid + "\n" + base + "\n");
  write_file(p("docker/aufs/layers/" + mid), base + "\n");
  write_file(p("docker/aufs/layers/" + base), "");
  std::string low_before = snapshot(diff(mid)) + snapshot(diff(base)) + snapshot(diff(init));

  // The branch string from the layers file, as the driver built it.
  std::string branches = diff(top) + "=rw";
  std::istringstream parents(read_file(p("docker/aufs/layers/" + top)));
  for (std::string id; std::getline(parents, id);)
    if (!id.empty()) branches += ":" + diff(id) + "=ro+wh";
  ASSERT_TRUE(mount(branches, "dio,xino=" + p("aufs.xino") + ",dirperm1"));
  EXPECT_EQ(list_tree(m()), (std::vector<std::string>{"etc", "etc/hostname", "etc/os-release",
                                                      "etc/resolv.conf", "usr", "usr/bin",
                                                      "usr/bin/tool2"}));
  EXPECT_EQ(read_file(m("etc/os-release")), "mid\n");
  EXPECT_EQ(read_file(m("etc/hostname")), "");
  EXPECT_EQ(lstat_errno(m("gone")), ENOENT);
  EXPECT_EQ(lstat_errno(m("etc/conf.d")), ENOENT);
  auto w = sh("echo c > etc/hostname && rm usr/bin/tool2 && mkdir -p var/log", m());
  EXPECT_TRUE(w.ok()) << w;
  unmount();
  EXPECT_EQ(read_file(diff(top, "etc/hostname")), "c\n");
  EXPECT_TRUE(exists(diff(top, "usr/bin/.wh.tool2")));
  EXPECT_TRUE(exists(diff(top, "var/log")));
  EXPECT_EQ(snapshot(diff(mid)) + snapshot(diff(base)) + snapshot(diff(init)), low_before);
}

}  // namespace
}  // namespace aufs::mt
