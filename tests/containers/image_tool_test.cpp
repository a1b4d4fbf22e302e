// SPDX-License-Identifier: GPL-2.0-or-later
// aufs-fuse-image: one command mounts an OCI image layout (built here with
// Debian's umoci). Layers are extracted once into the content-addressed
// store and shared: a second mount of the same image, or of another image
// with a common layer, extracts nothing. Corrupted blobs (digest mismatch)
// and layers that try to write outside their directory (absolute names,
// "..", hard links out of the layer, writing through a symlink) are refused
// and nothing is mounted or left behind.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>

#include "image_tool_fixture.hpp"

#if AUFS_HAVE_NLOHMANN
#include <nlohmann/json.hpp>
#endif

namespace aufs::ct {
namespace {

using namespace aufs::mt;

TEST_F(ImageTool, MountsAnImageAndExtractsEachLayerOnce) {
  build_image();
  if (HasFatalFailure()) return;
  must({"umoci", "unpack", "--image", "img:v2", "flat"});
  for (const char* d : {"rw1", "rw2", "rw3", "mnt2", "mnt3"}) mkdirs(p(d));
  std::string store = p("store");

  auto r = tool({"--store", store, "--rw", p("rw1"), "-o", "threads=2", "img:v2", m()});
  SysMountGuard g1(m());
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.err.find("layers: 2 extracted, 0 reused"), std::string::npos) << r.err;
  ASSERT_TRUE(in_proc_mounts(m()));
  auto entry = mount_entry(m());
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->fstype, "fuse.aufs");
  EXPECT_EQ(diff_trees(scan_tree(p("flat/rootfs")), scan_tree(m())), "");
  EXPECT_EQ(link_groups(scan_tree(m())).size(), 1u);
  EXPECT_EQ(store_entries(store).size(), 2u);
  // The layers (images/ records which images used the store).
  auto layers_of = [&] { return snapshot(store + "/sha256") + snapshot(store + "/diff_ids"); };
  std::string store_before = layers_of();

  // Same image again: nothing extracted, the store untouched.
  r = tool({"--store", store, "--rw", p("rw2"), "-o", "threads=2", "img:v2", p("mnt2")});
  SysMountGuard g2(p("mnt2"));
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.err.find("layers: 0 extracted, 2 reused"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(": extracted ("), std::string::npos) << r.err;
  EXPECT_EQ(layers_of(), store_before);
  // Another image sharing the base layer: nothing extracted either.
  r = tool({"--store", store, "-o", "threads=2", "img:l1", p("mnt3")});
  SysMountGuard g3(p("mnt3"));
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.err.find("layers: 0 extracted, 1 reused"), std::string::npos) << r.err;
  EXPECT_EQ(layers_of(), store_before);

  // The containers are separate; the image-only mount is read-only.
  ASSERT_TRUE(write_file(p("mnt2/srv/app/conf"), "changed\n"));
  EXPECT_EQ(read_file(m("srv/app/conf")), "app\n");
  EXPECT_EQ(read_file(p("rw2/srv/app/conf")), "changed\n");
  EXPECT_FALSE(exists(p("rw1/srv")));
  EXPECT_FALSE(exists(p("mnt3/srv")));
  EXPECT_TRUE(exists(p("mnt3/bin/vi")));
  EXPECT_EQ(::open(p("mnt3/etc/new").c_str(), O_CREAT | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, EROFS);

  umount_tool_mount(m());
  umount_tool_mount(p("mnt2"));
  umount_tool_mount(p("mnt3"));
  EXPECT_EQ(layers_of(), store_before) << "the layer store was modified through a mount";
}

// The mount point and -o are checked before any layer is read, so a typo
// there extracts nothing.
TEST_F(ImageTool, ChecksMountPointAndOptionsBeforeExtracting) {
  build_image();
  if (HasFatalFailure()) return;
  std::string store = p("store");
  auto empty_store = [&] { return !exists(store + "/sha256") || store_entries(store).empty(); };
  auto r = tool({"--store", store, "--rw", p("rw"), "img:v2", p("no-such-dir")});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("mount point '" + p("no-such-dir") + "': "), std::string::npos) << r;
  EXPECT_TRUE(empty_store()) << "layers were extracted for a mount that cannot happen";
  r = tool({"--store", store, "-o", "allow_other,bogus_opt", "img:v2", m()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("unknown option 'bogus_opt'"), std::string::npos) << r;
  EXPECT_TRUE(empty_store());
  EXPECT_FALSE(in_proc_mounts(m()));
}

// A multi-platform index: the host's entry by default, --platform for
// another, and a clear refusal for a platform the index lacks.
TEST_F(ImageTool, PicksThePlatformFromAMultiPlatformIndex) {
  build_image();
  if (HasFatalFailure()) return;
  auto host = run({image_tool(), "--version"});
  ASSERT_TRUE(host.ok()) << host;
  // A nested index: l1 as linux/arm64/v8, v2 as the host's platform (uname).
  must_sh(R"(set -e
arch=$(uname -m); case $arch in x86_64) arch=amd64;; aarch64) arch=arm64;; esac
desc() { jq -c --arg t "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | del(.annotations)' img/index.json; }
l1=$(desc l1); v2=$(desc v2)
jq -nc --argjson a "$l1" --argjson b "$v2" --arg arch "$arch" '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [($a + {platform: {os: "linux", architecture: "arm64", variant: "v8"}}), ($b + {platform: {os: "linux", architecture: $arch}})]}' > nested.json
hex=$(sha256sum nested.json | cut -d' ' -f1); size=$(stat -c %s nested.json)
cp nested.json img/blobs/sha256/$hex
jq --arg d "sha256:$hex" --argjson s "$size" '.manifests += [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s, annotations: {"org.opencontainers.image.ref.name": "multi"}}]' img/index.json > index.new
mv index.new img/index.json
)");
  std::string store = p("store");
  auto layers = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> a = {"--store", store, "--extract-only", "-q"};
    a.insert(a.end(), extra.begin(), extra.end());
    a.push_back("img:multi");
    auto r = tool(a);
    EXPECT_TRUE(r.ok()) << r;
    return std::count(r.out.begin(), r.out.end(), ':') + 1;
  };
  EXPECT_EQ(layers({}), 2) << "the host's entry is v2 (two layers)";
  EXPECT_EQ(layers({"--platform", "linux/arm64"}), 1) << "any variant of arm64: l1";
  EXPECT_EQ(layers({"--platform", "linux/arm64/v8"}), 1);
  auto r = tool({"--store", store, "--extract-only", "--platform", "linux/s390x", "img:multi"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("no manifest for platform linux/s390x"), std::string::npos) << r;
  EXPECT_NE(r.err.find("linux/arm64/v8"), std::string::npos) << "the line lists what it has\n" << r;
}

TEST_F(ImageTool, RefusesABlobWhoseDigestDoesNotMatch) {
  build_image();
  if (HasFatalFailure()) return;
  // Corrupt the top layer of v2 (the blob not shared with l1).
  must({"cp", "-a", "img", "bad"});
  std::string store = p("store");
  // Find v2's layers through the tool itself, on the good image.
  auto r = tool({"--store", store, "--extract-only", "img:v2"});
  ASSERT_TRUE(r.ok()) << r;
  std::string top = r.out.substr(0, r.out.find("=ro+wh"));
  std::string hex = top.substr(top.rfind('/') + 1);
  ASSERT_EQ(hex.size(), 64u) << r.out;
  remove_tree(store);
  std::string blob = p("bad/blobs/sha256/" + hex);
  {
    int fd = ::open(blob.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c;
    ASSERT_EQ(::pread(fd, &c, 1, 100), 1);
    c = static_cast<char>(c ^ 0x40);
    ASSERT_EQ(::pwrite(fd, &c, 1, 100), 1);
    ::close(fd);
  }
  r = tool({"--store", store, "--rw", p("rw"), "bad:v2", m()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("digest mismatch for layer sha256:" + hex), std::string::npos) << r.err;
  EXPECT_FALSE(in_proc_mounts(m()));
  // The good base layer may be in the store; the bad one and no temporary.
  for (auto& name : store_entries(store)) {
    EXPECT_NE(name, hex);
    EXPECT_FALSE(name.starts_with(".tmp")) << name;
  }
}

#if AUFS_HAVE_NLOHMANN
using json = nlohmann::json;

// sha256 of a file or of a command's output, by coreutils (not the tool's
// libcrypto): "sha256:<hex>".
std::string sha256_of(const std::string& shell_cmd) {
  auto r = sh(shell_cmd + " | sha256sum", "", 60000);
  if (!r.ok() || r.out.size() < 64) return "<" + r.err + ">";
  return "sha256:" + r.out.substr(0, 64);
}

// Stores `data` as a blob of `layout`; returns its descriptor.
json put_blob(const std::string& layout, const std::string& data, const std::string& media) {
  std::string tmp = layout + "/blobs/sha256/.new";
  EXPECT_TRUE(write_file(tmp, data));
  std::string digest = sha256_of("cat " + q(tmp));
  EXPECT_EQ(::rename(tmp.c_str(), (layout + "/blobs/sha256/" + digest.substr(7)).c_str()), 0);
  return {{"mediaType", media}, {"digest", digest}, {"size", data.size()}};
}

json read_json(const std::string& path) { return json::parse(read_file(path)); }

json read_blob_json(const std::string& layout, const json& desc) {
  return read_json(layout + "/blobs/sha256/" + desc["digest"].get<std::string>().substr(7));
}

// The manifest of `tag` in `layout`.
json manifest_of(const std::string& layout, const std::string& tag) {
  json index = read_json(layout + "/index.json");
  for (auto& m : index["manifests"])
    if (m["annotations"].value("org.opencontainers.image.ref.name", "") == tag)
      return read_blob_json(layout, m);
  ADD_FAILURE() << "no tag " << tag << " in " << layout;
  return json::object();
}

// Adds `new_tag` to `layout`: the image `tag` with its config's
// rootfs.diff_ids changed by `edit` (new config and manifest blobs, as an
// image builder with a bug or a forger would write them).
void retag_with_diff_ids(const std::string& layout, const std::string& tag,
                         const std::string& new_tag, const std::function<void(json&)>& edit) {
  json manifest = manifest_of(layout, tag);
  json config = read_blob_json(layout, manifest["config"]);
  edit(config["rootfs"]["diff_ids"]);
  std::string config_type = manifest["config"]["mediaType"].get<std::string>();
  manifest["config"] = put_blob(layout, config.dump(), config_type);
  json desc = put_blob(layout, manifest.dump(), "application/vnd.oci.image.manifest.v1+json");
  desc["annotations"] = {{"org.opencontainers.image.ref.name", new_tag}};
  json index = read_json(layout + "/index.json");
  index["manifests"].push_back(desc);
  ASSERT_TRUE(write_file(layout + "/index.json", index.dump()));
}

TEST_F(ImageTool, ChecksEachLayerAgainstItsDiffId) {
  build_image();
  if (HasFatalFailure()) return;
  std::string layout = p("img");
  json manifest = manifest_of(layout, "v2");
  json config = read_blob_json(layout, manifest["config"]);
  std::vector<std::string> layers, diff_ids;
  for (auto& l : manifest["layers"]) layers.push_back(l["digest"].get<std::string>().substr(7));
  for (auto& d : config["rootfs"]["diff_ids"]) diff_ids.push_back(d.get<std::string>());
  ASSERT_EQ(layers.size(), 2u);
  ASSERT_EQ(diff_ids.size(), 2u);
  // The premise: umoci's diff_ids are the sha256 of the gunzipped blobs.
  for (size_t i = 0; i < layers.size(); ++i)
    ASSERT_EQ(sha256_of("gzip -dc " + q(layout + "/blobs/sha256/" + layers[i])), diff_ids[i]);
  const std::string forged = "sha256:" + std::string(64, 'a');
  retag_with_diff_ids(layout, "v2", "wrong-top", [&](json& ids) { ids[1] = forged; });
  retag_with_diff_ids(layout, "v2", "swapped", [](json& ids) { std::swap(ids[0], ids[1]); });
  retag_with_diff_ids(layout, "v2", "short", [](json& ids) { ids.erase(1); });
  if (HasFatalFailure()) return;
  auto entries = [&](const std::string& store, const char* sub) {
    return list_dir(store + "/" + sub);
  };

  // The good image: each layer verified, its diff_id recorded.
  std::string good = p("store-good");
  auto r = tool({"--store", good, "--extract-only", "img:v2"});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.err.find("diff_id " + diff_ids[0] + " verified"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("diff_id " + diff_ids[1] + " verified"), std::string::npos) << r.err;
  for (size_t i = 0; i < layers.size(); ++i)
    EXPECT_EQ(read_file(good + "/diff_ids/" + layers[i]), diff_ids[i] + "\n");

  // A wrong diff_id for the top layer: refused, nothing mounted; the base
  // layer (right) may stay, the top layer leaves nothing behind.
  std::string store = p("store-wrong-top");
  r = tool({"--store", store, "--rw", p("rw"), "img:wrong-top", m()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("diff_id mismatch for layer sha256:" + layers[1] +
                       ": its uncompressed tar is " + diff_ids[1] +
                       ", the image config says " + forged),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(in_proc_mounts(m()));
  EXPECT_FALSE(exists(p("rw")));
  EXPECT_EQ(entries(store, "sha256"), std::vector<std::string>{layers[0]});
  EXPECT_EQ(entries(store, "diff_ids"), std::vector<std::string>{layers[0]});

  // Swapped diff_ids: the bottom layer fails first; the store stays empty.
  store = p("store-swapped");
  r = tool({"--store", store, "--extract-only", "img:swapped"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("diff_id mismatch for layer sha256:" + layers[0]), std::string::npos)
      << r.err;
  EXPECT_EQ(entries(store, "sha256"), std::vector<std::string>{});
  EXPECT_EQ(entries(store, "diff_ids"), std::vector<std::string>{});

  // Fewer diff_ids than layers: refused before anything is extracted.
  store = p("store-short");
  r = tool({"--store", store, "--extract-only", "img:short"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("the image config lists 1 diff_ids for 2 layers"), std::string::npos)
      << r.err;
  EXPECT_EQ(entries(store, "sha256"), std::vector<std::string>{});

  // Layers already in the store are checked against their recorded
  // diff_id: the forged config is refused and the store left as it was.
  std::string good_before = snapshot(good);
  r = tool({"--store", good, "--rw", p("rw"), "img:wrong-top", m()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("diff_id mismatch for layer sha256:" + layers[1]), std::string::npos)
      << r.err;
  EXPECT_FALSE(in_proc_mounts(m()));
  EXPECT_EQ(snapshot(good), good_before);
  // A layer extracted before diff_ids were recorded: the blob is hashed
  // again, the record written, and the forged config refused all the same.
  ASSERT_EQ(::unlink((good + "/diff_ids/" + layers[1]).c_str()), 0);
  r = tool({"--store", good, "--extract-only", "img:wrong-top"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("diff_id mismatch for layer sha256:" + layers[1]), std::string::npos)
      << r.err;
  EXPECT_EQ(read_file(good + "/diff_ids/" + layers[1]), diff_ids[1] + "\n");
  r = tool({"--store", good, "--extract-only", "img:v2"});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.err.find("layers: 0 extracted, 2 reused"), std::string::npos) << r.err;
}
#endif

// Writes an uncompressed tar whose members are given raw (no cleaning).
struct Member {
  std::string name;
  char type;  // f, d, l (symlink), h (hard link)
  std::string data_or_target;
};
bool write_tar(const std::string& path, const std::vector<Member>& members) {
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (archive_write_open_filename(a, path.c_str()) != ARCHIVE_OK) return false;
  for (auto& mb : members) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, mb.name.c_str());
    archive_entry_set_mtime(e, 1700000000, 0);
    switch (mb.type) {
      case 'f':
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, static_cast<la_int64_t>(mb.data_or_target.size()));
        break;
      case 'd':
        archive_entry_set_filetype(e, AE_IFDIR);
        archive_entry_set_perm(e, 0755);
        break;
      case 'l':
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_perm(e, 0777);
        archive_entry_set_symlink(e, mb.data_or_target.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_hardlink(e, mb.data_or_target.c_str());
        break;
    }
    archive_write_header(a, e);
    if (mb.type == 'f') archive_write_data(a, mb.data_or_target.data(), mb.data_or_target.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return true;
}

TEST_F(ImageTool, RefusesLayersThatWriteOutsideTheirDirectory) {
  must({"umoci", "init", "--layout", "img"});
  must({"umoci", "new", "--image", "img:base"});
  mkdirs(p("outside"));
  const std::string outside = p("outside");
  struct Case {
    std::string what;
    std::vector<Member> members;
  };
  std::vector<Case> cases = {
      {"dotdot", {{"ok", 'f', "fine\n"}, {"../../outside/dotdot", 'f', "escaped\n"}}},
      {"dotdot-inside", {{"a/", 'd', ""}, {"a/../../../outside/inner", 'f', "escaped\n"}}},
      {"absolute", {{outside + "/absolute", 'f', "escaped\n"}}},
      {"symlink", {{"link", 'l', outside}, {"link/through-symlink", 'f', "escaped\n"}}},
      {"hardlink", {{"hl", 'h', "../../outside/victim"}}},
  };
  ASSERT_TRUE(write_file(p("outside/victim"), "victim\n"));
  std::string outside_before = snapshot(outside);
  for (auto& c : cases) {
    SCOPED_TRACE(c.what);
    std::string tar = p(c.what + ".tar");
    ASSERT_TRUE(write_tar(tar, c.members));
    must({"umoci", "raw", "add-layer", "--image", "img:base", "--tag", c.what, tar});
    std::string store = p("store-" + c.what);
    auto r = tool({"--store", store, "--rw", p("rw"), "img:" + c.what, m()});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_NE(r.err.find("refusing"), std::string::npos) << r.err;
    EXPECT_FALSE(in_proc_mounts(m()));
    EXPECT_EQ(store_entries(store), std::vector<std::string>{}) << "left in the store";
  }
  EXPECT_EQ(snapshot(outside), outside_before) << "a layer wrote outside its directory";
}

}  // namespace
}  // namespace aufs::ct
