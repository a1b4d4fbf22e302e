// SPDX-License-Identifier: GPL-2.0-or-later
// Mounting an image: layers into the store, then aufs-fuse with the layers
// as ro+wh branches under the optional rw branch.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "aufs_fuse/options.hpp"
#include "image.hpp"

#ifndef AUFS_FUSE_DAEMON
#define AUFS_FUSE_DAEMON "/usr/local/sbin/aufs-fuse"
#endif

namespace aufs_image {
namespace {

const char* kUsage =
    "usage: aufs-fuse-image [OPTIONS] LAYOUT[:TAG] MOUNTPOINT\n"
    "       aufs-fuse-image diff|commit|ls|gc ...  (see aufs-fuse-image(8))\n"
    "Mounts the OCI image TAG of the image layout LAYOUT on MOUNTPOINT with aufs-fuse.\n"
    "  --rw DIR        writable branch on top (default: read-only mount)\n"
    "  --store DIR     layer store (default $AUFS_FUSE_LAYER_STORE or /var/lib/aufs-fuse/layers)\n"
    "  -o OPTS         more aufs-fuse options (e.g. allow_other,dev,suid)\n"
    "  --daemon PATH   the aufs-fuse binary (default $AUFS_FUSE_BIN or " AUFS_FUSE_DAEMON ")\n"
    "  --aufs-whiteouts a whiteout also hides its own layer's entry (default: OCI rule, ociwh)\n"
    "  -f              keep the daemon in the foreground\n"
    "  --extract-only  fill the layer store, print the branch list, mount nothing\n"
    "  --platform OS/ARCH[/VARIANT]  the image of a multi-platform index to use\n"
    "                  (default: the host's, e.g. linux/amd64)\n"
    "  -q              no progress messages\n"
    "  --version       the version (also -V)\n"
    "  -h, --help      this text\n";

std::string quote_branch(const std::string& path) {
  if (path.find(':') != std::string::npos || path.find('"') != std::string::npos)
    throw Error("branch path contains ':' or '\"': " + path);
  if (path.find(',') != std::string::npos) return "\"" + path + "\"";
  return path;
}

// The container record (see container_record_path): written before the
// daemon starts, so that `diff` and `commit` know the image below.
void write_container_record(const std::string& store, const std::string& rw,
                            const std::string& layout, const Image& img, bool ociwh) {
  json rec = {{"rw", rw},
              {"store", store},
              {"layout", layout},
              {"manifest", img.manifest_digest},
              {"layers", img.layer_digests},
              {"ociwh", ociwh}};
  std::string path = container_record_path(rw);
  write_file_atomic(path, rec.dump(2) + "\n");
}

}  // namespace

std::string daemon_path(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* e = std::getenv("AUFS_FUSE_BIN"); e && *e) return e;
  if (::access(AUFS_FUSE_DAEMON, X_OK) == 0) return AUFS_FUSE_DAEMON;
  return "aufs-fuse";
}

std::string default_store() {
  if (const char* s = std::getenv("AUFS_FUSE_LAYER_STORE"); s && *s) return s;
  return "/var/lib/aufs-fuse/layers";
}

std::string container_record_path(const std::string& rw) {
  std::string r = rw;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  return r + ".aufs-fuse-image.json";
}

int mount_main(const std::vector<std::string>& argv) {
  const int argc = static_cast<int>(argv.size());
  std::string rw, store, extra, daemon, image, mnt;
  bool foreground = false, extract_only = false, oci_whiteouts = true;
  store = default_store();
  std::vector<std::string> pos;
  for (int i = 0; i < argc; ++i) {
    const std::string& a = argv[i];
    auto value = [&](const char* opt) -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "aufs-fuse-image: %s needs a value\n%s", opt, kUsage);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--rw") {
      rw = value("--rw");
    } else if (a == "--store") {
      store = value("--store");
    } else if (a == "-o") {
      std::string o = value("-o");
      extra += extra.empty() ? o : "," + o;
    } else if (a == "--daemon") {
      daemon = value("--daemon");
    } else if (a == "--aufs-whiteouts") {
      oci_whiteouts = false;
    } else if (a == "-f") {
      foreground = true;
    } else if (a == "--extract-only") {
      extract_only = true;
    } else if (a == "-q") {
      g_quiet = true;
    } else if (a == "--platform") {
      g_platform = value("--platform");
      if (std::count(g_platform.begin(), g_platform.end(), '/') < 1)
        throw Error("--platform " + g_platform + ": expected OS/ARCH[/VARIANT]");
    } else if (a.starts_with("-") && a != "-") {
      std::fprintf(stderr, "aufs-fuse-image: unknown option %s\n%s", a.c_str(), kUsage);
      return 2;
    } else {
      pos.push_back(a);
    }
  }
  if (pos.size() != (extract_only ? 1u : 2u)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  image = pos[0];
  if (!extract_only) mnt = pos[1];
  // Everything that can be checked before a layer is read or extracted.
  if (!extract_only) {
    struct stat st;
    if (::stat(mnt.c_str(), &st) != 0)
      throw Error("mount point '" + mnt + "': " +
                  (errno == ENOTCONN ? "a stale FUSE mount (its daemon is gone); clear it with "
                                       "'umount " + mnt + "'"
                                     : std::string(std::strerror(errno))));
    if (!S_ISDIR(st.st_mode)) throw Error("mount point '" + mnt + "': not a directory");
    aufs::MountOptions probe;
    if (std::string e = aufs::apply_option_string(probe, extra); !e.empty())
      throw Error("-o " + extra + ": " + e);
  }
  auto [layout, tag] = split_image_ref(image);
  store = absolute(store);
  Image img = load_image(layout, tag);
  std::vector<std::string> dirs = ensure_image_layers(layout, store, img);
  std::string br;
  if (!rw.empty()) {
    rw = absolute(rw);
    mkdir_p(rw, 0755);
    br = quote_branch(rw) + "=rw";
    if (!extract_only) write_container_record(store, rw, layout, img, oci_whiteouts);
  }
  for (size_t i = dirs.size(); i-- > 0;) {
    if (!br.empty()) br += ":";
    br += quote_branch(dirs[i]) + "=ro+wh";
  }
  if (extract_only) {
    std::printf("%s\n", br.c_str());
    return 0;
  }
  std::string opts = "br=" + br;
  if (rw.empty()) opts += ",ro";
  // OCI layers: a layer's whiteout hides only lower layers.
  if (oci_whiteouts) opts += ",ociwh";
  if (!extra.empty()) opts += "," + extra;
  std::string bin = daemon_path(daemon);
  std::vector<std::string> args = {bin};
  if (foreground) args.push_back("-f");
  args.push_back("-o");
  args.push_back(opts);
  args.push_back(absolute(mnt));
  std::vector<char*> cargs;
  for (auto& s : args) cargs.push_back(s.data());
  cargs.push_back(nullptr);
  std::fflush(nullptr);
  ::execvp(cargs[0], cargs.data());
  throw Error("cannot run " + bin + ": " + std::strerror(errno));
}

}  // namespace aufs_image
