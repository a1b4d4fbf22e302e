// SPDX-License-Identifier: GPL-2.0-or-later
// aufs-fuse-image: what the parts of the tool share (errors, messages,
// sha256, OCI image layouts, the layer store, paths).
#pragma once
#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <openssl/evp.h>

namespace aufs_image {

using json = nlohmann::json;

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

extern bool g_quiet;
// The platform a multi-platform index is read for: "OS/ARCH[/VARIANT]",
// the host's unless --platform names another.
extern std::string g_platform;
std::string host_platform();
// A progress message on stderr (not with -q).
void note(const std::string& s);

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

// "sha256:<64 hex>" -> hex; anything else is refused.
std::string digest_hex(const std::string& digest);
// Reads a blob of the layout whole, checking its digest and size.
std::string read_blob(const std::string& layout, const json& desc);
class Progress;
// Checks a (possibly large) blob file against its digest and size by
// streaming; the bytes read go to `progress` when given.
void verify_blob_file(const std::string& path, const std::string& digest, long long size,
                      Progress* progress = nullptr);

// ---------------------------------------------------------------- paths

void mkdir_p(const std::string& path, mode_t mode);
void remove_tree(const std::string& path);
// Sorted names of a directory (no "." or ".."); nullopt if unreadable.
std::optional<std::vector<std::string>> list_names(const std::string& dir);
// Writes a file whole under a temporary name, then renames it into place.
void write_file_atomic(const std::string& path, const std::string& data);
std::string absolute(const std::string& p);
// A member name of a layer, made relative and checked: no absolute path, no
// "..", nothing empty. "./a/b/" -> "a/b"; "." or "./" -> "" (the root).
std::optional<std::string> clean_member(const std::string& name, std::string& why);

// ---------------------------------------------------------------- image

struct Image {
  std::vector<std::string> layer_digests;  // bottom first
  std::vector<long long> layer_sizes;
  std::vector<std::string> diff_ids;  // sha256 of each layer's uncompressed tar
  std::vector<json> layer_descs;      // the manifest's layer descriptors
  json manifest, config;              // verified
  std::string manifest_digest;
};

// The manifest tagged `tag` of an index (its descriptor in *desc).
json pick_manifest(const std::string& layout, const json& index, const std::string& tag,
                   int depth, json* desc = nullptr);
Image load_image(const std::string& layout, const std::string& tag);
// The image whose manifest is the blob `digest` of the layout.
Image load_image_digest(const std::string& layout, const std::string& digest);
Image image_of_manifest(const std::string& layout, const json& manifest,
                        const std::string& digest);
// "LAYOUT[:TAG]" -> (absolute layout, tag).
std::pair<std::string, std::string> split_image_ref(const std::string& ref);

// ---------------------------------------------------------------- store

// The store's lock (STORE/.lock): held by an extraction, by the record of
// an image's use, and by gc for its whole run.
class StoreLock {
 public:
  explicit StoreLock(const std::string& store);
  ~StoreLock();
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// STORE/images/<key>.json: an image whose layers the store holds (its
// layout and manifest digest), written by ensure_image_layers() once the
// layers are in; `ls` and `gc` read them.

std::string diff_id_mismatch(const std::string& digest, const std::string& actual,
                             const std::string& expected);
std::string read_diff_id_record(const std::string& path);
void write_diff_id_record(const std::string& path, const std::string& diff_id);
// Makes sure the layer `digest` is in the store, its uncompressed content
// matching `diff_id`; returns its directory and whether it was extracted now.
std::pair<std::string, bool> ensure_layer(const std::string& layout, const std::string& store,
                                          const std::string& digest, long long size,
                                          const std::string& diff_id);
// All layers of an image in the store (extracted where missing); their
// directories, bottom first.
std::vector<std::string> ensure_image_layers(const std::string& layout, const std::string& store,
                                             const Image& img);

// ---------------------------------------------------------------- mount

// `aufs-fuse-image [OPTIONS] LAYOUT[:TAG] MOUNTPOINT` (argv without the
// program name); returns the exit status (or execs the daemon).
int mount_main(const std::vector<std::string>& args);
// The default layer store ($AUFS_FUSE_LAYER_STORE or /var/lib/aufs-fuse/layers).
std::string default_store();
// RW.aufs-fuse-image.json, next to the rw branch (not in it: the branch is
// the layer): which image and store a container's rw branch was mounted
// over. Written by the mount, read by diff and commit.
std::string container_record_path(const std::string& rw);
std::string daemon_path(const std::string& given);

// ---------------------------------------------------------------- diff, commit

int diff_main(const std::vector<std::string>& args);
int commit_main(const std::vector<std::string>& args);

// ---------------------------------------------------------------- ls, gc

int ls_main(const std::vector<std::string>& args);
int gc_main(const std::vector<std::string>& args);

}  // namespace aufs_image
