// SPDX-License-Identifier: GPL-2.0-or-later
// What `diff` and `commit` read: the rw branch and the image layers below
// it, from a mounted union (its control file) or from an unmounted branch
// (its container record, or --from).
#include "target.hpp"

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "aufs_fuse/control.hpp"
#include "image.hpp"

namespace aufs_image {
namespace {

std::string strip_slash(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

// "STORE/sha256/<hex>" -> "sha256:<hex>"; "" for other paths.
std::string layer_digest_of(const std::string& dir) {
  auto slash = dir.rfind('/');
  std::string hex = dir.substr(slash + 1);
  std::string parent = dir.substr(0, slash);
  if (!parent.ends_with("/sha256") || hex.size() != 64) return "";
  return "sha256:" + hex;
}

}  // namespace

// The state of an aufs-fuse mount, from its control file.
std::optional<json> mount_info(const std::string& mnt) {
  std::string ctl = mnt + "/" + std::string(aufs::kControlName);
  std::string key(aufs::kXattrInfo);
  const char* kInfoXattr = key.c_str();
  ssize_t n = ::getxattr(ctl.c_str(), kInfoXattr, nullptr, 0);
  if (n <= 0) return std::nullopt;
  std::string raw(static_cast<size_t>(n) + 4096, '\0');
  n = ::getxattr(ctl.c_str(), kInfoXattr, raw.data(), raw.size());
  if (n <= 0) return std::nullopt;
  raw.resize(static_cast<size_t>(n));
  return json::parse(raw);
}

// Mount points of fuse.aufs mounts (/proc/self/mountinfo, octal escapes undone).
std::vector<std::string> aufs_mounts() {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string f, mp;
    for (int i = 0; i < 5 && ls >> f; ++i)
      if (i == 4) mp = f;
    size_t dash = line.find(" - ");
    if (dash == std::string::npos || line.compare(dash + 3, 10, "fuse.aufs ") != 0) continue;
    std::string un;
    for (size_t i = 0; i < mp.size(); ++i) {
      if (mp[i] == '\\' && i + 3 < mp.size()) {
        un += static_cast<char>(std::stoi(mp.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        un += mp[i];
      }
    }
    out.push_back(un);
  }
  return out;
}

Target resolve_target(const TargetArgs& a) {
  Target t;
  std::string arg = strip_slash(absolute(a.path));
  std::vector<std::string> mounted_layers;  // from the mount, top first
  if (auto info = mount_info(arg)) {
    auto& brs = info->at("branches");
    if (brs.empty() || !brs[0].at("perm").get<std::string>().starts_with("rw"))
      throw Error(arg + ": the top branch of the mount is not writable");
    t.branches.rw = brs[0].at("path").get<std::string>();
    for (size_t i = 1; i < brs.size(); ++i)
      mounted_layers.push_back(brs[i].at("path").get<std::string>());
    std::string opts = info->value("options", "");
    t.branches.ociwh = ("," + opts + ",").find(",ociwh,") != std::string::npos;
    t.live_mount = arg;
  } else {
    struct stat st;
    if (::stat(arg.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
      throw Error(arg + " is neither an aufs-fuse mount nor a branch directory");
    t.branches.rw = arg;
    // The branch may be the rw branch of a mount elsewhere.
    for (auto& mp : aufs_mounts()) {
      auto info = mount_info(mp);
      if (!info) continue;
      for (auto& b : info->at("branches"))
        if (strip_slash(b.value("path", "")) == arg && b.value("perm", "").starts_with("rw"))
          t.live_mount = mp;
    }
  }
  t.branches.rw = strip_slash(t.branches.rw);

  // The image below: --from, else the record of the mount that made the
  // container.
  std::string store = a.store;
  std::string record_path = container_record_path(t.branches.rw);
  std::ifstream rin(record_path);
  if (!a.from.empty()) {
    auto [layout, tag] = split_image_ref(a.from);
    t.layout = layout;
    t.image = load_image(layout, tag);
    t.have_image = true;
    if (mounted_layers.empty()) t.branches.ociwh = !a.aufs_whiteouts;
  } else if (rin) {
    json rec = json::parse(rin);
    t.layout = rec.at("layout").get<std::string>();
    t.image = load_image_digest(t.layout, rec.at("manifest").get<std::string>());
    t.have_image = true;
    if (store.empty()) store = rec.value("store", "");
    if (mounted_layers.empty()) t.branches.ociwh = rec.value("ociwh", true);
    note("image below " + t.branches.rw + ": " + t.layout + " " + t.image.manifest_digest +
         " (from " + record_path + ")");
  }
  if (!mounted_layers.empty()) {
    t.branches.layers = mounted_layers;
    if (t.have_image) {
      // The blobs committed as the parent must be the layers mounted.
      std::vector<std::string> want(t.image.layer_digests.rbegin(), t.image.layer_digests.rend());
      std::vector<std::string> got;
      for (auto& l : mounted_layers) got.push_back(layer_digest_of(strip_slash(l)));
      if (got != want)
        throw Error("the layers mounted on " + arg + " are not those of the image " +
                    t.image.manifest_digest);
    }
    return t;
  }
  if (!t.have_image)
    throw Error("which image is below " + t.branches.rw + "? no " + record_path +
                " (written when aufs-fuse-image mounts a container): give --from LAYOUT[:TAG]");
  if (store.empty()) store = default_store();
  auto dirs = ensure_image_layers(t.layout, absolute(store), t.image);
  t.branches.layers.assign(dirs.rbegin(), dirs.rend());
  return t;
}

}  // namespace aufs_image
