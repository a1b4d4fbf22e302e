// Union objects known to the kernel, and the table that owns them.
//
// Lifetimes: the kernel holds `nlookup` references on a node (lookup, create,
// mkdir, link, readdirplus each add one, forget drops them). A node also
// stays in the table while child nodes point at it, so a child's path can
// always be rebuilt from parent pointers. NodeIds equal the node's inode
// number (the root is FUSE id 1, inode 2), which keeps nodeid == st_ino.
//
// Locks, outermost first: Union::tree_mu_ (names and parents of all nodes),
// InodeTable shard mutex, Node::mu. None is held across a data copy other
// than Node::mu during that node's own copy-up, nor across a FUSE reply.
#pragma once
#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace aufs {

using NodeId = uint64_t;
inline constexpr NodeId kRootId = 1;

struct Node {
  Node(NodeId i, uint64_t in, mode_t t) : id(i), ino(in), type(t) {}
  const NodeId id;
  const uint64_t ino;
  const mode_t type;  // S_IFMT bits, fixed for the node's life

  std::atomic<uint64_t> nlookup{0};
  std::atomic<int> open_count{0};

  // Guarded by Union::tree_mu_.
  std::shared_ptr<Node> parent;
  std::string name;
  bool unlinked = false;
  int children = 0;  // live nodes whose parent is this one

  // Guarded by mu.
  std::mutex mu;
  std::vector<int> layers;   // dirs: branch indices holding it, top first,
                             // cut at the opaque one; others: {top}
  std::string data_rel;      // non-dirs: path of the data on layers[0]
                             // (differs from the name path for pseudo-links)
  uint64_t data_gen = 0;     // bumped when the backing file changes
  uint64_t bgen = 0;         // branch-set generation layers refer to
  std::vector<int> watched;  // udba=notify: layers currently watched

  bool is_dir() const { return (type & S_IFMT) == S_IFDIR; }
};

using NodePtr = std::shared_ptr<Node>;

class InodeTable {
 public:
  NodePtr get(NodeId id) const;
  // Returns the existing node for `id` or inserts `fresh`. Adds `refs`
  // lookup references to the returned node under the shard lock.
  NodePtr find_or_insert(NodeId id, const NodePtr& fresh, uint64_t refs);
  void add_ref(const NodePtr& n, uint64_t refs);
  // Drops `n` references; returns the node if it is now removable (no
  // references and no children): the caller unlinks it from its parent.
  NodePtr forget(NodeId id, uint64_t n);
  // Removes `id` if it has no references and no children.
  bool erase_if_unused(NodeId id, int children);
  size_t size() const;
  std::vector<NodePtr> all() const;

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<NodeId, NodePtr> map;
  };
  Shard& shard(NodeId id) const { return shards_[id % kShards]; }
  mutable Shard shards_[kShards];
};

}  // namespace aufs
