// SPDX-License-Identifier: GPL-2.0-or-later
// OCI layers as branches. Debian's umoci builds an OCI image from a busybox
// root file system; later layers delete files, delete and recreate a
// directory, replace a directory by a file and a file by a directory, add
// hard links and symlinks and change owners and modes; a last,
// Docker-style layer made by hand (`umoci raw add-layer`) carries an opaque
// directory marker. Every layer tarball is extracted verbatim with plain
// `tar -xpf` (keeping its .wh.* entries) into its own directory; all are
// mounted as ro+wh branches under a fresh rw branch, top layer first, and the
// merged view must equal umoci's own flattened root file system: names,
// types, modes, owners, sizes, contents, symlink targets, device numbers and
// hard-link groups.
//
// OCI's rule that a whiteout hides only lower layers, never an entry of its
// own layer, is checked separately (option ociwh; umoci never writes such a
// layer, Docker does).
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "container_support.hpp"
#include "image_tool_fixture.hpp"

#if AUFS_HAVE_NLOHMANN
#include <nlohmann/json.hpp>
#endif

namespace aufs::ct {
namespace {

using namespace aufs::mt;

class OciLayers : public CommandTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (layers hold files of other owners)";
#if !AUFS_HAVE_NLOHMANN
    GTEST_SKIP() << "built without nlohmann-json3-dev";
#endif
    if (!which("umoci")) GTEST_SKIP() << "umoci not installed (Debian package umoci)";
    if (!which("busybox")) GTEST_SKIP() << "busybox not installed (Debian package busybox-static)";
    if (!which("tar") || !which("gzip")) GTEST_SKIP() << "tar or gzip not installed";
  }
};

#if AUFS_HAVE_NLOHMANN
// Layer blob paths of `tag` in the OCI layout `layout`, bottom layer first.
std::vector<std::string> layer_blobs(const std::string& layout, const std::string& tag) {
  auto blob = [&](const std::string& digest) {
    EXPECT_TRUE(digest.starts_with("sha256:")) << digest;
    return layout + "/blobs/sha256/" + digest.substr(7);
  };
  auto index = nlohmann::json::parse(read_file(layout + "/index.json"));
  std::vector<std::string> out;
  for (auto& m : index["manifests"]) {
    if (m["annotations"].value("org.opencontainers.image.ref.name", "") != tag) continue;
    auto manifest = nlohmann::json::parse(read_file(blob(m["digest"].get<std::string>())));
    for (auto& l : manifest["layers"]) out.push_back(blob(l["digest"].get<std::string>()));
  }
  return out;
}
#endif

// Extracts one layer tarball verbatim (plain tar -xpf; GNU tar detects the
// compression). umoci 0.4.7 writes, for a directory replaced by a file,
// whiteouts *below* the new file (e.g. data/d2f/.wh.x after the file
// data/d2f); they name children of a directory this layer no longer has, so
// they cannot exist on disk and tar reports "Not a directory" for them. Those
// and only those errors are accepted; the skipped members are returned.
std::vector<std::string> extract_layer(const std::string& tarball, const std::string& dir,
                                       std::string& problems) {
  mkdirs(dir);
  // (--warning=no-timestamp: umoci stamps entries with the current time,
  // which tar may find a few ms "in the future".)
  auto r = run({"tar", "--warning=no-timestamp", "-xpf", tarball, "-C", dir}, "", 120000);
  std::vector<std::string> skipped;
  if (r.ok()) return skipped;
  std::istringstream in(r.err);
  std::string line;
  static const std::regex wh_below_file(R"(^tar: (.*/\.wh\.[^/]+): Cannot open: Not a directory$)");
  while (std::getline(in, line)) {
    std::smatch mm;
    if (std::regex_match(line, mm, wh_below_file)) {
      skipped.push_back(mm[1]);
      continue;
    }
    if (line == "tar: Exiting with failure status due to previous errors") continue;
    problems += line + "\n";
  }
  if (r.exit_code != 2) problems += "tar exit " + std::to_string(r.exit_code) + "\n";
  return skipped;
}

std::string groups_text(const std::vector<std::vector<std::string>>& groups) {
  std::string s;
  for (auto& g : groups) {
    for (auto& n : g) s += n + " ";
    s += "\n";
  }
  return s;
}

TEST_F(OciLayers, MergedViewEqualsUmociFlattenedRootfs) {
#if AUFS_HAVE_NLOHMANN
  const std::string R = p("bundle/rootfs");
  must({"umoci", "init", "--layout", "img"});
  must({"umoci", "new", "--image", "img:base"});
  must({"umoci", "unpack", "--image", "img:base", "bundle"});
  ASSERT_EQ(make_busybox_root(R), "");
  // Layer 1: busybox plus the objects the later layers change.
  must_sh(R"(set -e; cd bundle/rootfs
mkdir -p data/opq data/d2f data/f2d.x data/keep data/hl data/opq2 data/private
echo gone > data/gone
echo o1 > data/opq/o1; echo o2 > data/opq/o2; mkdir data/opq/sub; echo deep > data/opq/sub/deep
echo x > data/d2f/x; mkdir data/d2f/inner; echo y > data/d2f/inner/y
echo was-a-file > data/f2d
echo keep > data/keep/k
echo orig > data/hl/orig; ln data/hl/orig data/hl/orig.link; ln data/hl/orig data/hl/orig.link2
echo old1 > data/opq2/old1; echo old2 > data/opq2/old2
ln -s keep/k data/sym; ln -s /bin/busybox data/abs-sym; ln -s nowhere data/dangling
echo secret > data/private/s; chmod 0600 data/private/s; chown 1000:1000 data/private/s
chmod 0700 data/private; chown 65534:65534 data/private
cp bin/busybox bin/suid-bb; chmod 4755 bin/suid-bb
mkfifo data/fifo
)");
  must({"umoci", "repack", "--refresh-bundle", "--image", "img:l1", "bundle"});
  // Layer 2: deletions, a directory deleted and recreated, type changes,
  // hard links and symlinks, owner and mode changes, an append.
  must_sh(R"(set -e; cd bundle/rootfs
rm data/gone bin/vi sbin/reboot
rm -r data/opq; mkdir data/opq; echo new > data/opq/n
rm -r data/d2f; echo now-a-file > data/d2f
rm data/f2d; mkdir data/f2d; echo in > data/f2d/in
echo h > data/h1; ln data/h1 data/h2; ln data/h1 data/keep/h3
ln -s ../bin/busybox data/sl; ln -s /etc/passwd etc/passwd.sl
chmod 0640 data/keep/k; chown 1000:100 data/keep/k
echo 'user:x:1000:100::/home/user:/bin/sh' >> etc/passwd
rm data/hl/orig.link2
)");
  must({"umoci", "repack", "--refresh-bundle", "--image", "img:l2", "bundle"});
  // Layer 3: a whole image directory deleted, one name of a hard-link pair
  // deleted, a symlink retargeted, a new home directory.
  must_sh(R"(set -e; cd bundle/rootfs
rm -r usr/sbin
rm data/h2
rm data/sym; ln -s opq/n data/sym
mkdir -p home/user; echo hi > home/user/.profile; chown -R 1000:100 home/user
)");
  must({"umoci", "repack", "--refresh-bundle", "--image", "img:l3", "bundle"});
  // Layer 4, Docker style, made by hand: an opaque directory (its own new
  // entry stays visible, the lower ones are hidden) and a plain whiteout.
  mkdirs(p("l4/data/opq2"));
  ASSERT_TRUE(write_file(p("l4/data/opq2/.wh..wh..opq"), ""));
  ASSERT_TRUE(write_file(p("l4/data/opq2/fresh"), "fresh\n"));
  ASSERT_TRUE(write_file(p("l4/data/.wh.fifo"), ""));
  must({"tar", "--numeric-owner", "--owner=0", "--group=0", "-cf", p("l4.tar"), "-C", p("l4"),
        "data"});
  must({"umoci", "raw", "add-layer", "--image", "img:l3", "--tag", "l4", p("l4.tar")});
  must({"umoci", "unpack", "--image", "img:l4", "flat"});

  auto blobs = layer_blobs(p("img"), "l4");
  ASSERT_EQ(blobs.size(), 4u);
  std::string branches = "rw=rw";
  std::vector<std::string> skipped_all;
  for (size_t i = blobs.size(); i-- > 0;) {
    std::string dir = p("layers/" + std::to_string(i));
    std::string problems;
    auto skipped = extract_layer(blobs[i], dir, problems);
    EXPECT_EQ(problems, "") << "extracting layer " << i << " (" << blobs[i] << ")";
    for (auto& s : skipped) skipped_all.push_back(std::to_string(i) + ":" + s);
    branches += ":layers/" + std::to_string(i) + "=ro+wh";
  }
  // The umoci quirk described at extract_layer, and nothing else.
  EXPECT_EQ(skipped_all, (std::vector<std::string>{"1:data/d2f/.wh.inner", "1:data/d2f/.wh.x"}))
      << "umoci's layers changed: review extract_layer";
  // The whiteouts and the opaque marker are on the branches as files.
  EXPECT_TRUE(exists(p("layers/1/data/.wh.gone")));
  EXPECT_TRUE(exists(p("layers/1/bin/.wh.vi")));
  EXPECT_TRUE(exists(p("layers/2/usr/.wh.sbin")));
  EXPECT_TRUE(exists(p("layers/3/data/opq2/.wh..wh..opq")));
  mkdirs(p("rw"));
  std::string layers_before = snapshot(p("layers"));

  ASSERT_TRUE(mount(branches));
  auto expected = scan_tree(p("flat/rootfs"));
  auto actual = scan_tree(m());
  ASSERT_GT(expected.size(), 250u);
  EXPECT_EQ(diff_trees(expected, actual), "");
  EXPECT_EQ(groups_text(link_groups(expected)),
            "data/h1 data/keep/h3 \ndata/hl/orig data/hl/orig.link \n");
  EXPECT_EQ(groups_text(link_groups(actual)), groups_text(link_groups(expected)));
  // Spot checks of the cases, so that a failure names the rule.
  EXPECT_FALSE(exists(m("data/gone")));
  EXPECT_FALSE(exists(m("bin/vi")));
  EXPECT_EQ(list_dir(m("data/opq")), std::vector<std::string>{"n"});
  EXPECT_EQ(read_file(m("data/d2f")), "now-a-file\n");
  EXPECT_EQ(list_dir(m("data/f2d")), std::vector<std::string>{"in"});
  EXPECT_EQ(list_dir(m("data/opq2")), std::vector<std::string>{"fresh"});
  EXPECT_FALSE(exists(m("usr/sbin")));
  EXPECT_FALSE(exists(m("data/fifo")));
  EXPECT_EQ(readlink_of(m("data/sym")), "opq/n");
  auto a = lstat_of(m("data/hl/orig")), b = lstat_of(m("data/hl/orig.link"));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->st_ino, b->st_ino);

  // The union is usable as a container root: write, and the changes land
  // in the rw branch only.
  ASSERT_TRUE(append_file(m("etc/passwd"), "more:x:1001:100::/:/bin/sh\n"));
  ASSERT_EQ(::unlink(m("data/h1").c_str()), 0);
  auto mv = run({"mv", m("data/opq"), m("data/opq.moved")});  // EXDEV fallback allowed
  ASSERT_TRUE(mv.ok()) << mv;
  EXPECT_EQ(read_file(m("data/keep/h3")), "h\n");
  unmount();
  EXPECT_EQ(snapshot(p("layers")), layers_before) << "a layer branch was modified";
  EXPECT_TRUE(exists(p("rw/etc/passwd")));
  EXPECT_TRUE(exists(p("rw/data/.wh.h1")));
  EXPECT_TRUE(exists(p("rw/data/.wh.opq")));
  EXPECT_EQ(list_tree(p("rw/data/opq.moved")), (std::vector<std::string>{"n"}));
#endif
}

// A directory (layer 1) replaced by a file (layer 2) and then by a directory
// again (layer 3): in OCI the file removed the first directory, so only the
// new directory's entries remain. Kernel AUFS (and aufs-fuse, whose man page
// says "a lower entry of another type is skipped") merges the new directory
// with the one below the file instead, so layer 1's entries reappear.
TEST_F(OciLayers, DirectoryOverFileOverDirectoryDoesNotMergeThrough) {
#if AUFS_HAVE_NLOHMANN
  must({"umoci", "init", "--layout", "img"});
  must({"umoci", "new", "--image", "img:base"});
  must({"umoci", "unpack", "--image", "img:base", "bundle"});
  must_sh("set -e; cd bundle/rootfs; mkdir -p dfd/sub; echo z > dfd/z; echo s > dfd/sub/s");
  must({"umoci", "repack", "--refresh-bundle", "--image", "img:l1", "bundle"});
  must_sh("set -e; cd bundle/rootfs; rm -r dfd; echo now-a-file > dfd");
  must({"umoci", "repack", "--refresh-bundle", "--image", "img:l2", "bundle"});
  must_sh("set -e; cd bundle/rootfs; rm dfd; mkdir dfd; echo w > dfd/w");
  must({"umoci", "repack", "--refresh-bundle", "--image", "img:l3", "bundle"});
  must({"umoci", "unpack", "--image", "img:l3", "flat"});
  auto blobs = layer_blobs(p("img"), "l3");
  ASSERT_EQ(blobs.size(), 3u);
  std::string branches = "rw=rw";
  for (size_t i = blobs.size(); i-- > 0;) {
    std::string problems;
    extract_layer(blobs[i], p("layers/" + std::to_string(i)), problems);
    EXPECT_EQ(problems, "");
    branches += ":layers/" + std::to_string(i) + "=ro+wh";
  }
  mkdirs(p("rw"));
  ASSERT_EQ(list_dir(p("flat/rootfs/dfd")), std::vector<std::string>{"w"});
  // OCI layers: the OCI rule (ociwh) makes a file end a lower directory.
  ASSERT_TRUE(mount(branches + ",ociwh"));
  EXPECT_EQ(diff_trees(scan_tree(p("flat/rootfs")), scan_tree(m())), "");
  EXPECT_EQ(list_dir(m("dfd")), std::vector<std::string>{"w"})
      << "layer 1's dfd/z and dfd/sub show through layer 2's file dfd";
#endif
}

// A Docker-style layer that deletes a lower file and adds a new one under the
// same name (.wh.f and f in one layer): OCI keeps the new f. With ociwh the
// union agrees with umoci; without it (AUFS semantics) f is gone.
TEST_F(OciLayers, SameLayerWhiteoutAndEntryWithOciwh) {
#if AUFS_HAVE_NLOHMANN
  must({"umoci", "init", "--layout", "img"});
  must({"umoci", "new", "--image", "img:base"});
  must({"umoci", "unpack", "--image", "img:base", "bundle"});
  must_sh("set -e; cd bundle/rootfs; mkdir -p data/d; echo old > data/f; echo old > data/d/x");
  must({"umoci", "repack", "--refresh-bundle", "--image", "img:l1", "bundle"});
  mkdirs(p("l2/data/d"));
  ASSERT_TRUE(write_file(p("l2/data/.wh.f"), ""));
  ASSERT_TRUE(write_file(p("l2/data/f"), "new\n"));
  ASSERT_TRUE(write_file(p("l2/data/.wh.d"), ""));
  ASSERT_TRUE(write_file(p("l2/data/d/y"), "y\n"));
  // Whiteouts first, as Docker writes them.
  must({"tar", "--numeric-owner", "--owner=0", "--group=0", "--no-recursion", "-cf", p("l2.tar"),
        "-C", p("l2"), "data", "data/.wh.f", "data/.wh.d", "data/f", "data/d", "data/d/y"});
  must({"umoci", "raw", "add-layer", "--image", "img:l1", "--tag", "l2", p("l2.tar")});
  must({"umoci", "unpack", "--image", "img:l2", "flat"});
  ASSERT_EQ(read_file(p("flat/rootfs/data/f")), "new\n");
  ASSERT_EQ(list_dir(p("flat/rootfs/data/d")), std::vector<std::string>{"y"});
  auto blobs = layer_blobs(p("img"), "l2");
  ASSERT_EQ(blobs.size(), 2u);
  std::string branches = "rw=rw";
  for (size_t i = blobs.size(); i-- > 0;) {
    std::string problems;
    extract_layer(blobs[i], p("layers/" + std::to_string(i)), problems);
    EXPECT_EQ(problems, "");
    branches += ":layers/" + std::to_string(i) + "=ro+wh";
  }
  mkdirs(p("rw"));
  ASSERT_TRUE(mount(branches, "ociwh"));
  EXPECT_EQ(diff_trees(scan_tree(p("flat/rootfs")), scan_tree(m())), "");
  EXPECT_EQ(read_file(m("data/f")), "new\n");
  EXPECT_EQ(list_dir(m("data/d")), std::vector<std::string>{"y"});
  unmount();
  // AUFS semantics (the default): the whiteout hides its own layer's f too.
  ASSERT_TRUE(mount(branches));
  EXPECT_FALSE(exists(m("data/f")));
  EXPECT_FALSE(exists(m("data/d")));
#endif
}

}  // namespace
}  // namespace aufs::ct
