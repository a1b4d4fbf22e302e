// Union objects known to the kernel, and the table that owns them.
//
// Lifetimes: the kernel holds `nlookup` references on a node (lookup, create,
// mkdir, link, readdirplus each add one, forget drops them). A node also
// stays in the table while child nodes point at it, so a child's path can
// always be rebuilt from parent pointers.
//
// Locks, outermost first: Union::tree_mu_ (names and parents of all nodes),
// InodeTable::mu_, Node::mu. None is held across a data copy other
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
struct FileHandle;
struct VDirCache;
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
  // Non-dirs: other names the node was reached by (hard links), tried when
  // its name is removed; each is checked before use. A few at most.
  std::vector<std::pair<std::shared_ptr<Node>, std::string>> other_names;
  // dirren, dirs: (branch id, path there) of each lower part found through
  // this directory's redirect record; a descendant's path on such a branch
  // is built from here (Union::path_on_locked).
  std::vector<std::pair<uint32_t, std::string>> redir;
  // dirren, dirs: ctime (ns) of the top copy when it was seen without a
  // redirect record (0: not known); spares a lookup the record check.
  std::atomic<int64_t> no_redir_ctime{0};

  // Guarded by mu.
  std::mutex mu;
  std::vector<int> layers;   // dirs: branch indices holding it, top first,
                             // cut at the opaque one; others: {top}
  std::string data_rel;      // non-dirs: path of the data on layers[0]
                             // (differs from the name path for pseudo-links)
  uint64_t data_gen = 0;     // bumped when the backing file changes
  uint64_t bgen = 0;         // branch-set generation layers refer to
  int opaque = -1;           // dirs: branch carrying .wh..wh..opq (cut)
  std::vector<int> watched;  // udba=notify: layers currently watched
  std::atomic<bool> watch_failed{false};  // udba=notify: some layer unwatched
  std::vector<FileHandle*> handles;  // open files, re-pointed at copy-up
  std::shared_ptr<const VDirCache> vdir;  // dirs: merged listing (rdcache)
  std::atomic<uint64_t> dir_gen{0};       // dirs: bumped by every change inside
  // Files: the backing file as the kernel's page cache last saw it. An open
  // that finds the same file unchanged keeps the cache (close-to-open).
  struct CacheStamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    struct timespec mtime {}, ctime{};
    bool operator==(const CacheStamp& o) const {
      return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
             mtime.tv_nsec == o.mtime.tv_nsec && ctime.tv_sec == o.ctime.tv_sec &&
             ctime.tv_nsec == o.ctime.tv_nsec;
    }
    static CacheStamp of(const struct stat& st) {
      return {st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
    }
  };
  CacheStamp cache_stamp;  // size -1: nothing cached yet

  bool is_dir() const { return (type & S_IFMT) == S_IFDIR; }
};

using NodePtr = std::shared_ptr<Node>;

// NodeIds are handed out once and never reused within a mount; st_ino is a
// separate, stable number (xino). An inode number maps to its current node
// ("incarnation"): when a branch inode is freed and its number reused, or an
// entry changes type behind the mount, a new node is made while the kernel
// may still hold the old one by its NodeId.
class InodeTable {
 public:
  InodeTable();
  // Registers a node created outside (the root).
  void insert(const NodePtr& n, uint64_t refs);
  NodePtr get(NodeId id) const;
  NodePtr by_ino(uint64_t ino) const;
  // The current node for `ino` if it has type `type`, else a new one; adds
  // `refs` lookup references under the shard lock.
  NodePtr find_or_insert(uint64_t ino, mode_t type, uint64_t refs);
  void add_ref(const NodePtr& n, uint64_t refs);
  // The node no longer stands for its inode number (its last name is gone):
  // later lookups of that number make a new node.
  void retire(const NodePtr& n);
  // Drops `n` references; returns the node if it is now removable (no
  // references): the caller erases it once it has no children either.
  NodePtr forget(NodeId id, uint64_t n);
  // Removes `id` if it has no references and no children.
  bool erase_if_unused(NodeId id, int children);
  size_t size() const;
  std::vector<NodePtr> all() const;
  // The id the next new node will get: nodes with smaller ids existed
  // before this call.
  NodeId next_id() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<NodeId, NodePtr> by_id_;      // guarded by mu_
  std::unordered_map<uint64_t, NodePtr> by_ino_;   // guarded by mu_
  NodeId next_id_ = 16;                            // guarded by mu_
};

}  // namespace aufs
