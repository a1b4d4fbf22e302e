// SPDX-License-Identifier: GPL-2.0-or-later
// The node tree: which union objects the kernel knows, their names and
// parents (go-fuse's inode tree; overlayfs keeps this in the dcache). Only
// this module reads or writes Node::parent, name, children and unlinked,
// and Node::Extra's other_names and redir.
//
// Lock order, outermost first (every lock of the core; a lock may be taken
// while holding only locks above it):
//   1. Mount::change_mu        one branch change at a time (branches.cpp)
//   2. ListingCache::mu_       the rdcache's FIFO (listing_cache.cpp)
//   3. Node::mu                one node's layers, data and Extra state; two
//                              nodes' locks are never held together
//   4. FileHandle::mu          one open file's fd (handles.cpp, file.cpp)
//   5. OpenFiles::mu_          open-file counts per branch (handles.cpp)
//   6. NodeTree::mu_           names and parents of all nodes (this file)
//   7. InodeTable::mu_, BranchWatcher::mu_   taken inside NodeTree::mu_
// Leaves (nothing is taken inside them): PartCache::mu_, Mount::branches_mu_,
// Mount::policy_mu, Mount::nlink_mu, Reaper::mu_, Xino's lock, DirHandle::mu (the adapter's,
// never held across a call into the core).
// None is held across a FUSE reply, nor across a data copy other than
// Node::mu during that node's own copy-up.
//
// A `_locked` suffix means: the caller holds NodeTree::mu_.
#pragma once
#include <atomic>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "aufs_fuse/node.hpp"
#include "aufs_fuse/notify.hpp"
#include "aufs_fuse/xino.hpp"

namespace aufs::core {

using Redirects = std::vector<std::pair<uint32_t, std::string>>;  // (branch id, path)

class NodeTree {
 public:
  NodeTree();
  InodeTable table;  // owns the nodes (its own lock)
  NodePtr root;
  // udba=notify: stops watching directories that leave the tree.
  void set_watcher(BranchWatcher* w) { watcher_ = w; }

  NodePtr node(NodeId id) const;

  // The node's union path ("" for the root).
  std::string rel_path(const Node& n) const;
  // Its path unless its name was removed (a directory keeps its last path).
  std::optional<std::string> live_path(const Node& n) const;
  // dirren: the node's path on branch `brid` (its redirect there, else its
  // parent's path plus its name), for each of brids.
  std::vector<std::string> paths_on(const Node& n, const std::vector<uint32_t>& brids) const;

  struct Naming {
    NodePtr parent;
    std::string name;
    bool unlinked = false;
  };
  Naming naming(const Node& n) const;
  bool is_unlinked(const Node& n) const;
  NodePtr parent(const Node& n) const;
  // The parent, or null once the node's name is removed.
  NodePtr live_parent(const Node& n) const;
  // The node and its ancestors below the root, root side first, or nullopt
  // if the node's name was removed.
  std::optional<std::vector<NodePtr>> chain(const NodePtr& n) const;
  // Known under another name, or as removed.
  bool placed_elsewhere(const Node& n, const NodePtr& parent, std::string_view name) const;
  bool placed_at(const Node& n, const NodePtr& parent, std::string_view name) const;
  uint64_t parent_ino(const Node& n) const;
  // (node, parent, name) of every cached named node.
  std::vector<std::tuple<NodeId, NodeId, std::string>> cached_names() const;

  // Names the node (parent, name). keep_old: its current name stays one of
  // its names (a hard link looked up under another name). redir: the
  // directory's new dirren redirects, set with the name.
  void set_parent(const NodePtr& n, const NodePtr& parent, std::string_view name,
                  bool keep_old = false, const Redirects* redir = nullptr);
  void set_redirects(const NodePtr& n, Redirects redir);
  // A hard link made through the mount: (parent, name) is another name.
  void add_name(const NodePtr& n, const NodePtr& parent, const std::string& name);
  void set_unlinked(const NodePtr& n);
  // The name (parent, name) was removed: for a non-directory with other
  // links, returns the node's other names to move it to (it stays named
  // until move_or_unlink); otherwise marks the node removed if it was there.
  std::vector<std::pair<NodePtr, std::string>> remove_name(const NodePtr& n, const NodePtr& parent,
                                                           const std::string& name,
                                                           bool other_links);
  void unlink_if_at(const NodePtr& n, const NodePtr& parent, const std::string& name);

  // Drops `count` kernel references; frees the node and unused ancestors.
  void forget(NodeId id, uint64_t count);

 private:
  std::string rel_path_locked(const Node& n) const;
  std::string path_on_locked(const Node& n, uint32_t brid) const;
  void add_other_name_locked(Node& n, const NodePtr& parent, const std::string& name);
  void detach(const NodePtr& n);

  mutable std::shared_mutex mu_;
  BranchWatcher* watcher_ = nullptr;
  std::atomic<uint64_t> erased_{0}, trimmed_at_{0};  // nodes freed; at the last trim
};

}  // namespace aufs::core
