// SPDX-License-Identifier: GPL-2.0-or-later
// The changes of a writable branch against the image layers below it, as
// the entries of an OCI layer (the input of `diff` and `commit`).
#pragma once
#include <sys/stat.h>

#include <string>
#include <vector>

namespace aufs_image {

struct LayerEntry {
  enum class Kind { Node, Whiteout, Opaque };
  Kind kind = Kind::Node;
  std::string path;    // in the layer: "etc/passwd", "etc/.wh.motd", "srv/.wh..wh..opq"
  std::string source;  // Node: the file to read (a branch entry)
  struct stat st {};   // Node: lstat of source
  std::string link;    // Node: earlier layer path of the same inode (a tar hard link)
  // For `diff`: 'A' added, 'C' changed, 'D' deleted; 0 = not listed.
  char change = 0;
  std::string change_path;  // the path `diff` lists (the deleted name for 'D')
};

struct BranchSet {
  std::string rw;                   // the writable branch
  std::vector<std::string> layers;  // lower branches, top first, as mounted
  bool ociwh = true;                // a layer's whiteout hides only lower layers
};

struct Changes {
  std::vector<LayerEntry> entries;  // sorted by path; hard links resolved
  long long data_bytes = 0;         // bytes of file data to read
  long renamed_dirs = 0, pseudo_links = 0, conflicts = 0;
};

// Reads the writable branch and the layers (nothing is written). Throws
// Error for what cannot be expressed (a whiteout that is not a file).
Changes collect_changes(const BranchSet& b);

}  // namespace aufs_image
