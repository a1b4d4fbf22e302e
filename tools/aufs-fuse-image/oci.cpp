// SPDX-License-Identifier: GPL-2.0-or-later
// OCI image layouts: blobs checked against their digests, the manifest of
// a tag, the image's layers and diff_ids.
#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "image.hpp"
#include "progress.hpp"

namespace aufs_image {

// "sha256:<64 hex>" -> hex; anything else is refused (the hex becomes a
// path component, so it is checked strictly).
std::string digest_hex(const std::string& digest) {
  if (!digest.starts_with("sha256:")) throw Error("unsupported digest algorithm: " + digest);
  std::string hex = digest.substr(7);
  if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw Error("malformed digest: " + digest);
  return hex;
}

// Reads a blob of the layout whole, checking its digest and size.
std::string read_blob(const std::string& layout, const json& desc) {
  std::string digest = desc.at("digest").get<std::string>();
  std::string path = layout + "/blobs/sha256/" + digest_hex(digest);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read blob " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string data = ss.str();
  Sha256 h;
  h.update(data.data(), data.size());
  if (h.hex() != digest_hex(digest)) throw Error("digest mismatch for blob " + digest);
  if (desc.contains("size") && desc["size"].get<long long>() != static_cast<long long>(data.size()))
    throw Error("size mismatch for blob " + digest);
  return data;
}

// Checks a (possibly large) blob file against its digest and size by streaming.
void verify_blob_file(const std::string& path, const std::string& digest, long long size,
                      Progress* progress) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open blob " + path + ": " + std::strerror(errno));
  Sha256 h;
  std::vector<char> buf(1 << 20);
  long long total = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      throw Error("read " + path + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
    total += n;
    if (progress) progress->add(n);
  }
  ::close(fd);
  if (h.hex() != digest_hex(digest)) throw Error("digest mismatch for layer " + digest);
  if (size >= 0 && total != size) throw Error("size mismatch for layer " + digest);
}

std::string host_platform() {
  struct utsname u;
  std::string m = ::uname(&u) == 0 ? u.machine : "";
  // uname's machine names as OCI's GOARCH values.
  if (m == "x86_64") return "linux/amd64";
  if (m == "aarch64" || m == "arm64") return "linux/arm64";
  if (m == "i386" || m == "i686") return "linux/386";
  if (m == "armv7l") return "linux/arm/v7";
  if (m == "armv6l") return "linux/arm/v6";
  return "linux/" + m;  // ppc64le, s390x, riscv64, mips64le: the same names
}

namespace {

std::string platform_of(const json& m) {
  const json& p = m["platform"];
  std::string s = p.value("os", "") + "/" + p.value("architecture", "");
  if (!p.value("variant", "").empty()) s += "/" + p.value("variant", "");
  return s;
}

// "linux/arm64" matches an entry with or without a variant; "linux/arm/v7"
// only that variant.
bool platform_matches(const json& m, const std::string& want) {
  if (!m.contains("platform")) return false;
  std::string have = platform_of(m);
  return have == want || (std::count(want.begin(), want.end(), '/') == 1 &&
                          have.starts_with(want + "/"));
}

}  // namespace

json pick_manifest(const std::string& layout, const json& index, const std::string& tag,
                   int depth, json* desc) {
  if (depth > 4) throw Error("image indexes nested too deeply");
  const json& ms = index.at("manifests");
  const json* chosen = nullptr;
  if (!tag.empty()) {
    for (auto& m : ms) {
      if (m.contains("annotations") &&
          m["annotations"].value("org.opencontainers.image.ref.name", "") == tag)
        chosen = &m;
    }
    if (!chosen && depth == 0) throw Error("no manifest tagged '" + tag + "' in " + layout);
  }
  if (!chosen) {
    // A nested index (or an untagged request): the entry of the platform
    // asked for (the host's by default), else the only entry.
    bool any_platform = false;
    std::string have;
    for (auto& m : ms) {
      if (!m.contains("platform")) continue;
      any_platform = true;
      have += (have.empty() ? "" : ", ") + platform_of(m);
      if (!chosen && platform_matches(m, g_platform)) chosen = &m;
    }
    if (!chosen && ms.size() == 1 && (!any_platform || depth == 0)) chosen = &ms[0];
    if (!chosen && any_platform)
      throw Error("no manifest for platform " + g_platform + " in " + layout + " (it has " +
                  have + "; see --platform)");
    if (!chosen) throw Error("several manifests in " + layout + ": name a TAG");
  }
  std::string media = chosen->value("mediaType", "");
  json doc = json::parse(read_blob(layout, *chosen));
  if (media == "application/vnd.oci.image.index.v1+json" ||
      media == "application/vnd.docker.distribution.manifest.list.v2+json" ||
      (doc.contains("manifests") && !doc.contains("layers")))
    return pick_manifest(layout, doc, "", depth + 1, desc);
  if (desc) *desc = *chosen;
  return doc;
}

Image load_image(const std::string& layout, const std::string& tag) {
  std::ifstream in(layout + "/oci-layout");
  if (!in) throw Error(layout + " is not an OCI image layout (no oci-layout file)");
  std::ifstream idx(layout + "/index.json");
  if (!idx) throw Error("cannot read " + layout + "/index.json");
  json index = json::parse(idx);
  json desc;
  json manifest = pick_manifest(layout, index, tag, 0, &desc);
  return image_of_manifest(layout, manifest, desc.at("digest").get<std::string>());
}

Image load_image_digest(const std::string& layout, const std::string& digest) {
  json manifest = json::parse(read_blob(layout, json{{"digest", digest}}));
  return image_of_manifest(layout, manifest, digest);
}

Image image_of_manifest(const std::string& layout, const json& manifest,
                        const std::string& digest) {
  // The config is verified too (its digest is the image id); its
  // rootfs.diff_ids name each layer's uncompressed tar, in layer order.
  if (!manifest.contains("config")) throw Error("the manifest has no config");
  json config = json::parse(read_blob(layout, manifest["config"]));
  Image img;
  img.manifest = manifest;
  img.config = config;
  img.manifest_digest = digest;
  for (auto& l : manifest.at("layers")) {
    std::string media = l.value("mediaType", "");
    if (media.find("nondistributable") != std::string::npos && !l.contains("digest"))
      throw Error("foreign layer without digest");
    std::string d = l.at("digest").get<std::string>();
    digest_hex(d);
    img.layer_digests.push_back(d);
    img.layer_sizes.push_back(l.contains("size") ? l["size"].get<long long>() : -1);
    img.layer_descs.push_back(l);
  }
  if (img.layer_digests.empty()) throw Error("the image has no layers");
  if (!config.contains("rootfs") || !config["rootfs"].contains("diff_ids"))
    throw Error("the image config has no rootfs.diff_ids");
  for (auto& id : config["rootfs"]["diff_ids"]) {
    std::string d = id.get<std::string>();
    digest_hex(d);
    img.diff_ids.push_back(d);
  }
  if (img.diff_ids.size() != img.layer_digests.size())
    throw Error("the image config lists " + std::to_string(img.diff_ids.size()) +
                " diff_ids for " + std::to_string(img.layer_digests.size()) + " layers");
  return img;
}

std::pair<std::string, std::string> split_image_ref(const std::string& ref) {
  std::string layout = ref, tag;
  size_t colon = ref.rfind(':');
  if (colon != std::string::npos && ref.find('/', colon) == std::string::npos) {
    layout = ref.substr(0, colon);
    tag = ref.substr(colon + 1);
  }
  return {absolute(layout), tag};
}

std::string diff_id_mismatch(const std::string& digest, const std::string& actual,
                             const std::string& expected) {
  return "diff_id mismatch for layer " + digest + ": its uncompressed tar is " + actual +
         ", the image config says " + expected;
}

}  // namespace aufs_image
