// SPDX-License-Identifier: GPL-2.0-or-later
// `aufs-fuse-image diff` (docker diff) and `aufs-fuse-image commit`
// (docker commit): the changes of a container's rw branch, and a new image
// made of the parent image's layers plus one layer from the branch.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>

#include "aufs_fuse/control.hpp"
#include "control_client.hpp"
#include "image.hpp"
#include "layer_stream.hpp"
#include "layer_writer.hpp"
#include "target.hpp"

namespace aufs_image {
namespace {

const char* kDiffUsage =
    "usage: aufs-fuse-image diff [--json] [--from LAYOUT[:TAG]] [--store DIR] [--pause] MNT|BRANCH\n"
    "Lists the changes of a container's writable branch, as docker diff:\n"
    "A (added), C (changed), D (deleted), one path a line.\n";
const char* kCommitUsage =
    "usage: aufs-fuse-image commit [--from LAYOUT[:TAG]] [--store DIR] --layout DIR --tag NAME\n"
    "                              [--message TEXT] [--zstd] [--pause] [-q] MNT|BRANCH\n"
    "Saves a container as an image, as docker commit: the parent image's layers plus one\n"
    "layer made from the writable branch, tagged NAME in the OCI image layout DIR.\n";

struct Cli {
  TargetArgs target;
  bool json_out = false, zstd = false, pause = false;
  std::string layout, tag, message;
};

// Parses the options of diff/commit; exits 2 on wrong usage.
Cli parse(const std::vector<std::string>& args, const char* usage, bool commit) {
  Cli c;
  std::vector<std::string> pos;
  auto bad = [&](const std::string& why) {
    std::fprintf(stderr, "aufs-fuse-image: %s\n%s", why.c_str(), usage);
    std::exit(2);
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) bad(a + " needs a value");
      return args[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(usage, stdout);
      std::exit(0);
    } else if (a == "--from") {
      c.target.from = value();
    } else if (a == "--store") {
      c.target.store = value();
    } else if (a == "--aufs-whiteouts") {
      c.target.aufs_whiteouts = true;
    } else if (a == "-q") {
      g_quiet = true;
    } else if (!commit && a == "--json") {
      c.json_out = true;
    } else if (commit && a == "--layout") {
      c.layout = value();
    } else if (commit && a == "--tag") {
      c.tag = value();
    } else if (commit && (a == "--message" || a == "-m")) {
      c.message = value();
    } else if (commit && a == "--zstd") {
      c.zstd = true;
    } else if (a == "--pause") {
      c.pause = true;
    } else if (a.starts_with("-")) {
      bad("unknown option " + a);
    } else {
      pos.push_back(a);
    }
  }
  if (pos.size() != 1) bad("name one MNT or BRANCH");
  if (commit && (c.layout.empty() || c.tag.empty())) bad("commit needs --layout and --tag");
  c.target.path = pos[0];
  return c;
}

// The creation time of the image: $SOURCE_DATE_EPOCH when set (for
// reproducible images), else now.
std::string created_time() {
  time_t t = std::time(nullptr);
  if (const char* s = std::getenv("SOURCE_DATE_EPOCH"); s && *s) t = std::strtoll(s, nullptr, 10);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string blob_path(const std::string& layout, const std::string& digest) {
  return layout + "/blobs/sha256/" + digest_hex(digest);
}

json put_blob(const std::string& layout, const std::string& data, const std::string& media) {
  Sha256 h;
  h.update(data.data(), data.size());
  std::string digest = "sha256:" + h.hex();
  write_file_atomic(blob_path(layout, digest), data);
  return {{"mediaType", media}, {"digest", digest}, {"size", data.size()}};
}

// A parent layer's blob into the output layout: a hard link when it can,
// else a copy; verified against its digest either way.
void copy_blob(const std::string& from, const std::string& to, const json& desc) {
  std::string digest = desc.at("digest").get<std::string>();
  long long size = desc.value("size", -1LL);
  std::string src = blob_path(from, digest), dst = blob_path(to, digest);
  if (src == dst) return;
  struct stat st;
  if (::lstat(dst.c_str(), &st) == 0 && (size < 0 || st.st_size == size)) return;
  verify_blob_file(src, digest, size);
  std::string tmp = dst + ".tmp-" + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  if (::link(src.c_str(), tmp.c_str()) < 0) {
    std::ifstream in(src, std::ios::binary);
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << in.rdbuf();
    if (!out.flush()) throw Error("cannot copy " + src + " to " + tmp);
    out.close();
    verify_blob_file(tmp, digest, size);
  }
  if (::rename(tmp.c_str(), dst.c_str()) < 0)
    throw Error("rename " + tmp + ": " + std::strerror(errno));
}

void init_layout(const std::string& layout) {
  mkdir_p(layout + "/blobs/sha256", 0755);
  struct stat st;
  if (::stat((layout + "/oci-layout").c_str(), &st) < 0)
    write_file_atomic(layout + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  if (::stat((layout + "/index.json").c_str(), &st) < 0)
    write_file_atomic(layout + "/index.json", json{{"schemaVersion", 2}, {"manifests", json::array()}}.dump());
}

// Tags `manifest` as `tag` in the layout's index (replacing an older image
// of that tag), under a lock on the layout directory.
void tag_manifest(const std::string& layout, json desc, const std::string& tag) {
  int fd = ::open(layout.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::flock(fd, LOCK_EX) < 0) throw Error("cannot lock " + layout);
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } close_fd{fd};
  std::ifstream in(layout + "/index.json");
  json index = json::parse(in);
  json kept = json::array();
  for (auto& m : index.at("manifests"))
    if (!m.contains("annotations") ||
        m["annotations"].value("org.opencontainers.image.ref.name", "") != tag)
      kept.push_back(m);
  desc["annotations"] = {{"org.opencontainers.image.ref.name", tag}};
  kept.push_back(desc);
  index["manifests"] = kept;
  write_file_atomic(layout + "/index.json", index.dump());
}

std::string count(long long n, const char* what) { return std::to_string(n) + " " + what; }

// How long a live mount's writes are held at most while its branch is read.
constexpr int kPauseSeconds = 600;

// Holds the writes of the live mount `mnt` (the daemon's pause request)
// while its rw branch is read; released by release() or on the way out.
class PausedMount {
 public:
  explicit PausedMount(std::string mnt) : mnt_(std::move(mnt)) {
    // The release must not look the control file up: a writer held in the
    // mount's root holds that directory's lock until released.
    fd_ = ::open(aufs::ctl::control_path(mnt_).c_str(), O_PATH | O_CLOEXEC);
    if (fd_ < 0) throw Error(mnt_ + ": not an aufs-fuse mount (" + std::strerror(errno) + ")");
    ctl_ = "/proc/self/fd/" + std::to_string(fd_);
    auto r = aufs::ctl::request_at(ctl_, aufs::kXattrPause, std::to_string(kPauseSeconds));
    if (r.err) {
      ::close(fd_);
      throw Error("cannot pause the writes of " + mnt_ + ": " + r.reason);
    }
    note("writes to " + mnt_ + " held (at most " + std::to_string(kPauseSeconds) + " s)");
  }
  PausedMount(const PausedMount&) = delete;
  PausedMount& operator=(const PausedMount&) = delete;
  ~PausedMount() {
    if (!released_) (void)release();
    ::close(fd_);
  }
  // False when the pause had run out already: what was read may be torn.
  bool release() {
    released_ = true;
    auto r = aufs::ctl::request_at(ctl_, aufs::kXattrRelease, "");
    if (r.err == 0) note("writes to " + mnt_ + " released");
    return r.err == 0;
  }
  const std::string& mnt() const { return mnt_; }

 private:
  std::string mnt_, ctl_;
  int fd_ = -1;
  bool released_ = false;
};

}  // namespace

int diff_main(const std::vector<std::string>& args) {
  Cli c = parse(args, kDiffUsage, false);
  Target t = resolve_target(c.target);
  std::optional<PausedMount> paused;
  if (!t.live_mount.empty() && c.pause) paused.emplace(t.live_mount);
  else if (!t.live_mount.empty())
    note("the branch is in use by the mount " + t.live_mount + ": listing it as it is now");
  Changes ch = collect_changes(t.branches);
  if (paused && !paused->release())
    throw Error("the pause of " + paused->mnt() + " ran out while its branch was read; diff again");
  std::vector<std::pair<std::string, char>> lines;
  for (auto& e : ch.entries)
    if (e.change) lines.push_back({"/" + e.change_path, e.change});
  std::sort(lines.begin(), lines.end());
  if (c.json_out) {
    json out = json::array();
    for (auto& [p, k] : lines) out.push_back({{"path", p}, {"change", std::string(1, k)}});
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    for (auto& [p, k] : lines) std::printf("%c %s\n", k, p.c_str());
  }
  return 0;
}

int commit_main(const std::vector<std::string>& args) {
  Cli c = parse(args, kCommitUsage, true);
  Target t = resolve_target(c.target);
  std::optional<PausedMount> paused;
  if (!t.live_mount.empty() && c.pause) {
    paused.emplace(t.live_mount);
  } else if (!t.live_mount.empty()) {
    std::fprintf(stderr,
                 "aufs-fuse-image: %s is in use by the live mount %s: a layer read while the "
                 "container runs can catch half-written files. Unmount it and commit the "
                 "branch (aufs-fuse-image commit %s ...), or use --pause.\n",
                 t.branches.rw.c_str(), t.live_mount.c_str(), t.branches.rw.c_str());
    return 1;
  }
  if (!t.have_image)
    throw Error("which image is below " + t.branches.rw + "? give --from LAYOUT[:TAG]");
  std::string layout = absolute(c.layout);
  note("reading " + t.branches.rw + " over " + count(t.branches.layers.size(), "layers"));
  Changes ch = collect_changes(t.branches);
  note("layer: " + count(ch.entries.size(), "entries") + ", " + count(ch.data_bytes, "bytes") +
       " of data, " + count(ch.renamed_dirs, "renamed directories") + ", " +
       count(ch.pseudo_links, "pseudo-linked names") + ", " +
       count(ch.conflicts, "name-and-whiteout pairs resolved"));

  init_layout(layout);
  std::string tmp = layout + "/blobs/sha256/.tmp-layer-" + std::to_string(::getpid());
  note(std::string("writing the layer (") + (c.zstd ? "zstd" : "gzip") + ")");
  LayerBlob blob;
  try {
    Progress progress(ch.data_bytes);
    blob = write_layer(ch.entries, tmp, c.zstd, progress);
    // The branch has been read: the container may write again.
    if (paused && !paused->release())
      throw Error("the pause of " + paused->mnt() + " ran out while its branch was read (" +
                  std::to_string(kPauseSeconds) + " s); the layer may hold half-written files");
    // Read back as a pull would be: the blob's digest and its tar's diff_id.
    note("verifying the layer " + blob.digest);
    verify_blob_file(tmp, blob.digest, blob.size);
    LayerStream stream(tmp);
    auto [compressed, uncompressed] = stream.finish();
    if ("sha256:" + compressed != blob.digest || "sha256:" + uncompressed != blob.diff_id)
      throw Error("the layer written does not read back as written");
    if (::rename(tmp.c_str(), blob_path(layout, blob.digest).c_str()) < 0)
      throw Error("rename " + tmp + ": " + std::strerror(errno));
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }

  note("copying " + count(t.image.layer_descs.size(), "parent layers") + " from " + t.layout);
  for (auto& d : t.image.layer_descs) copy_blob(t.layout, layout, d);
  // The parent's config carries over (entrypoint, env, ...): one more
  // diff_id and a history entry, as docker commit adds.
  json config = t.image.config;
  std::string created = created_time();
  config["created"] = created;
  config["rootfs"]["diff_ids"].push_back(blob.diff_id);
  json hist = {{"created", created}, {"created_by", "aufs-fuse-image commit"}};
  if (!c.message.empty()) hist["comment"] = c.message;
  if (!config.contains("history")) config["history"] = json::array();
  config["history"].push_back(hist);
  json config_desc = put_blob(layout, config.dump(), "application/vnd.oci.image.config.v1+json");
  json layers = json::array();
  for (auto& d : t.image.layer_descs) layers.push_back(d);
  layers.push_back({{"mediaType", blob.media_type}, {"digest", blob.digest}, {"size", blob.size}});
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"config", config_desc},
                   {"layers", layers}};
  json manifest_desc =
      put_blob(layout, manifest.dump(), "application/vnd.oci.image.manifest.v1+json");
  tag_manifest(layout, manifest_desc, c.tag);
  note("committed " + layout + ":" + c.tag + ": layer " + blob.digest + " (diff_id " +
       blob.diff_id + ")");
  std::printf("%s\n", manifest_desc["digest"].get<std::string>().c_str());
  return 0;
}

}  // namespace aufs_image
