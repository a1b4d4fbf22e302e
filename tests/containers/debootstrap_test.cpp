// SPDX-License-Identifier: GPL-2.0-or-later
// Dynamic binaries in a container: a small Debian root file system made with
// `debootstrap --variant=minbase bookworm` is the read-only image layer, a
// fresh container layer lies on top. Inside `unshare --mount --pid --fork`
// the union is chrooted into and `dpkg -i` installs a local .deb built here
// (a binary and a script in /usr/bin, a conffile in /etc, a postinst that
// writes a state file); `dpkg -V` over every package must then be clean,
// `dpkg -s` must show the package installed, and its binaries, the image's
// own dynamic binaries and apt-get must run. Afterwards the image layer is
// unchanged and the container layer holds the new files and the copied-up
// dpkg database.
//
// The root file system is built once and kept in
// /var/cache/aufs-fuse-tests/debootstrap-bookworm-minbase (or
// $AUFS_DEBOOTSTRAP_CACHE). When it is missing the test builds it (a
// download from the Debian mirror of /etc/apt/sources.list*, about 1-2
// minutes) unless AUFS_DEBOOTSTRAP=0; an unreachable mirror skips the test.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <sstream>

#include "container_support.hpp"

namespace aufs::ct {
namespace {

using namespace aufs::mt;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string cache_dir() {
  const char* e = std::getenv("AUFS_DEBOOTSTRAP_CACHE");
  return e && *e ? e : "/var/cache/aufs-fuse-tests/debootstrap-bookworm-minbase";
}

// The bookworm mirror this machine's apt uses: the first URI of a deb822
// stanza (sources.list.d/*.sources) whose Suites has "bookworm", else a
// one-line "deb URI bookworm ..." entry, else deb.debian.org.
std::string debian_mirror() {
  static const std::regex suites(R"((^|\n)Suites:[^\n]*\bbookworm(\s|$))");
  static const std::regex uris(R"((^|\n)URIs:\s*(\S+))");
  std::istringstream files(read_file("/etc/apt/sources.list.d/debian.sources") + "\n\n");
  std::string stanza, line;
  while (std::getline(files, line)) {
    if (!line.empty()) {
      stanza += line + "\n";
      continue;
    }
    std::smatch m;
    if (std::regex_search(stanza, suites) && std::regex_search(stanza, m, uris)) return m[2];
    stanza.clear();
  }
  static const std::regex one_line(R"((^|\n)deb\s+(\[[^\]]*\]\s+)?(\S+)\s+bookworm\s)");
  std::string list = read_file("/etc/apt/sources.list");
  std::smatch m;
  if (std::regex_search(list, m, one_line)) return m[3];
  return "http://deb.debian.org/debian";
}

// Builds the cache: debootstrap into a temporary directory beside it, then
// rename, so a half-built tree is never used. A lock keeps two test runs
// from building at once. Returns "" on success, "skip: ..." when the
// archive is out of reach, else what failed.
std::string build_cache(const std::string& dir) {
  std::string parent = dir.substr(0, dir.rfind('/'));
  mkdirs(parent);
  int lock = ::open((parent + "/.debootstrap.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return "cannot open the cache lock in " + parent + ": " + errname(errno);
  ::flock(lock, LOCK_EX);
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock};
  if (exists(dir)) return "";  // built by another run meanwhile
  std::string mirror = debian_mirror();
  // Is the archive there at all? (No network but the Debian archive here;
  // elsewhere maybe not even that.)
  auto probe = run({"wget", "-nv", "-T", "20", "-t", "2", "-O", "/dev/null",
                    mirror + "/dists/bookworm/InRelease"},
                   "", 60000);
  if (!probe.ok()) {
    std::string why = probe.err.empty() ? "wget exit status " + std::to_string(probe.exit_code)
                                        : probe.err.substr(0, probe.err.find('\n'));
    return "skip: the Debian archive " + mirror + " is out of reach (" + why + ")";
  }
  std::string tmp = parent + "/.tmp-debootstrap-" + std::to_string(::getpid());
  remove_tree(tmp);
  // debootstrap mounts /proc and /sys in the target while it configures;
  // in a private mount namespace a failed run cannot leave them behind.
  auto r = run({"unshare", "--mount", "--propagation", "private", "debootstrap",
                "--variant=minbase", "bookworm", tmp, mirror},
               "", 30 * 60 * 1000);
  if (r.ok()) {
    // The downloaded .debs are not part of the image.
    auto clean = run({"chroot", tmp, "apt-get", "clean"});
    if (!clean.ok()) r = clean;
  }
  if (!r.ok()) {
    std::string log = read_file(tmp + "/debootstrap/debootstrap.log");
    remove_tree(tmp);
    std::string all = r.out + r.err + log;
    for (const char* unreachable :
         {"Failed getting release file", "Couldn't download", "couldn't download",
          "Temporary failure in name resolution", "Unable to connect", "Connection refused",
          "Connection timed out", "No route to host"})
      if (all.find(unreachable) != std::string::npos)
        return "skip: debootstrap cannot reach " + mirror + ": " + unreachable;
    std::string tail = all.size() > 4000 ? all.substr(all.size() - 4000) : all;
    return "debootstrap failed:\n" + tail;
  }
  if (::rename(tmp.c_str(), dir.c_str()) < 0) {
    int e = errno;
    remove_tree(tmp);
    return "rename " + tmp + " -> " + dir + ": " + errname(e);
  }
  return "";
}

// A package of our own: /usr/bin/aufs-probe (a script that prints its
// conffile), /usr/bin/aufs-probe-true (the image's dynamic /usr/bin/true,
// renamed), the conffile /etc/aufs-probe.conf, and a postinst that writes
// /var/lib/aufs-probe/state. Built with dpkg-deb as a packager would.
std::string build_deb(const std::string& work, const std::string& image, const std::string& deb) {
  std::string pkg = work + "/pkg";
  for (const char* d : {"DEBIAN", "usr/bin", "etc"}) mkdirs(pkg + "/" + d);
  auto arch = run({"dpkg", "--print-architecture"});
  if (!arch.ok()) return "dpkg --print-architecture: " + arch.err;
  std::string a = arch.out.substr(0, arch.out.find('\n'));
  bool ok =
      write_file(pkg + "/DEBIAN/control",
                 "Package: aufs-probe\nVersion: 1.0\nArchitecture: " + a +
                     "\nMaintainer: aufs-fuse tests <root@localhost>\n"
                     "Section: misc\nPriority: optional\n"
                     "Description: probe package of the aufs-fuse container tests\n"
                     " Installed with dpkg -i into a Debian root mounted with aufs-fuse.\n") &&
      write_file(pkg + "/DEBIAN/conffiles", "/etc/aufs-probe.conf\n") &&
      write_file(pkg + "/DEBIAN/postinst",
                 "#!/bin/sh\nset -e\n"
                 "if [ \"$1\" = configure ]; then\n"
                 "  mkdir -p /var/lib/aufs-probe\n"
                 "  echo \"postinst $1\" > /var/lib/aufs-probe/state\n"
                 "  /usr/bin/aufs-probe >> /var/lib/aufs-probe/state\n"
                 "fi\n",
                 0755) &&
      write_file(pkg + "/etc/aufs-probe.conf", "greeting = hello from the conffile\n") &&
      write_file(pkg + "/usr/bin/aufs-probe",
                 "#!/bin/sh\necho \"aufs-probe: $(cat /etc/aufs-probe.conf)\"\n", 0755);
  if (!ok) return "cannot write the package tree";
  auto r = run({"cp", image + "/usr/bin/true", pkg + "/usr/bin/aufs-probe-true"});
  if (!r.ok()) return "cp true: " + r.err;
  // md5sums as dh_md5sums writes them (conffiles are tracked in the status
  // file instead); dpkg -V checks the files against them.
  r = sh("cd " + q(pkg) + " && md5sum usr/bin/aufs-probe usr/bin/aufs-probe-true > DEBIAN/md5sums");
  if (!r.ok()) return "md5sum: " + r.err;
  r = sh("chmod -R u=rwX,go=rX " + q(pkg) + " && chmod 0755 " + q(pkg + "/DEBIAN/postinst") + " " +
         q(pkg + "/usr/bin/aufs-probe") + " " + q(pkg + "/usr/bin/aufs-probe-true"));
  if (!r.ok()) return "chmod: " + r.err;
  r = run({"dpkg-deb", "--root-owner-group", "--build", pkg, deb});
  if (!r.ok()) return "dpkg-deb --build: " + r.out + r.err;
  return "";
}

// The stanzas of a dpkg status file, by package name.
std::map<std::string, std::string> status_stanzas(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line, stanza, name;
  auto flush = [&] {
    if (!name.empty()) out[name] = stanza;
    stanza.clear();
    name.clear();
  };
  while (std::getline(in, line)) {
    if (line.empty()) {
      flush();
      continue;
    }
    if (line.starts_with("Package: ")) name = line.substr(9);
    stanza += line + "\n";
  }
  flush();
  return out;
}

class DebootstrapRoot : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (debootstrap, chroot, unshare)";
    for (const char* t : {"unshare", "chroot", "mountpoint", "dpkg-deb", "md5sum"})
      if (!which(t)) GTEST_SKIP() << t << " not installed";
    image_ = cache_dir();
    if (!exists(image_ + "/usr/bin/dpkg")) {
      if (const char* e = std::getenv("AUFS_DEBOOTSTRAP"); e && std::string(e) == "0")
        GTEST_SKIP() << "debootstrap cache missing (" << image_
                     << ") and AUFS_DEBOOTSTRAP=0 forbids building it";
      if (!which("debootstrap") || !which("wget"))
        GTEST_SKIP() << "debootstrap cache missing and debootstrap or wget not installed "
                        "(Debian packages debootstrap, wget)";
      auto t0 = Clock::now();
      std::string err = build_cache(image_);
      if (err.starts_with("skip: ")) GTEST_SKIP() << err.substr(6);
      ASSERT_EQ(err, "") << "building the debootstrap cache " << image_;
      double s = seconds_since(t0);
      RecordProperty("cache_build_seconds", std::to_string(s));
      std::printf("[ timing   ] debootstrap cache %s built in %.1f s\n", image_.c_str(), s);
    }
    auto t0 = Clock::now();
    image_before_ = snapshot(image_);
    std::printf("[ timing   ] image snapshot (%zu bytes of manifest) in %.1f s\n",
                image_before_.size(), seconds_since(t0));
    std::printf("[ sizes    ] image layer: %s", run({"du", "-sh", image_}).out.c_str());
    ASSERT_FALSE(image_before_.empty());
    mkdirs(p("container"));
    deb_ = p("aufs-probe_1.0.deb");
    ASSERT_EQ(build_deb(p("build"), image_, deb_), "");
  }

  void TearDown() override {
    if (!root().empty() && !image_.empty()) {
      for (pid_t pid : daemon_pids_for(m())) {
        ADD_FAILURE() << "daemon " << pid << " for " << m() << " outlived its namespace";
        ::kill(pid, SIGKILL);
      }
      if (!image_before_.empty() && snapshot(image_) != image_before_) {
        ADD_FAILURE() << "image layer " << image_
                      << " modified; removed so that the next run builds it again";
        std::string moved = image_ + ".modified-" + std::to_string(::getpid());
        if (::rename(image_.c_str(), moved.c_str()) == 0) remove_tree(moved);
      }
    }
    MountTest::TearDown();
  }

  // Runs `script` with /bin/sh chrooted into a fresh union of the container
  // layer over the image, inside new mount and PID namespaces, /proc
  // mounted; `before_chroot` runs first in the namespace (with the union
  // mounted on $MNT). Returns the script's stdout; `ok` tells whether the
  // script and the daemon exited with 0.
  std::string run_container(const std::string& script, const std::string& before_chroot,
                            bool& ok, std::string& err) {
    std::string n = std::to_string(++runs_);
    std::string script_file = p("script-" + n + ".sh");
    std::string out_file = p("out-" + n + ".txt"), err_file = p("err-" + n + ".txt");
    std::string log = p("ns-daemon.log");
    write_file(script_file, script);
    std::string opts = "br=" + p("container") + "=rw:" + image_ +
                       "=ro+wh,dev,suid,allow_other,threads=2";
    std::ostringstream s;
    s << "set -u\nMNT=" << q(m()) << "\n"
      << sh_start_daemon(daemon_binary(), opts, m(), log)
      << "mount -t proc proc " << q(m("proc")) << " || { kill $DPID; exit 91; }\n"
      // (not in an `if` condition: set -e would be ignored there)
      << "(\nset -e\n" << before_chroot << "\n) 2> " << q(err_file) << "\n"
      << "if [ $? -eq 0 ]; then\n"
      << "  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "
         "LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "
      << q(m()) << " /bin/sh -s < " << q(script_file) << " > " << q(out_file) << " 2> "
      << q(err_file) << "\n  SRC=$?\n"
      << "else\n  SRC=92\nfi\n"
      << "umount " << q(m("proc")) << "\n"
      << sh_stop_daemon(m()) << "echo \"script=$SRC daemon=$DRC\"\n";
    auto r = in_namespace(s.str(), 300000);
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_FALSE(r.timed_out);
    ok = r.out == "script=0 daemon=0\n";
    EXPECT_TRUE(ok) << r << "\nscript stdout:\n"
                    << read_file(out_file) << "\nscript stderr:\n"
                    << read_file(err_file) << "\ndaemon log:\n"
                    << read_file(log);
    EXPECT_EQ(log_errors(log), std::vector<std::string>{}) << read_file(log);
    EXPECT_FALSE(in_proc_mounts(m()));
    EXPECT_TRUE(daemon_pids_for(m()).empty());
    err = read_file(err_file);
    return read_file(out_file);
  }

  std::string image_, image_before_, deb_;
  int runs_ = 0;
};

const char* kInstall = R"(set -e
echo "== image binaries"
sed -n 's/^VERSION_CODENAME=//p' /etc/os-release
ls /usr/bin/dpkg /usr/bin/apt-get
apt-get --version | head -n 1 | cut -d' ' -f1
grep -q '/libc\.so\.6$' /proc/self/maps && echo "libc.so.6 mapped"
echo "== dpkg -i"
dpkg -i /tmp/aufs-probe_1.0.deb
rm /tmp/aufs-probe_1.0.deb
echo "== dpkg -s"
dpkg -s aufs-probe | grep -E '^(Status|Version|Conffiles):'
dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' aufs-probe
echo "== dpkg -V"
dpkg -V
dpkg -V aufs-probe
echo "== run"
aufs-probe
aufs-probe-true && echo "aufs-probe-true: exit 0"
aufs-probe-true --version | head -n 1
cat /var/lib/aufs-probe/state
echo done
)";

TEST_F(DebootstrapRoot, DpkgInstallsALocalPackageAndVerifiesClean) {
  auto t0 = Clock::now();
  bool ok = false;
  std::string err;
  std::string out = run_container(kInstall, "cp " + q(deb_) + " \"$MNT/tmp/aufs-probe_1.0.deb\"",
                                  ok, err);
  double install_s = seconds_since(t0);
  ASSERT_TRUE(ok);

  // What the container saw. dpkg -i's own output sits between its markers.
  std::string before = out.substr(0, out.find("== dpkg -i\n"));
  EXPECT_EQ(before,
            "== image binaries\nbookworm\n/usr/bin/apt-get\n/usr/bin/dpkg\napt\nlibc.so.6 mapped\n")
      << out;
  auto at = out.find("== dpkg -i\n"), end = out.find("== dpkg -s\n");
  ASSERT_NE(at, std::string::npos) << out;
  ASSERT_NE(end, std::string::npos) << out;
  std::string dpkg_i = out.substr(at, end - at);
  EXPECT_NE(dpkg_i.find("Unpacking aufs-probe (1.0) ..."), std::string::npos) << dpkg_i;
  EXPECT_NE(dpkg_i.find("Setting up aufs-probe (1.0) ..."), std::string::npos) << dpkg_i;
  std::string conf_md5 =
      run({"sh", "-c", "md5sum < " + q(p("build/pkg/etc/aufs-probe.conf")) + " | cut -d' ' -f1"})
          .out;
  conf_md5 = conf_md5.substr(0, conf_md5.find('\n'));
  ASSERT_EQ(conf_md5.size(), 32u);
  EXPECT_EQ(out.substr(end),
            "== dpkg -s\n"
            "Status: install ok installed\n"
            "Version: 1.0\n"
            "Conffiles:\n"
            "aufs-probe 1.0 ii \n"
            "== dpkg -V\n"
            "== run\n"
            "aufs-probe: greeting = hello from the conffile\n"
            "aufs-probe-true: exit 0\n"
            "true (GNU coreutils) 9.1\n"
            "postinst configure\n"
            "aufs-probe: greeting = hello from the conffile\n"
            "done\n")
      << out << "\nstderr:\n"
      << err;
  EXPECT_EQ(err, "");

  // The container layer: the package's files, the postinst's state and the
  // dpkg database changes, copied up.
  std::string c = p("container");
  EXPECT_EQ(read_file(c + "/etc/aufs-probe.conf"), "greeting = hello from the conffile\n");
  EXPECT_EQ(read_file(c + "/usr/bin/aufs-probe"), read_file(p("build/pkg/usr/bin/aufs-probe")));
  EXPECT_EQ(read_file(c + "/usr/bin/aufs-probe-true"), read_file(image_ + "/usr/bin/true"));
  EXPECT_EQ(read_file(c + "/var/lib/aufs-probe/state"),
            "postinst configure\naufs-probe: greeting = hello from the conffile\n");
  for (const char* f : {"list", "md5sums", "conffiles", "postinst"})
    EXPECT_TRUE(exists(c + "/var/lib/dpkg/info/aufs-probe." + std::string(f))) << f;
  EXPECT_EQ(read_file(c + "/var/lib/dpkg/info/aufs-probe.md5sums"),
            read_file(p("build/pkg/DEBIAN/md5sums")));
  EXPECT_FALSE(exists(c + "/tmp/aufs-probe_1.0.deb"));
  EXPECT_FALSE(exists(image_ + "/etc/aufs-probe.conf"));
  // The copied-up status file is the image's plus our package's stanza.
  auto upper = status_stanzas(read_file(c + "/var/lib/dpkg/status"));
  auto lower = status_stanzas(read_file(image_ + "/var/lib/dpkg/status"));
  ASSERT_GT(lower.size(), 50u);
  ASSERT_TRUE(upper.count("aufs-probe"));
  std::string stanza = upper["aufs-probe"];
  EXPECT_NE(stanza.find("Status: install ok installed\n"), std::string::npos) << stanza;
  EXPECT_NE(stanza.find("Conffiles:\n /etc/aufs-probe.conf " + conf_md5 + "\n"),
            std::string::npos)
      << stanza;
  upper.erase("aufs-probe");
  EXPECT_EQ(upper, lower) << "other packages' status records changed";

  // dpkg keeps the previous status, and logs the install.
  EXPECT_EQ(read_file(c + "/var/lib/dpkg/status-old"), read_file(image_ + "/var/lib/dpkg/status"));
  std::string log = read_file(c + "/var/log/dpkg.log");
  std::string old_log = read_file(image_ + "/var/log/dpkg.log");
  EXPECT_TRUE(log.starts_with(old_log)) << "dpkg.log was not appended to";
  EXPECT_NE(log.find(" install aufs-probe:", old_log.size()), std::string::npos);
  EXPECT_NE(log.find(" status installed aufs-probe:", old_log.size()), std::string::npos);

  // Exactly the install's footprint: the package, the postinst's state,
  // and dpkg's database, lock files and log, copied up; no whiteouts.
  EXPECT_EQ(list_tree(c),
            (std::vector<std::string>{
                ".wh..wh.aufs", ".wh..wh.orph", ".wh..wh.plnk",
                "etc", "etc/aufs-probe.conf",
                "tmp",
                "usr", "usr/bin", "usr/bin/aufs-probe", "usr/bin/aufs-probe-true",
                "var", "var/lib", "var/lib/aufs-probe", "var/lib/aufs-probe/state",
                "var/lib/dpkg", "var/lib/dpkg/info", "var/lib/dpkg/info/aufs-probe.conffiles",
                "var/lib/dpkg/info/aufs-probe.list", "var/lib/dpkg/info/aufs-probe.md5sums",
                "var/lib/dpkg/info/aufs-probe.postinst", "var/lib/dpkg/lock",
                "var/lib/dpkg/lock-frontend", "var/lib/dpkg/status", "var/lib/dpkg/status-old",
                "var/lib/dpkg/triggers", "var/lib/dpkg/triggers/Lock", "var/lib/dpkg/updates",
                "var/log", "var/log/dpkg.log"}))
      << run({"find", c, "-printf", "%M %u %s %P\\n"}).out;
  auto tmp = lstat_of(c + "/tmp");
  ASSERT_TRUE(tmp.has_value());
  EXPECT_EQ(tmp->st_mode & 07777, 01777u) << "copied-up /tmp keeps its sticky mode";
  auto exe = lstat_of(c + "/usr/bin/aufs-probe-true");
  ASSERT_TRUE(exe.has_value());
  EXPECT_EQ(exe->st_mode & 07777, 0755u);
  RecordProperty("install_seconds", std::to_string(install_s));
  std::printf("[ timing   ] container run (mount, dpkg -i, dpkg -V, unmount) %.1f s\n", install_s);
  std::printf("[ sizes    ] container layer: %s",
              run({"du", "-sh", "--apparent-size", c}).out.c_str());

  // A restart of the container on the same layers: still installed, clean.
  auto names_before = list_tree(c);
  out = run_container(R"(set -e
dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' aufs-probe
dpkg -V
aufs-probe
)",
                      "", ok, err);
  ASSERT_TRUE(ok) << err;
  EXPECT_EQ(out, "aufs-probe ii \naufs-probe: greeting = hello from the conffile\n") << err;
  EXPECT_EQ(list_tree(c), names_before) << "a read-only run added or removed names";
}

}  // namespace
}  // namespace aufs::ct
