// SPDX-License-Identifier: GPL-2.0-or-later
// `ls` and `gc` of the layer store: the layers it holds, the space each
// takes and the images that use them; removing what no image uses.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "image.hpp"
#include "target.hpp"

namespace aufs_image {
namespace {

const char* kLsUsage =
    "usage: aufs-fuse-image ls [--store DIR] [--json]\n"
    "Lists the layer store: each layer's digest, its size on disk and the images (or mounts)\n"
    "that use it; then the images, with their tags.\n";
const char* kGcUsage =
    "usage: aufs-fuse-image gc [--store DIR] [--dry-run]\n"
    "Removes the layers of the store that no image in its layout and no mount uses, and\n"
    "what crashed extractions left; prints each and the space freed.\n";

struct Args {
  std::string store;
  bool json_out = false, dry_run = false;
};

Args parse_args(const std::vector<std::string>& argv, bool gc) {
  Args a;
  a.store = default_store();
  const char* usage = gc ? kGcUsage : kLsUsage;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& s = argv[i];
    if (s == "-h" || s == "--help") {
      std::fputs(usage, stdout);
      std::exit(0);
    } else if (s == "--store" && i + 1 < argv.size()) {
      a.store = argv[++i];
    } else if (s == "--json" && !gc) {
      a.json_out = true;
    } else if (s == "--dry-run" && gc) {
      a.dry_run = true;
    } else if (s == "-q") {
      g_quiet = true;
    } else {
      std::fprintf(stderr, "aufs-fuse-image: %s: unknown argument %s\n%s", gc ? "gc" : "ls",
                   s.c_str(), usage);
      std::exit(2);
    }
  }
  a.store = absolute(a.store);
  return a;
}

// Bytes a tree takes on disk (allocated blocks), each inode counted once.
long long disk_usage(const std::string& path, std::set<std::pair<dev_t, ino_t>>& seen) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return 0;
  long long n = seen.insert({st.st_dev, st.st_ino}).second ? st.st_blocks * 512LL : 0;
  if (S_ISDIR(st.st_mode))
    if (auto names = list_names(path))
      for (auto& c : *names) n += disk_usage(path + "/" + c, seen);
  return n;
}

long long disk_usage(const std::string& path) {
  std::set<std::pair<dev_t, ino_t>> seen;
  return disk_usage(path, seen);
}

std::string human(long long b) {
  char buf[32];
  if (b < 1024) std::snprintf(buf, sizeof buf, "%lld B", b);
  else if (b < (1LL << 20)) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else if (b < (1LL << 30)) std::snprintf(buf, sizeof buf, "%.1f MiB", b / 1048576.0);
  else std::snprintf(buf, sizeof buf, "%.1f GiB", b / 1073741824.0);
  return buf;
}

bool is_index(const json& desc, const json& doc) {
  std::string media = desc.value("mediaType", "");
  return media == "application/vnd.oci.image.index.v1+json" ||
         media == "application/vnd.docker.distribution.manifest.list.v2+json" ||
         (doc.contains("manifests") && !doc.contains("layers"));
}

// The manifests an index leads to (nested indexes followed) and the tags
// they are reached by ("" for none).
void collect_refs(const std::string& layout, const json& index, const std::string& tag,
                  std::map<std::string, std::set<std::string>>& out, int depth) {
  if (depth > 4 || !index.contains("manifests")) return;
  for (auto& m : index["manifests"]) {
    std::string t = tag;
    if (m.contains("annotations"))
      t = m["annotations"].value("org.opencontainers.image.ref.name", tag);
    std::string digest = m.value("digest", "");
    json doc;
    try {
      doc = json::parse(read_blob(layout, m));
    } catch (const std::exception&) {
      continue;  // a missing or corrupt blob leads nowhere
    }
    if (is_index(m, doc)) collect_refs(layout, doc, t, out, depth + 1);
    else out[digest].insert(t);
  }
}

// One image record of the store (record_image_use).
struct Use {
  std::string record, layout, manifest;
  std::vector<std::string> layers;
  std::set<std::string> tags;  // "" = reached untagged
  bool present = false;        // the layout still leads to the manifest
  std::string name() const {
    if (!present) return layout + "@" + manifest;
    std::string s;
    for (auto& t : tags)
      if (!t.empty()) s += (s.empty() ? "" : " ") + layout + ":" + t;
    return s.empty() ? layout + "@" + manifest : s;
  }
};

std::vector<Use> read_uses(const std::string& store) {
  std::vector<Use> uses;
  std::map<std::string, std::map<std::string, std::set<std::string>>> refs;  // per layout
  for (auto& n : list_names(store + "/images").value_or(std::vector<std::string>{})) {
    if (!n.ends_with(".json")) continue;
    Use u;
    u.record = store + "/images/" + n;
    try {
      std::ifstream in(u.record);
      json rec = json::parse(in);
      u.layout = rec.at("layout").get<std::string>();
      u.manifest = rec.at("manifest").get<std::string>();
      u.layers = rec.at("layers").get<std::vector<std::string>>();
    } catch (const std::exception&) {
      continue;  // a half-written record keeps nothing alive
    }
    if (!refs.count(u.layout)) {
      auto& r = refs[u.layout];
      std::ifstream idx(u.layout + "/index.json");
      try {
        if (idx) collect_refs(u.layout, json::parse(idx), "", r, 0);
      } catch (const std::exception&) {
      }
    }
    auto& r = refs[u.layout];
    if (auto it = r.find(u.manifest); it != r.end()) {
      u.present = true;
      u.tags = it->second;
    }
    uses.push_back(std::move(u));
  }
  return uses;
}

struct Layer {
  std::string digest, dir;
  long long bytes = 0;
  std::vector<std::string> images, mounts;
  bool used() const { return !images.empty() || !mounts.empty(); }
};

// Store layers by digest, with the images and mounts that use them.
std::map<std::string, Layer> read_layers(const std::string& store, const std::vector<Use>& uses) {
  std::map<std::string, Layer> layers;
  for (auto& n : list_names(store + "/sha256").value_or(std::vector<std::string>{})) {
    if (n.starts_with(".")) continue;  // temporaries
    Layer l;
    l.digest = "sha256:" + n;
    l.dir = store + "/sha256/" + n;
    l.bytes = disk_usage(l.dir);
    layers[l.digest] = l;
  }
  for (auto& u : uses)
    if (u.present)
      for (auto& d : u.layers)
        if (auto it = layers.find(d); it != layers.end()) it->second.images.push_back(u.name());
  // A mount keeps its layers even when its image is gone from the layout.
  for (auto& mp : aufs_mounts()) {
    auto info = mount_info(mp);
    if (!info || !info->contains("branches")) continue;
    for (auto& b : (*info)["branches"]) {
      std::string path = b.value("path", "");
      for (auto& [d, l] : layers)
        if (path == l.dir || path == l.dir + "/") l.mounts.push_back(mp);
    }
  }
  return layers;
}

// What crashed extractions and writes left: STORE/sha256/.tmp-*,
// diff_id records without their layer.
std::vector<std::string> leftovers(const std::string& store) {
  std::vector<std::string> out;
  for (auto& n : list_names(store + "/sha256").value_or(std::vector<std::string>{}))
    if (n.starts_with(".tmp-")) out.push_back(store + "/sha256/" + n);
  for (auto& n : list_names(store + "/diff_ids").value_or(std::vector<std::string>{})) {
    struct stat st;
    std::string hex = n.substr(0, n.find('.'));
    if (::lstat((store + "/sha256/" + hex).c_str(), &st) != 0) out.push_back(store + "/diff_ids/" + n);
  }
  return out;
}

void need_store(const std::string& store) {
  struct stat st;
  if (::stat(store.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Error("no layer store at " + store + " (see --store)");
}

}  // namespace

int ls_main(const std::vector<std::string>& argv) {
  Args a = parse_args(argv, false);
  need_store(a.store);
  auto uses = read_uses(a.store);
  auto layers = read_layers(a.store, uses);
  long long total = 0;
  for (auto& [d, l] : layers) total += l.bytes;
  if (a.json_out) {
    json out = {{"store", a.store}, {"bytes", total}, {"layers", json::array()},
                {"images", json::array()}};
    for (auto& [d, l] : layers)
      out["layers"].push_back(
          {{"digest", d}, {"bytes", l.bytes}, {"images", l.images}, {"mounts", l.mounts}});
    for (auto& u : uses) {
      std::vector<std::string> tags;
      for (auto& t : u.tags)
        if (!t.empty()) tags.push_back(t);
      out["images"].push_back({{"layout", u.layout}, {"manifest", u.manifest}, {"tags", tags},
                               {"present", u.present}, {"layers", u.layers}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("%-71s %10s  %s\n", "LAYER", "SIZE", "USED BY");
  for (auto& [d, l] : layers) {
    std::string by;
    for (auto& i : l.images) by += (by.empty() ? "" : ", ") + i;
    for (auto& m : l.mounts) by += (by.empty() ? "" : ", ") + ("mounted on " + m);
    std::printf("%-71s %10s  %s\n", d.c_str(), human(l.bytes).c_str(),
                by.empty() ? "(unused: gc removes it)" : by.c_str());
  }
  std::printf("\n%-71s %6s  %s\n", "IMAGE (LAYOUT@MANIFEST)", "LAYERS", "TAGS");
  for (auto& u : uses) {
    std::string tags;
    for (auto& t : u.tags)
      if (!t.empty()) tags += (tags.empty() ? "" : " ") + t;
    if (!u.present) tags = "(gone from its layout)";
    else if (tags.empty()) tags = "(untagged)";
    std::printf("%-71s %6zu  %s\n", (u.layout + "@" + u.manifest).c_str(), u.layers.size(),
                tags.c_str());
  }
  std::printf("\n%zu layer%s, %s on disk; %zu image%s\n", layers.size(),
              layers.size() == 1 ? "" : "s", human(total).c_str(), uses.size(),
              uses.size() == 1 ? "" : "s");
  return 0;
}

int gc_main(const std::vector<std::string>& argv) {
  Args a = parse_args(argv, true);
  need_store(a.store);
  // No extraction and no image record while gc decides and removes.
  StoreLock lock(a.store);
  auto uses = read_uses(a.store);
  auto layers = read_layers(a.store, uses);
  const char* verb = a.dry_run ? "would remove" : "removed";
  long long freed = 0;
  size_t n_layers = 0, kept = 0;
  for (auto& u : uses) {
    if (u.present) continue;
    std::printf("%s the record of image %s (gone from its layout)\n", verb, u.name().c_str());
    if (!a.dry_run) ::unlink(u.record.c_str());
  }
  for (auto& [d, l] : layers) {
    if (l.used()) {
      ++kept;
      continue;
    }
    std::printf("%s layer %s (%s)\n", verb, d.c_str(), human(l.bytes).c_str());
    freed += l.bytes;
    ++n_layers;
    if (!a.dry_run) {
      // The diff_id record goes last: a layer directory without it is
      // verified again by the next mount.
      remove_tree(l.dir);
      ::unlink((a.store + "/diff_ids/" + digest_hex(d)).c_str());
    }
  }
  for (auto& p : leftovers(a.store)) {
    long long b = disk_usage(p);
    std::printf("%s leftover %s (%s)\n", verb, p.c_str(), human(b).c_str());
    freed += b;
    if (!a.dry_run) remove_tree(p);
  }
  std::printf("gc: %s %zu layer%s, %s %s; %zu layer%s in use%s\n", verb, n_layers,
              n_layers == 1 ? "" : "s", a.dry_run ? "would free" : "freed", human(freed).c_str(),
              kept, kept == 1 ? "" : "s", a.dry_run ? " (dry run: nothing changed)" : "");
  return 0;
}

}  // namespace aufs_image
