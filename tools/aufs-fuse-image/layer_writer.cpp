// SPDX-License-Identifier: GPL-2.0-or-later
// Writes layer entries as a reproducible tar (PAX, sorted, no atime,
// ctime, user or group names; whiteouts with fixed headers), compressed on
// the fly, streaming: file data goes through a fixed buffer, and the
// digests of the tar (diff_id) and of the blob are computed on the way.
#include "layer_writer.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "image.hpp"

namespace aufs_image {
namespace {

// Internal attributes of aufs-fuse (the inode number of a copy-up).
bool internal_xattr(const std::string& name) {
  return name.starts_with("trusted.aufs-fuse.") || name.starts_with("user.aufs-fuse.");
}

std::vector<std::pair<std::string, std::string>> xattrs_of(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
  if (n <= 0) return out;
  std::string names(static_cast<size_t>(n), '\0');
  n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n <= 0) return out;
  names.resize(static_cast<size_t>(n));
  for (size_t pos = 0; pos < names.size();) {
    std::string name = names.c_str() + pos;
    pos += name.size() + 1;
    if (name.empty() || internal_xattr(name)) continue;
    ssize_t v = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (v < 0) continue;
    std::string value(static_cast<size_t>(v), '\0');
    v = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (v < 0) continue;
    value.resize(static_cast<size_t>(v));
    out.push_back({name, value});
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct Sink {
  int fd = -1;
  std::string path;
  Sha256 blob, tar;
  long long blob_size = 0;
  struct archive* comp = nullptr;  // raw format + compression filter
  int error = 0;
};

la_ssize_t blob_cb(struct archive* a, void* self, const void* buf, size_t n) {
  auto* s = static_cast<Sink*>(self);
  const char* p = static_cast<const char*>(buf);
  for (size_t done = 0; done < n;) {
    ssize_t w = ::write(s->fd, p + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      archive_set_error(a, errno, "write %s", s->path.c_str());
      return -1;
    }
    done += static_cast<size_t>(w);
  }
  s->blob.update(buf, n);
  s->blob_size += static_cast<long long>(n);
  return static_cast<la_ssize_t>(n);
}

la_ssize_t tar_cb(struct archive* a, void* self, const void* buf, size_t n) {
  auto* s = static_cast<Sink*>(self);
  s->tar.update(buf, n);
  if (archive_write_data(s->comp, buf, n) < 0) {
    archive_set_error(a, EIO, "compress: %s", archive_error_string(s->comp));
    return -1;
  }
  return static_cast<la_ssize_t>(n);
}

std::string err_of(struct archive* a) {
  const char* e = archive_error_string(a);
  return e ? e : "unknown error";
}

// The header of one entry; nullptr-free: the caller frees it.
struct archive_entry* header_of(const LayerEntry& le) {
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, le.path.c_str());
  if (le.kind != LayerEntry::Kind::Node) {
    // Markers: an empty file with fixed attributes (their own are not
    // content, and the times differ between otherwise equal branches).
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 0);
    archive_entry_set_mtime(e, 0, 0);
    return e;
  }
  const struct stat& st = le.st;
  archive_entry_set_uid(e, st.st_uid);
  archive_entry_set_gid(e, st.st_gid);
  archive_entry_set_mode(e, st.st_mode);
  archive_entry_set_mtime(e, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  for (auto& [name, value] : xattrs_of(le.source))
    archive_entry_xattr_add_entry(e, name.c_str(), value.data(), value.size());
  if (!le.link.empty()) {
    archive_entry_set_hardlink(e, le.link.c_str());
    archive_entry_set_size(e, 0);
    return e;
  }
  if (S_ISREG(st.st_mode)) archive_entry_set_size(e, st.st_size);
  if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    ssize_t n = ::readlink(le.source.c_str(), target.data(), target.size());
    if (n < 0 || static_cast<size_t>(n) >= target.size())
      throw Error("readlink " + le.source + " failed or it changed while read");
    target.resize(static_cast<size_t>(n));
    archive_entry_set_symlink(e, target.c_str());
  }
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) archive_entry_set_rdev(e, st.st_rdev);
  return e;
}

}  // namespace

LayerBlob write_layer(const std::vector<LayerEntry>& entries, const std::string& tmp_path,
                      bool zstd, Progress& progress) {
  Sink s;
  s.path = tmp_path;
  s.fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (s.fd < 0) throw Error("cannot create " + tmp_path + ": " + std::strerror(errno));
  s.comp = archive_write_new();
  struct archive* tar = archive_write_new();
  struct Free {
    Sink& s;
    struct archive* tar;
    ~Free() {
      archive_write_free(tar);
      archive_write_free(s.comp);
      ::close(s.fd);
    }
  } free_all{s, tar};
  archive_write_set_format_raw(s.comp);
  if (zstd) {
    if (archive_write_add_filter_zstd(s.comp) != ARCHIVE_OK)
      throw Error("zstd compression: " + err_of(s.comp));
  } else {
    if (archive_write_add_filter_gzip(s.comp) != ARCHIVE_OK)
      throw Error("gzip compression: " + err_of(s.comp));
    // No time in the gzip header: the same tar gives the same blob.
    archive_write_set_filter_option(s.comp, "gzip", "timestamp", nullptr);
  }
  // No zero padding after the compressed stream.
  archive_write_set_bytes_in_last_block(s.comp, 1);
  if (archive_write_open(s.comp, &s, nullptr, blob_cb, nullptr) != ARCHIVE_OK)
    throw Error("open " + tmp_path + ": " + err_of(s.comp));
  {
    struct archive_entry* raw = archive_entry_new();
    archive_entry_set_pathname(raw, "layer.tar");
    archive_entry_set_filetype(raw, AE_IFREG);
    int r = archive_write_header(s.comp, raw);
    archive_entry_free(raw);
    if (r != ARCHIVE_OK) throw Error("compressor: " + err_of(s.comp));
  }
  archive_write_set_format_pax_restricted(tar);
  if (archive_write_open(tar, &s, nullptr, tar_cb, nullptr) != ARCHIVE_OK)
    throw Error("tar: " + err_of(tar));
  std::vector<char> buf(1 << 20);
  for (auto& le : entries) {
    struct archive_entry* e = header_of(le);
    int r = archive_write_header(tar, e);
    archive_entry_free(e);
    if (r < ARCHIVE_WARN) throw Error("tar header of " + le.path + ": " + err_of(tar));
    bool data = le.kind == LayerEntry::Kind::Node && le.link.empty() && S_ISREG(le.st.st_mode);
    if (!data || le.st.st_size == 0) continue;
    int fd = ::open(le.source.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throw Error("cannot open " + le.source + ": " + std::strerror(errno));
    long long left = le.st.st_size;
    while (left > 0) {
      ssize_t n = ::read(fd, buf.data(), std::min<long long>(left, buf.size()));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(fd);
        throw Error(le.source + " changed while read (shorter than its size)");
      }
      if (archive_write_data(tar, buf.data(), static_cast<size_t>(n)) != n) {
        ::close(fd);
        throw Error("tar data of " + le.path + ": " + err_of(tar));
      }
      left -= n;
      progress.add(n);
    }
    ::close(fd);
  }
  if (archive_write_close(tar) != ARCHIVE_OK) throw Error("tar: " + err_of(tar));
  if (archive_write_close(s.comp) != ARCHIVE_OK) throw Error("compressor: " + err_of(s.comp));
  if (::fsync(s.fd) < 0) throw Error("fsync " + tmp_path + ": " + std::strerror(errno));
  LayerBlob out;
  out.digest = "sha256:" + s.blob.hex();
  out.diff_id = "sha256:" + s.tar.hex();
  out.size = s.blob_size;
  out.media_type = zstd ? "application/vnd.oci.image.layer.v1.tar+zstd"
                        : "application/vnd.oci.image.layer.v1.tar+gzip";
  return out;
}

}  // namespace aufs_image
