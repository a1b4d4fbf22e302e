// SPDX-License-Identifier: GPL-2.0-or-later
// A container root file system: an image layer holding Debian's busybox
// (busybox-static, `busybox --install -s`) and a container layer on top.
// Inside `unshare --mount --pid --fork` the daemon mounts the union (dev,
// suid, allow_other, as a container runtime would), /proc is mounted in it,
// and a busybox shell chrooted into the union lists, creates, appends to,
// deletes and renames files, including in /bin and /etc. Afterwards the
// container layer holds exactly the expected files and whiteouts and the
// image layer is unchanged. The namespace (and with it the mount and the
// daemon) dies with the unshare'd shell.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container_support.hpp"

namespace aufs::ct {
namespace {

using namespace aufs::mt;

class BusyboxRoot : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (chroot, unshare, mknod)";
    if (!which("busybox")) GTEST_SKIP() << "busybox not installed (Debian package busybox-static)";
    for (const char* t : {"unshare", "chroot", "mountpoint"})
      if (!which(t)) GTEST_SKIP() << t << " not installed (util-linux / coreutils)";
    auto r = sh("file -L " + q(*which("busybox")) + " 2>/dev/null; ldd " + q(*which("busybox")) +
                " 2>&1");
    if (r.out.find("not a dynamic executable") == std::string::npos &&
        r.out.find("statically linked") == std::string::npos)
      GTEST_SKIP() << "busybox is not the static build (install busybox-static): " << r.out;
    ASSERT_EQ(make_busybox_root(p("image")), "");
    mkdirs(p("container"));
    image_before_ = snapshot(p("image"));
  }

  void TearDown() override {
    // Defensive: the namespace took the mount and the daemon with it. A
    // daemon naming our mount point that still runs is a failure; stop it
    // (only pids whose command line names this test's private mount point).
    if (!root().empty()) {
      for (pid_t pid : daemon_pids_for(m())) {
        ADD_FAILURE() << "daemon " << pid << " for " << m() << " outlived its namespace";
        ::kill(pid, SIGKILL);
      }
      if (!IsSkipped()) {
        EXPECT_EQ(snapshot(p("image")), image_before_) << "image layer modified";
      }
    }
    MountTest::TearDown();
  }

  // Runs `container_script` with busybox sh chrooted into a fresh union of
  // container over image, inside new mount and PID namespaces. Returns the
  // script's stdout; `rc` gets the exit status, stderr goes to `err`.
  std::string run_container(const std::string& container_script, int& rc, std::string& err) {
    std::string script_file = p("script-" + std::to_string(++runs_) + ".sh");
    std::string out_file = p("out.txt"), err_file = p("err.txt"), log = p("ns-daemon.log");
    write_file(script_file, container_script);
    std::string opts = "br=" + p("container") + "=rw:" + p("image") +
                       "=ro+wh,dev,suid,allow_other,threads=2";
    std::ostringstream s;
    s << "set -u\n"
      << sh_start_daemon(daemon_binary(), opts, m(), log)
      << "mount -t proc proc " << q(m("proc")) << " || { kill $DPID; exit 91; }\n"
      << "grep ' " << m() << " ' /proc/self/mounts > " << q(p("mounts.txt")) << "\n"
      << "env -i PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root chroot " << q(m())
      << " /bin/sh -s < " << q(script_file) << " > " << q(out_file) << " 2> " << q(err_file)
      << "\nSRC=$?\n"
      << "umount " << q(m("proc")) << "\n"
      << sh_stop_daemon(m()) << "echo \"script=$SRC daemon=$DRC\"\n";
    auto r = in_namespace(s.str());
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.out, "script=0 daemon=0\n") << r << "\nscript stderr:\n"
                                            << read_file(err_file) << "\ndaemon log:\n"
                                            << read_file(log);
    EXPECT_EQ(log_errors(log), std::vector<std::string>{}) << read_file(log);
    // Nothing of the namespace is visible outside.
    EXPECT_FALSE(in_proc_mounts(m()));
    EXPECT_FALSE(in_proc_mounts(m("proc")));
    EXPECT_TRUE(daemon_pids_for(m()).empty());
    rc = r.out == "script=0 daemon=0\n" ? 0 : 1;
    err = read_file(err_file);
    return read_file(out_file);
  }

  std::string image_before_;
  int runs_ = 0;
};

const char* kWorkload = R"(set -e
echo "== ls /"
ls /
echo "== processes"
ls -d /proc/[0-9]* | wc -l
cat /proc/1/comm
echo "== create"
mkdir /root
echo hello > /root/hello.txt
ln /root/hello.txt /root/hello.hard
mkdir -p /home/user
echo notes > /home/user/notes
echo "== append"
echo 'user:x:1000:1000:user:/home/user:/bin/sh' >> /etc/passwd
echo 'more motd' >> /etc/motd
echo "== delete"
rm /etc/motd
rm /bin/vi
rm -r /usr/sbin
echo temp > /tmp/gone
rm /tmp/gone
echo "== rename"
mv /bin/ed /bin/ed.moved
mv /etc/group /etc/group.orig
printf 'root:x:0:\nusers:x:100:\n' > /etc/group
mkdir /tmp/a
echo 1 > /tmp/a/f
mv /tmp/a /tmp/b
echo 2 >> /tmp/b/f
echo "== metadata"
chmod 600 /etc/shadow
ln -s /etc/passwd /etc/passwd.link
echo "== binaries"
cp /bin/busybox /bin/busybox-copy
/bin/busybox-copy echo busybox-copy runs
echo "== devices"
echo discard > /dev/null
head -c 16 /dev/zero | wc -c
echo "== check"
cat /etc/passwd.link
test ! -e /bin/vi
test -L /bin/ed.moved
test ! -e /bin/ed
test ! -e /etc/motd
ls /usr
cat /tmp/b/f
ls -l /etc/shadow | cut -c1-10
ls -a /bin | grep -c '^\.wh\.' || true
echo done
)";

TEST_F(BusyboxRoot, ShellWorkloadLeavesExactlyItsChangesInTheContainerLayer) {
  int rc = -1;
  std::string err;
  std::string out = run_container(kWorkload, rc, err);
  ASSERT_EQ(rc, 0) << "stdout:\n" << out << "\nstderr:\n" << err;

  // The union was mounted with dev and suid honoured.
  std::string mounts = read_file(p("mounts.txt"));
  EXPECT_NE(mounts.find(" fuse.aufs "), std::string::npos) << mounts;
  EXPECT_EQ(mounts.find("nosuid"), std::string::npos) << mounts;
  EXPECT_EQ(mounts.find("nodev"), std::string::npos) << mounts;

  // What the container saw. `ls /` lists the image root; the PID namespace
  // shows only the namespace's own processes (init shell, daemon, chrooted
  // shell, the ls pipeline), and /proc/1 is the unshare'd shell.
  const std::string expected_out =
      "== ls /\nbin\ndev\netc\nlinuxrc\nproc\nsbin\ntmp\nusr\n"
      "== processes\n";
  ASSERT_TRUE(out.starts_with(expected_out)) << out;
  std::string rest = out.substr(expected_out.size());
  int procs = std::atoi(rest.c_str());
  EXPECT_GE(procs, 3) << out;
  EXPECT_LE(procs, 8) << out;
  rest = rest.substr(rest.find('\n') + 1);
  EXPECT_EQ(rest,
            "sh\n"
            "== create\n== append\n== delete\n== rename\n== metadata\n== binaries\n"
            "busybox-copy runs\n"
            "== devices\n16\n"
            "== check\n"
            "root:x:0:0:root:/root:/bin/sh\n"
            "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
            "user:x:1000:1000:user:/home/user:/bin/sh\n"
            "bin\n"
            "1\n2\n"
            "-rw-------\n"
            "0\n"
            "done\n")
      << out;
  EXPECT_EQ(err, "");

  // The container layer: exactly the changes, the whiteouts and the AUFS
  // metadata of a writable branch.
  EXPECT_EQ(list_tree(p("container")),
            (std::vector<std::string>{
                ".wh..wh.aufs", ".wh..wh.orph", ".wh..wh.plnk",
                "bin", "bin/.wh.ed", "bin/.wh.vi", "bin/busybox-copy", "bin/ed.moved",
                "etc", "etc/.wh.motd", "etc/group", "etc/group.orig", "etc/passwd",
                "etc/passwd.link", "etc/shadow",
                "home", "home/user", "home/user/notes",
                "root", "root/hello.hard", "root/hello.txt",
                "tmp", "tmp/b", "tmp/b/f",
                "usr", "usr/.wh.sbin"}));
  std::string c = p("container"), img = p("image");
  EXPECT_EQ(read_file(c + "/etc/passwd"), read_file(img + "/etc/passwd") +
                                              "user:x:1000:1000:user:/home/user:/bin/sh\n");
  EXPECT_EQ(read_file(c + "/etc/group"), "root:x:0:\nusers:x:100:\n");
  EXPECT_EQ(read_file(c + "/etc/group.orig"), read_file(img + "/etc/group"));
  EXPECT_EQ(read_file(c + "/bin/busybox-copy"), read_file(img + "/bin/busybox"));
  EXPECT_EQ(readlink_of(c + "/bin/ed.moved"), "/bin/busybox");
  EXPECT_EQ(readlink_of(c + "/etc/passwd.link"), "/etc/passwd");
  EXPECT_EQ(read_file(c + "/tmp/b/f"), "1\n2\n");
  EXPECT_EQ(read_file(c + "/home/user/notes"), "notes\n");
  for (const char* wh : {"bin/.wh.ed", "bin/.wh.vi", "etc/.wh.motd", "usr/.wh.sbin"}) {
    auto st = lstat_of(c + "/" + wh);
    ASSERT_TRUE(st.has_value()) << wh;
    EXPECT_TRUE(S_ISREG(st->st_mode)) << wh;
    EXPECT_EQ(st->st_size, 0) << wh;
  }
  auto h1 = lstat_of(c + "/root/hello.txt"), h2 = lstat_of(c + "/root/hello.hard");
  ASSERT_TRUE(h1 && h2);
  EXPECT_EQ(h1->st_ino, h2->st_ino);
  EXPECT_EQ(h1->st_nlink, 2u);
  auto shadow = lstat_of(c + "/etc/shadow");
  ASSERT_TRUE(shadow.has_value());
  EXPECT_EQ(shadow->st_mode & 07777, 0600u);
  auto tmp = lstat_of(c + "/tmp");
  ASSERT_TRUE(tmp.has_value());
  EXPECT_EQ(tmp->st_mode & 07777, 01777u) << "copied-up /tmp keeps its sticky mode";
  auto bin = lstat_of(c + "/bin/busybox-copy");
  ASSERT_TRUE(bin.has_value());
  EXPECT_EQ(bin->st_mode & 07777, 0755u);
  EXPECT_EQ(list_dir(c + "/.wh..wh.orph"), std::vector<std::string>{});
  EXPECT_EQ(list_dir(c + "/.wh..wh.plnk"), std::vector<std::string>{});

  // A second container on the same layers (a restart) sees the changes.
  auto names_after = list_tree(c);
  out = run_container(R"(set -e
grep -c '^user:' /etc/passwd
test ! -e /bin/vi && echo no-vi
test ! -e /usr/sbin && echo no-sbin
test ! -e /etc/motd && echo no-motd
/bin/busybox-copy echo restarted
cat /root/hello.hard
ls /bin/ed*
)",
                      rc, err);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_EQ(out, "1\nno-vi\nno-sbin\nno-motd\nrestarted\nhello\n/bin/ed.moved\n") << err;
  EXPECT_EQ(list_tree(c), names_after) << "a read-only run added or removed names";
}

// Two patterns every container workload hits, reduced to their core on a
// plain mount with the daemon's own cache times (as a container runtime
// mounts it), so that a failure of the busybox test above has a name.
class ContainerPatterns : public MountTest {};

// execve() of a file on the union: the kernel opens it with __FMODE_EXEC in
// the open flags; the union must open the branch file all the same.
TEST_F(ContainerPatterns, ExecutesABinaryFromTheUnion) {
  mkdirs(p("rw"));
  mkdirs(p("lower/bin"));
  auto tr = which("true");
  ASSERT_TRUE(tr.has_value());
  ASSERT_TRUE(run({"cp", *tr, p("lower/bin/true")}).ok());
  ASSERT_TRUE(write_file(p("lower/bin/script"), "#!/bin/sh\necho script ran\n", 0755));
  ASSERT_TRUE(mount_cached("rw=rw:lower=ro+wh"));
  auto r = run({m("bin/true")});
  EXPECT_TRUE(r.ok()) << r;
  r = run({m("bin/script")});
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "script ran\n");
}

// mv of a directory, then at once an append to a file inside it under the
// new name (the kernel still caches the file's dentry, moved along).
TEST_F(ContainerPatterns, FilesOfARenamedDirectoryStayReachable) {
  mkdirs(p("rw"));
  mkdirs(p("lower"));
  ASSERT_TRUE(mount_cached("rw=rw:lower=ro+wh"));
  auto r = sh("mkdir a && echo 1 > a/f && mv a b && echo 2 >> b/f && cat b/f", m());
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out, "1\n2\n");
  EXPECT_EQ(read_file(p("rw/b/f")), "1\n2\n");
}

}  // namespace
}  // namespace aufs::ct
