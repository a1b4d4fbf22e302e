// SPDX-License-Identifier: GPL-2.0-or-later
// Name resolution (overlayfs's namei.c): which branches hold a name, its
// whiteouts and opaque markers, dirren redirects, and where a cached node
// lives now.
#pragma once
#include <sys/stat.h>

#include <string>
#include <string_view>
#include <vector>

#include "aufs_fuse/creds.hpp"
#include "aufs_fuse/vdir.hpp"
#include "core/mount.hpp"
#include "core/part_cache.hpp"

namespace aufs::core {

struct Hit {
  int branch;
  struct stat st;
  uint64_t ino;             // union inode number of this branch entry
  std::string path;         // of the entry on its branch (dirren only)
  bool redirected = false;  // found through a dirren record
};

struct Resolution {
  std::vector<Hit> hits;      // top first; dirs: every merged layer
  bool whiteout = false;      // search stopped at a whiteout
  int whiteout_branch = -1;
  int opaque_branch = -1;     // dirs: layer carrying .wh..wh..opq
  bool lower_exists = false;  // some entry below the top hit (full scan)
  bool positive() const { return !hits.empty(); }
};

// A resolved node: its path and layers.
struct Where {
  std::string rel;
  std::vector<int> layers;
  std::string data_rel;  // path on layers[0]
  int opaque = -1;       // dirs: branch of its opaque marker
  // dirren only: the path on each layer (a renamed directory's lower parts
  // keep their old paths); empty means rel on every layer.
  std::vector<std::string> paths;
  const std::string& at(size_t i) const { return paths.empty() ? rel : paths[i]; }  // by index
  const std::string& on(int b) const {  // by branch
    for (size_t i = 0; i < paths.size(); ++i)
      if (layers[i] == b) return paths[i];
    return rel;
  }
};

// The parent opened on each of its layers, for resolve_child calls.
struct OpenedParent {
  std::vector<std::shared_ptr<const PartFd>> fds;  // per index of Where::layers
  std::vector<int> errs;                           // errno of a failed open, else 0
  // Read-only layers: the names there, where a valid set is cached.
  std::vector<std::shared_ptr<const NameSet>> names;
};
// Opened for this request only.
OpenedParent open_parent(const BranchSet& bs, const Where& parent);
// From directory n's cached parts (part_cache.hpp), opening, checking or
// reading what is missing or too old. Cached parts are trusted until a
// watch reports a change (udba=notify), forever (udba=none), or for the
// cache window (udba=reval, and directories no watch covers); a branch
// directory moved or removed behind the mount's back is found again at its
// path after that.
OpenedParent parent_parts(Mount& m, const BranchSet& bs, const NodePtr& n, const Where& w);
// Drops n's name sets (a watch saw a change in it): the set of the part on
// branch brid, or every set (brid UINT32_MAX); with `all`, every part's fd too.
void forget_parts(const NodePtr& n, bool all, uint32_t brid = UINT32_MAX);

// Within its scope on this thread, an entry and its whiteout both on a
// writable branch are not reported. For udba=notify's resolutions: they
// run while the daemon's own operations are between their steps (an entry
// made, its whiteout not yet gone), which the kernel's requests never see
// (the kernel holds the directory's lock for the operation).
class QuietMidOperation {
 public:
  QuietMidOperation();
  ~QuietMidOperation();
  QuietMidOperation(const QuietMidOperation&) = delete;
  QuietMidOperation& operator=(const QuietMidOperation&) = delete;

 private:
  bool was_;
};

// Looks `name` up in every layer of `parent`, top first. full: go on below
// a non-directory (lower_exists). perm (nodirperm1): the caller must be
// allowed to search every layer's copy of the parent.
Result<Resolution> resolve_child(Mount& m, const BranchSet& bs, const Where& parent,
                                 std::string_view name, bool full, const Ctx* perm = nullptr,
                                 const OpenedParent* opened = nullptr);
Result<std::vector<int>> root_layers(const BranchSet& bs);
// The Where of a resolved name (rel: its union path).
Where where_of(const Mount& m, const Resolution& r, const std::string& rel);
// dirren: remembers the redirected layers of a resolved directory.
void set_redirects(Mount& m, const BranchSet& bs, const NodePtr& n, const Resolution& r);
// Node c (resolved as r, at w) takes the layers found: as after a branch
// change, without walking from the root.
void adopt_resolution(Mount& m, const BranchSet& bs, const NodePtr& c, const Resolution& r,
                      const Where& w);
// Where node n lives (refreshed after a branch change).
Result<Where> where(Mount& m, const BranchSet& bs, const NodePtr& n);
Result<Where> parent_where(Mount& m, const BranchSet& bs, const NodePtr& n);
// Is st (found on branch b at the node's path) the node's own entry?
bool is_node_entry(const Mount& m, const BranchSet& bs, const NodePtr& n, int b,
                   const struct stat& st);
// A name of a directory, resolved for a request.
struct NameInDir {
  NodePtr parent;
  BranchSetPtr bs;  // the branches it was resolved on
  Where pw;         // the parent's
  Resolution r;     // the name's
};
// check_name, the parent node (ESTALE; ENOTDIR if no directory), its Where
// and the name's resolution (full: as resolve_child).
Result<NameInDir> resolve_in(Mount& m, NodeId parent, std::string_view name, bool full);

// overlayfs format (branch attribute ovl): a whiteout is a character device
// 0:0; an opaque directory carries trusted. or user.overlay.opaque = "y".
bool ovl_whiteout(const struct stat& st);
bool ovl_opaque(int dirfd, const std::string& name);

// Is `name` present (not whited out) in a branch of the parent below `top`?
bool name_below(const BranchSet& bs, const Where& parent, const std::string& name, int top);
// The merged listing. stamps (optional): mtime of every listed branch copy.
// node (optional): the directory's node, whose cached parts are used and
// whose read-only parts keep the names read.
Result<std::vector<VEntry>> list_dir(Mount& m, const BranchSet& bs, const Where& w,
                                     std::vector<struct timespec>* stamps = nullptr,
                                     const NodePtr* node = nullptr);

}  // namespace aufs::core
