// SPDX-License-Identifier: GPL-2.0-or-later
// A layer blob read through libarchive's decompressors, hashed on the way.
#pragma once
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "image.hpp"
#include "progress.hpp"

namespace aufs_image {

// The decompressed bytes of a layer blob, hashed on the way: sha256 of the
// blob as read (its digest) and of the uncompressed tar (its diff_id). A
// raw-format libarchive reader undoes any compression; the tar reader of
// extract_layer() reads from it, so the digests cover exactly the bytes
// that were extracted.
class LayerStream {
 public:
  // The blob's bytes read go to `progress` when given.
  explicit LayerStream(const std::string& blob, Progress* progress = nullptr)
      : blob_(blob), progress_(progress) {
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
      if (s->progress_) s->progress_->add(n);
      *buf = s->in_.data();
      return n;
    }
  }
  std::string error() const {
    const char* e = archive_error_string(raw_);
    return e ? e : "unknown error";
  }

  std::string blob_;
  Progress* progress_;
  int fd_ = -1;
  struct archive* raw_ = nullptr;
  std::vector<char> in_ = std::vector<char>(1 << 16);
  std::vector<char> buf_ = std::vector<char>(1 << 16);
  Sha256 compressed_, uncompressed_;
};

}  // namespace aufs_image
