// SPDX-License-Identifier: GPL-2.0-or-later
// A layer blob written from layer entries (see layer_writer.cpp).
#pragma once
#include <string>
#include <vector>

#include "changes.hpp"
#include "progress.hpp"

namespace aufs_image {

struct LayerBlob {
  std::string digest;   // sha256 of the compressed blob
  std::string diff_id;  // sha256 of the tar
  long long size = 0;
  std::string media_type;
};

// Writes the compressed layer to tmp_path (gzip, or zstd).
LayerBlob write_layer(const std::vector<LayerEntry>& entries, const std::string& tmp_path,
                      bool zstd, Progress& progress);

}  // namespace aufs_image
