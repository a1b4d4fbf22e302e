// SPDX-License-Identifier: GPL-2.0-or-later
// aufs-fuse-image's layer store: `ls` lists each layer with its size on
// disk and the images (and mounts) that use it; `gc` removes the layers no
// image of its layout and no mount uses, with what crashed runs left, and
// says what it freed (`--dry-run` changes nothing). Extraction shows a
// progress bar on a terminal and one line per layer otherwise.
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "image_tool_fixture.hpp"

namespace aufs::ct {
namespace {

using json = nlohmann::json;

class ImageStore : public ImageTool {
 protected:
  json ls(const std::string& store) {
    auto r = tool({"ls", "--store", store, "--json"});
    EXPECT_TRUE(r.ok()) << r;
    return r.ok() ? json::parse(r.out) : json();
  }
  // Digests of the store's layers.
  std::vector<std::string> layer_digests(const json& l) {
    std::vector<std::string> out;
    for (auto& e : l["layers"]) out.push_back(e["digest"].get<std::string>());
    return out;
  }
  const json* layer(const json& l, const std::string& digest) {
    for (auto& e : l["layers"])
      if (e["digest"] == digest) return &e;
    return nullptr;
  }
};

TEST_F(ImageStore, LsShowsLayersSizesAndImagesAndGcRemovesWhatNoImageUses) {
  build_image();
  if (HasFatalFailure()) return;
  std::string store = p("store");
  auto r = tool({"--store", store, "--extract-only", "img:v2"});
  ASSERT_TRUE(r.ok()) << r;
  json l = ls(store);
  ASSERT_EQ(l["layers"].size(), 2u) << l.dump(2);
  ASSERT_EQ(l["images"].size(), 1u) << l.dump(2);
  EXPECT_EQ(l["images"][0]["layout"], p("img"));
  EXPECT_EQ(l["images"][0]["tags"], json::array({"v2"}));
  EXPECT_EQ(l["images"][0]["present"], true);
  std::vector<std::string> v2_layers = l["images"][0]["layers"];  // bottom first
  ASSERT_EQ(v2_layers.size(), 2u);
  long long total = 0;
  for (auto& e : l["layers"]) {
    EXPECT_GT(e["bytes"].get<long long>(), 0) << e.dump();
    EXPECT_EQ(e["images"], json::array({p("img") + ":v2"})) << e.dump();
    total += e["bytes"].get<long long>();
  }
  EXPECT_EQ(l["bytes"].get<long long>(), total);
  // The busybox layer holds a few MiB; its size is what du counts.
  auto du = sh("du -s -B1 " + store + "/sha256/" + v2_layers[0].substr(7));
  ASSERT_TRUE(du.ok()) << du;
  EXPECT_EQ(std::to_string(layer(l, v2_layers[0])->at("bytes").get<long long>()),
            du.out.substr(0, du.out.find('\t')));
  // The table for people.
  r = tool({"ls", "--store", store});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.out.find(v2_layers[1]), std::string::npos) << r;
  EXPECT_NE(r.out.find(p("img") + ":v2"), std::string::npos) << r;
  EXPECT_NE(r.out.find("2 layers, "), std::string::npos) << r;

  // l1 used too; v2's tag removed: its top layer is used by nothing.
  ASSERT_TRUE(tool({"--store", store, "--extract-only", "img:l1"}).ok());
  must({"umoci", "rm", "--image", "img:v2"});
  mkdirs(store + "/sha256/.tmp-" + std::string(64, 'a') + "-99999/etc");  // a crashed run
  l = ls(store);
  EXPECT_EQ(layer(l, v2_layers[1])->at("images"), json::array()) << l.dump(2);
  EXPECT_EQ(layer(l, v2_layers[0])->at("images"), json::array({p("img") + ":l1"}));

  std::string before = snapshot(store);
  r = tool({"gc", "--store", store, "--dry-run"});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.out.find("would remove layer " + v2_layers[1]), std::string::npos) << r;
  EXPECT_EQ(r.out.find(v2_layers[0]), std::string::npos) << "a used layer is to be removed\n" << r;
  EXPECT_NE(r.out.find("would remove leftover " + store + "/sha256/.tmp-"), std::string::npos) << r;
  EXPECT_NE(r.out.find("would remove the record of image " + p("img") + "@"), std::string::npos)
      << r;
  EXPECT_NE(r.out.find("would free"), std::string::npos) << r;
  EXPECT_EQ(snapshot(store), before) << "--dry-run changed the store";

  r = tool({"gc", "--store", store});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.out.find("removed layer " + v2_layers[1]), std::string::npos) << r;
  EXPECT_NE(r.out.find("gc: removed 1 layer, freed "), std::string::npos) << r;
  EXPECT_NE(r.out.find("; 1 layer in use"), std::string::npos) << r;
  EXPECT_FALSE(exists(store + "/sha256/" + v2_layers[1].substr(7)));
  EXPECT_FALSE(exists(store + "/diff_ids/" + v2_layers[1].substr(7)));
  EXPECT_TRUE(exists(store + "/diff_ids/" + v2_layers[0].substr(7)));
  EXPECT_EQ(list_dir(store + "/sha256"), (std::vector<std::string>{v2_layers[0].substr(7)}));
  l = ls(store);
  EXPECT_EQ(layer_digests(l), (std::vector<std::string>{v2_layers[0]}));
  EXPECT_EQ(l["images"].size(), 1u) << l.dump(2);
  // Nothing left to do: gc says so and changes nothing.
  before = snapshot(store);
  r = tool({"gc", "--store", store});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.out.find("gc: removed 0 layers, freed 0 B; 1 layer in use"), std::string::npos) << r;
  EXPECT_EQ(snapshot(store), before);
}

// A mounted layer stays, even when its image is gone from the layout.
TEST_F(ImageStore, GcKeepsTheLayersOfALiveMount) {
  build_image();
  if (HasFatalFailure()) return;
  std::string store = p("store");
  auto r = tool({"--store", store, "img:l1", m()});
  SysMountGuard g(m());
  ASSERT_TRUE(r.ok()) << r;
  must({"umoci", "rm", "--image", "img:l1"});
  json l = ls(store);
  ASSERT_EQ(l["layers"].size(), 1u) << l.dump(2);
  EXPECT_EQ(l["layers"][0]["mounts"], json::array({m()})) << l.dump(2);
  std::string digest = l["layers"][0]["digest"];
  r = tool({"gc", "--store", store});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.out.find("gc: removed 0 layers, freed 0 B; 1 layer in use"), std::string::npos) << r;
  EXPECT_TRUE(exists(store + "/sha256/" + digest.substr(7)));
  EXPECT_TRUE(exists(m("bin/busybox")));
  umount_tool_mount(m());
  r = tool({"gc", "--store", store});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.out.find("gc: removed 1 layer, freed "), std::string::npos) << r;
  EXPECT_FALSE(exists(store + "/sha256/" + digest.substr(7)));
}

// On a terminal (script(1) gives it one) a bar of the layer's bytes; in a
// pipe one line per layer, no bar.
TEST_F(ImageStore, ExtractionShowsAProgressBarOnATerminalOnly) {
  if (!which("script")) GTEST_SKIP() << "script(1) missing (Debian package bsdutils)";
  build_image();
  if (HasFatalFailure()) return;
  auto r = sh("script -qefc '" + image_tool() + " --store " + p("tty-store") +
                  " --extract-only img:v2' /dev/null",
              root(), 120000);
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_NE(r.out.find("\rlayer sha256:"), std::string::npos) << r;
  EXPECT_NE(r.out.find("[##############################] 100% "), std::string::npos) << r;

  r = tool({"--store", p("pipe-store"), "--extract-only", "img:v2"});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << r;
  EXPECT_EQ(r.err.find("%"), std::string::npos) << r;
  size_t lines = 0;
  for (size_t pos = 0; (pos = r.err.find(": extracted (", pos)) != std::string::npos; ++pos) ++lines;
  EXPECT_EQ(lines, 2u) << r;

  // -q: no bar on a terminal either.
  r = sh("script -qefc '" + image_tool() + " -q --store " + p("quiet-store") +
             " --extract-only img:v2' /dev/null",
         root(), 120000);
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.out.find("%"), std::string::npos) << r;
}

}  // namespace
}  // namespace aufs::ct
