// SPDX-License-Identifier: GPL-2.0-or-later
// The content-addressed layer store: STORE/sha256/<hex> per layer blob,
// extracted once with libarchive and verified against its diff_id.
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "image.hpp"
#include "layer_stream.hpp"
#include "progress.hpp"

namespace aufs_image {
namespace {

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

}  // namespace

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
  write_file_atomic(path, diff_id + "\n");
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
  StoreLock lock(store);
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
  // On a terminal, a bar of the blob's bytes: read once to verify, once
  // to extract.
  struct stat bst;
  long long blob_bytes = size >= 0 ? size : ::stat(blob.c_str(), &bst) == 0 ? bst.st_size : 0;
  Progress progress(2 * blob_bytes, "layer " + digest.substr(0, 19));
  verify_blob_file(blob, digest, size, &progress);
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
    LayerStream stream(blob, &progress);
    long n = extract_layer(stream, blob, tmp);
    // Digests of exactly the bytes extracted (the blob could have changed
    // since verify_blob_file()).
    auto [compressed, uncompressed] = stream.finish();
    if (compressed != hex)
      throw Error("digest mismatch for layer " + digest + " (the blob changed while extracted)");
    if ("sha256:" + uncompressed != diff_id)
      throw Error(diff_id_mismatch(digest, "sha256:" + uncompressed, diff_id));
    write_diff_id_record(record, diff_id);
    ::fsync(lock.fd());
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

StoreLock::StoreLock(const std::string& store) {
  std::string path = store + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) throw Error("cannot open " + path + ": " + std::strerror(errno));
  while (::flock(fd_, LOCK_EX) < 0 && errno == EINTR) {
  }
}

StoreLock::~StoreLock() { ::close(fd_); }

// Records the image (see record_image_use) if all its layers are still in
// the store; false if gc removed one since they were looked for.
bool record_image_use(const std::string& store, const std::string& layout, const Image& img,
                      const std::vector<std::string>& dirs) {
  mkdir_p(store + "/images", 0755);
  // One record per (layout, manifest): the same image in two layouts is
  // two uses, either keeps its layers.
  Sha256 key;
  std::string id = layout + "\n" + img.manifest_digest;
  key.update(id.data(), id.size());
  json rec = {{"layout", layout}, {"manifest", img.manifest_digest}, {"layers", img.layer_digests}};
  // Under the lock gc is not running: it has finished (the layers are
  // checked here) or starts later and sees the record.
  StoreLock lock(store);
  for (auto& d : dirs) {
    struct stat st;
    if (::lstat(d.c_str(), &st) != 0) return false;
  }
  std::string path = store + "/images/" + key.hex() + ".json", text = rec.dump(2) + "\n";
  // Reusing an image leaves the store as it was.
  std::ifstream old(path);
  std::string have((std::istreambuf_iterator<char>(old)), std::istreambuf_iterator<char>());
  if (have != text) write_file_atomic(path, text);
  return true;
}

std::vector<std::string> ensure_image_layers(const std::string& layout, const std::string& store,
                                             const Image& img) {
  mkdir_p(store + "/sha256", 0755);
  mkdir_p(store + "/diff_ids", 0755);
  int extracted = 0, reused = 0;
  std::vector<std::string> dirs;
  // An image is recorded once all its layers are in (a refused image
  // leaves no record); a gc in between makes the layers be looked for again.
  for (int attempt = 0; attempt < 3; ++attempt) {
    dirs.clear();
    for (size_t i = 0; i < img.layer_digests.size(); ++i) {
      auto [dir, fresh] = ensure_layer(layout, store, img.layer_digests[i], img.layer_sizes[i],
                                       img.diff_ids[i]);
      dirs.push_back(dir);
      (fresh ? extracted : reused)++;
    }
    if (record_image_use(store, layout, img, dirs)) {
      note("layers: " + std::to_string(extracted) + " extracted, " + std::to_string(reused) +
           " reused from " + store);
      return dirs;
    }
  }
  throw Error("the layers of " + img.manifest_digest + " keep being removed from " + store +
              " (gc running?)");
}

}  // namespace aufs_image
