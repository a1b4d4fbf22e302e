// aufs-fuse-image: mount an OCI image layout with aufs-fuse in one command.
//
//   aufs-fuse-image [OPTIONS] LAYOUT[:TAG] MOUNTPOINT
//
// Reads LAYOUT/index.json, picks the manifest tagged TAG (or the only one),
// verifies the manifest, config and layer blobs against their sha256
// digests and sizes and each layer's uncompressed tar against the config's
// rootfs.diff_ids, extracts every layer not yet in the content-addressed
// layer store (STORE/sha256/<hex>, one directory per layer digest, shared by
// all images) with libarchive, refusing entries that would land outside the
// layer directory, and mounts the layers as ro+wh branches (top layer first)
// under the rw branch given with --rw (without it the mount is read-only).
// Whiteouts (.wh.NAME) and opaque markers (.wh..wh..opq) are kept as they
// are in the layer: OCI and AUFS use the same names. The mount uses the OCI
// whiteout rule (ociwh: a whiteout hides only lower layers).
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef AUFS_FUSE_DAEMON
#define AUFS_FUSE_DAEMON "/usr/local/sbin/aufs-fuse"
#endif

namespace {

using json = nlohmann::json;

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const char* kUsage =
    "usage: aufs-fuse-image [OPTIONS] LAYOUT[:TAG] MOUNTPOINT\n"
    "Mounts the OCI image TAG of the image layout LAYOUT on MOUNTPOINT with aufs-fuse.\n"
    "  --rw DIR        writable branch on top (default: read-only mount)\n"
    "  --store DIR     layer store (default $AUFS_FUSE_LAYER_STORE or /var/lib/aufs-fuse/layers)\n"
    "  -o OPTS         more aufs-fuse options (e.g. allow_other,dev,suid)\n"
    "  --daemon PATH   the aufs-fuse binary (default $AUFS_FUSE_BIN or " AUFS_FUSE_DAEMON ")\n"
    "  --aufs-whiteouts a whiteout also hides its own layer's entry (default: OCI rule, ociwh)\n"
    "  -f              keep the daemon in the foreground\n"
    "  --extract-only  fill the layer store, print the branch list, mount nothing\n"
    "  -q              no progress messages\n"
    "  -h, --help      this text\n";

bool g_quiet = false;

void note(const std::string& s) {
  if (!g_quiet) std::fprintf(stderr, "aufs-fuse-image: %s\n", s.c_str());
}

// ---------------------------------------------------------------- digests

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) throw Error("sha256 init");
  }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* p, size_t n) { EVP_DigestUpdate(ctx_, p, n); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
      out += digits[md[i] >> 4];
      out += digits[md[i] & 15];
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

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
void verify_blob_file(const std::string& path, const std::string& digest, long long size) {
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
  }
  ::close(fd);
  if (h.hex() != digest_hex(digest)) throw Error("digest mismatch for layer " + digest);
  if (size >= 0 && total != size) throw Error("size mismatch for layer " + digest);
}

// ---------------------------------------------------------------- paths

void mkdir_p(const std::string& path, mode_t mode) {
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), mode) < 0 && errno != EEXIST)
      throw Error("mkdir " + cur + ": " + std::strerror(errno));
  }
}

void remove_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return;
  if (S_ISDIR(st.st_mode)) {
    ::chmod(path.c_str(), 0700);
    if (DIR* d = ::opendir(path.c_str())) {
      std::vector<std::string> names;
      while (auto* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
      }
      ::closedir(d);
      for (auto& n : names) remove_tree(path + "/" + n);
    }
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

std::string absolute(const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  char cwd[PATH_MAX];
  if (!::getcwd(cwd, sizeof cwd)) throw Error("getcwd");
  return std::string(cwd) + "/" + p;
}

// A member name of a layer, made relative and checked: no absolute path, no
// "..", nothing empty. "./a/b/" -> "a/b"; "." or "./" -> "" (the root).
std::optional<std::string> clean_member(const std::string& name, std::string& why) {
  if (name.empty()) {
    why = "empty name";
    return std::nullopt;
  }
  if (name[0] == '/') {
    why = "absolute path";
    return std::nullopt;
  }
  std::string out;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t c = name.find('/', pos);
    if (c == std::string::npos) c = name.size();
    std::string comp = name.substr(pos, c - pos);
    pos = c + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      why = "'..' component";
      return std::nullopt;
    }
    if (!out.empty()) out += "/";
    out += comp;
  }
  return out;
}

// ---------------------------------------------------------------- extraction

// The decompressed bytes of a layer blob, hashed on the way: sha256 of the
// blob as read (its digest) and of the uncompressed tar (its diff_id). A
// raw-format libarchive reader undoes any compression; the tar reader of
// extract_layer() reads from it, so the digests cover exactly the bytes
// that were extracted.
class LayerStream {
 public:
  explicit LayerStream(const std::string& blob) : blob_(blob) {
    fd_ = ::open(blob.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw Error("cannot open blob " + blob + ": " + std::strerror(errno));
    raw_ = archive_read_new();
    archive_read_support_filter_all(raw_);
    archive_read_support_format_raw(raw_);
    struct archive_entry* e = nullptr;
    if (archive_read_open(raw_, this, nullptr, &LayerStream::read_blob_cb, nullptr) != ARCHIVE_OK ||
        archive_read_next_header(raw_, &e) != ARCHIVE_OK)
      throw Error("cannot read layer " + blob + ": " + error());
  }
  ~LayerStream() {
    archive_read_free(raw_);
    ::close(fd_);
  }
  LayerStream(const LayerStream&) = delete;
  LayerStream& operator=(const LayerStream&) = delete;

  // For archive_read_open() of the tar reader: the next uncompressed bytes.
  static la_ssize_t read_tar_cb(struct archive* a, void* self, const void** buf) {
    auto* s = static_cast<LayerStream*>(self);
    la_ssize_t n = s->pull();
    if (n < 0) {
      archive_set_error(a, EIO, "decompressing %s: %s", s->blob_.c_str(), s->error().c_str());
      return -1;
    }
    *buf = s->buf_.data();
    return n;
  }

  // Reads what the tar reader left (the end-of-archive padding, or all of
  // it) and returns the hex digests of the blob and of its uncompressed
  // content.
  std::pair<std::string, std::string> finish() {
    la_ssize_t n;
    while ((n = pull()) > 0) {
    }
    if (n < 0) throw Error("decompressing " + blob_ + ": " + error());
    return {compressed_.hex(), uncompressed_.hex()};
  }

 private:
  la_ssize_t pull() {
    la_ssize_t n = archive_read_data(raw_, buf_.data(), buf_.size());
    if (n > 0) uncompressed_.update(buf_.data(), static_cast<size_t>(n));
    return n;
  }
  static la_ssize_t read_blob_cb(struct archive* a, void* self, const void** buf) {
    auto* s = static_cast<LayerStream*>(self);
    for (;;) {
      ssize_t n = ::read(s->fd_, s->in_.data(), s->in_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        archive_set_error(a, errno, "read %s", s->blob_.c_str());
        return -1;
      }
      s->compressed_.update(s->in_.data(), static_cast<size_t>(n));
      *buf = s->in_.data();
      return n;
    }
  }
  std::string error() const {
    const char* e = archive_error_string(raw_);
    return e ? e : "unknown error";
  }

  std::string blob_;
  int fd_ = -1;
  struct archive* raw_ = nullptr;
  std::vector<char> in_ = std::vector<char>(1 << 16);
  std::vector<char> buf_ = std::vector<char>(1 << 16);
  Sha256 compressed_, uncompressed_;
};

// Extracts the tar read from `stream` into `dir` (which must not exist).
// Every member is checked before it is written: absolute names, ".."
// components, hard links whose target is outside the layer, and paths
// through a symlink of the layer (libarchive's SECURE_SYMLINKS) are refused,
// and the whole layer fails. Returns the number of members.
long extract_layer(LayerStream& stream, const std::string& blob, const std::string& dir) {
  mkdir_p(dir, 0755);
  // Members are written relative to the layer directory, so libarchive's
  // checks for absolute names, ".." and symlinks apply to them as they are.
  int here = ::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (here < 0 || ::chdir(dir.c_str()) < 0) throw Error("cannot enter " + dir);
  struct Back {
    int fd;
    ~Back() {
      if (::fchdir(fd) < 0) std::perror("fchdir");
      ::close(fd);
    }
  } back{here};
  struct archive* in = archive_read_new();
  struct archive* out = archive_write_disk_new();
  // Already decompressed by `stream`.
  archive_read_support_format_tar(in);
  archive_read_support_format_gnutar(in);
  int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_ACL |
              ARCHIVE_EXTRACT_FFLAGS | ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
              ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;
  if (::geteuid() == 0) flags |= ARCHIVE_EXTRACT_OWNER;
  archive_write_disk_set_options(out, flags);
  archive_write_disk_set_standard_lookup(out);
  auto fail = [&](const std::string& msg) {
    archive_read_free(in);
    archive_write_free(out);
    throw Error(msg);
  };
  if (archive_read_open(in, &stream, nullptr, &LayerStream::read_tar_cb, nullptr) != ARCHIVE_OK)
    fail("cannot read layer " + blob + ": " + archive_error_string(in));
  long count = 0;
  // Directory times are set at the end: files written into a directory
  // later would change them again.
  struct archive_entry* e = nullptr;
  for (;;) {
    int r = archive_read_next_header(in, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) fail(std::string("layer ") + blob + ": " + archive_error_string(in));
    std::string why;
    const char* raw = archive_entry_pathname(e);
    std::string name = raw ? raw : "";
    auto rel = clean_member(name, why);
    if (!rel) fail("refusing layer member '" + name + "': " + why);
    if (const char* hl = archive_entry_hardlink(e)) {
      auto target = clean_member(hl, why);
      if (!target || target->empty())
        fail("refusing hard link '" + name + "' -> '" + hl + "': " + (why.empty() ? "root" : why));
      archive_entry_copy_hardlink(e, target->c_str());
    }
    // The layer's root directory ("./"): the layer directory itself.
    if (rel->empty()) continue;
    archive_entry_copy_pathname(e, rel->c_str());
    r = archive_write_header(out, e);
    if (r < ARCHIVE_WARN)
      fail("refusing layer member '" + name + "': " + archive_error_string(out));
    if (archive_entry_size(e) > 0 && archive_entry_filetype(e) == AE_IFREG) {
      const void* buf;
      size_t size;
      la_int64_t offset;
      for (;;) {
        r = archive_read_data_block(in, &buf, &size, &offset);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) fail(std::string("layer data: ") + archive_error_string(in));
        if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN)
          fail(std::string("write ") + name + ": " + archive_error_string(out));
      }
    }
    if (archive_write_finish_entry(out) < ARCHIVE_WARN)
      fail(std::string("finish ") + name + ": " + archive_error_string(out));
    ++count;
  }
  if (archive_write_close(out) < ARCHIVE_WARN)
    fail(std::string("close: ") + archive_error_string(out));
  archive_read_free(in);
  archive_write_free(out);
  return count;
}

// ---------------------------------------------------------------- image

struct Image {
  std::vector<std::string> layer_digests;  // bottom first
  std::vector<long long> layer_sizes;
  std::vector<std::string> diff_ids;  // sha256 of each layer's uncompressed tar
};

json pick_manifest(const std::string& layout, const json& index, const std::string& tag,
                   int depth) {
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
    // A nested index (or an untagged request): take the linux/amd64 entry,
    // else the only entry.
    for (auto& m : ms) {
      if (m.contains("platform") && m["platform"].value("os", "") == "linux" &&
          m["platform"].value("architecture", "") == "amd64")
        chosen = &m;
    }
    if (!chosen && ms.size() == 1) chosen = &ms[0];
    if (!chosen) throw Error("several manifests in " + layout + ": name a TAG");
  }
  std::string media = chosen->value("mediaType", "");
  json doc = json::parse(read_blob(layout, *chosen));
  if (media == "application/vnd.oci.image.index.v1+json" ||
      media == "application/vnd.docker.distribution.manifest.list.v2+json" ||
      (doc.contains("manifests") && !doc.contains("layers")))
    return pick_manifest(layout, doc, "", depth + 1);
  return doc;
}

Image load_image(const std::string& layout, const std::string& tag) {
  std::ifstream in(layout + "/oci-layout");
  if (!in) throw Error(layout + " is not an OCI image layout (no oci-layout file)");
  std::ifstream idx(layout + "/index.json");
  if (!idx) throw Error("cannot read " + layout + "/index.json");
  json index = json::parse(idx);
  json manifest = pick_manifest(layout, index, tag, 0);
  // The config is verified too (its digest is the image id); its
  // rootfs.diff_ids name each layer's uncompressed tar, in layer order.
  if (!manifest.contains("config")) throw Error("the manifest has no config");
  json config = json::parse(read_blob(layout, manifest["config"]));
  Image img;
  for (auto& l : manifest.at("layers")) {
    std::string media = l.value("mediaType", "");
    if (media.find("nondistributable") != std::string::npos && !l.contains("digest"))
      throw Error("foreign layer without digest");
    std::string d = l.at("digest").get<std::string>();
    digest_hex(d);
    img.layer_digests.push_back(d);
    img.layer_sizes.push_back(l.contains("size") ? l["size"].get<long long>() : -1);
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

std::string diff_id_mismatch(const std::string& digest, const std::string& actual,
                             const std::string& expected) {
  return "diff_id mismatch for layer " + digest + ": its uncompressed tar is " + actual +
         ", the image config says " + expected;
}

// STORE/diff_ids/<hex> holds the diff_id of the layer STORE/sha256/<hex>,
// written once the layer was verified, so that an image reusing the layer
// is checked against it without reading the blob again. "" if absent.
std::string read_diff_id_record(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

void write_diff_id_record(const std::string& path, const std::string& diff_id) {
  std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << diff_id << "\n";
    if (!out.flush()) throw Error("cannot write " + tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) < 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Error("rename " + tmp + ": " + std::strerror(e));
  }
}

// Makes sure the layer `digest` is in the store, its uncompressed content
// matching `diff_id`; returns its directory and whether it was extracted
// now.
std::pair<std::string, bool> ensure_layer(const std::string& layout, const std::string& store,
                                          const std::string& digest, long long size,
                                          const std::string& diff_id) {
  std::string hex = digest_hex(digest);
  std::string final_dir = store + "/sha256/" + hex;
  std::string record = store + "/diff_ids/" + hex;
  auto in_store = [&] {
    struct stat st;
    return ::lstat(final_dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  };
  if (in_store() && read_diff_id_record(record) == diff_id) return {final_dir, false};
  // One extraction at a time per store; the directory appears atomically
  // (rename) once complete, so a crash leaves only a temporary.
  std::string lock_path = store + "/.lock";
  int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) throw Error("cannot open " + lock_path + ": " + std::strerror(errno));
  ::flock(lock, LOCK_EX);
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock};
  std::string blob = layout + "/blobs/sha256/" + hex;
  if (in_store()) {
    std::string known = read_diff_id_record(record);
    if (known.empty()) {
      // Extracted before diff_ids were recorded: hash the blob once (the
      // record is a fact about the verified blob, whatever this config says).
      verify_blob_file(blob, digest, size);
      LayerStream stream(blob);
      auto [compressed, uncompressed] = stream.finish();
      if (compressed != hex) throw Error("digest mismatch for layer " + digest);
      known = "sha256:" + uncompressed;
      write_diff_id_record(record, known);
    }
    if (known != diff_id) throw Error(diff_id_mismatch(digest, known, diff_id));
    return {final_dir, false};
  }
  verify_blob_file(blob, digest, size);
  // Under the lock no other extraction runs: a temporary of this layer is
  // what a crashed run left.
  std::string prefix = ".tmp-" + hex + "-";
  if (DIR* d = ::opendir((store + "/sha256").c_str())) {
    std::vector<std::string> stale;
    while (auto* e = ::readdir(d))
      if (std::string(e->d_name).starts_with(prefix)) stale.push_back(e->d_name);
    ::closedir(d);
    for (auto& n : stale) remove_tree(store + "/sha256/" + n);
  }
  std::string tmp = store + "/sha256/" + prefix + std::to_string(::getpid());
  try {
    LayerStream stream(blob);
    long n = extract_layer(stream, blob, tmp);
    // Digests of exactly the bytes extracted (the blob could have changed
    // since verify_blob_file()).
    auto [compressed, uncompressed] = stream.finish();
    if (compressed != hex)
      throw Error("digest mismatch for layer " + digest + " (the blob changed while extracted)");
    if ("sha256:" + uncompressed != diff_id)
      throw Error(diff_id_mismatch(digest, "sha256:" + uncompressed, diff_id));
    write_diff_id_record(record, diff_id);
    ::fsync(lock);
    if (::rename(tmp.c_str(), final_dir.c_str()) < 0)
      throw Error("rename into the store: " + std::string(std::strerror(errno)));
    note("layer " + digest + ": extracted (" + std::to_string(n) + " entries, diff_id " +
         diff_id + " verified)");
  } catch (...) {
    remove_tree(tmp);
    throw;
  }
  return {final_dir, true};
}

std::string daemon_path(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* e = std::getenv("AUFS_FUSE_BIN"); e && *e) return e;
  if (::access(AUFS_FUSE_DAEMON, X_OK) == 0) return AUFS_FUSE_DAEMON;
  return "aufs-fuse";
}

std::string quote_branch(const std::string& path) {
  if (path.find(':') != std::string::npos || path.find('"') != std::string::npos)
    throw Error("branch path contains ':' or '\"': " + path);
  if (path.find(',') != std::string::npos) return "\"" + path + "\"";
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  std::string rw, store, extra, daemon, image, mnt;
  bool foreground = false, extract_only = false, oci_whiteouts = true;
  if (const char* s = std::getenv("AUFS_FUSE_LAYER_STORE"); s && *s) store = s;
  if (store.empty()) store = "/var/lib/aufs-fuse/layers";
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
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
  try {
    std::string layout = image, tag;
    size_t colon = image.rfind(':');
    if (colon != std::string::npos && image.find('/', colon) == std::string::npos) {
      layout = image.substr(0, colon);
      tag = image.substr(colon + 1);
    }
    layout = absolute(layout);
    store = absolute(store);
    Image img = load_image(layout, tag);
    mkdir_p(store + "/sha256", 0755);
    mkdir_p(store + "/diff_ids", 0755);
    int extracted = 0, reused = 0;
    std::vector<std::string> dirs;
    for (size_t i = 0; i < img.layer_digests.size(); ++i) {
      auto [dir, fresh] = ensure_layer(layout, store, img.layer_digests[i], img.layer_sizes[i],
                                       img.diff_ids[i]);
      dirs.push_back(dir);
      (fresh ? extracted : reused)++;
    }
    note("layers: " + std::to_string(extracted) + " extracted, " + std::to_string(reused) +
         " reused from " + store);
    std::string br;
    if (!rw.empty()) {
      rw = absolute(rw);
      mkdir_p(rw, 0755);
      br = quote_branch(rw) + "=rw";
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
  } catch (const json::exception& e) {
    std::fprintf(stderr, "aufs-fuse-image: malformed image metadata: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aufs-fuse-image: %s\n", e.what());
    return 1;
  }
}
