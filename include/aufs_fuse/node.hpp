// SPDX-License-Identifier: GPL-2.0-or-later
// Union objects known to the kernel, and the table that owns them.
//
// Lifetimes: the kernel holds `nlookup` references on a node (lookup, create,
// mkdir, link, readdirplus each add one, forget drops them). A node also
// stays in the table while child nodes point at it, so a child's path can
// always be rebuilt from parent pointers.
//
// Locks: Node::mu guards a node's layers and Extra state; its names and
// parents belong to the core's NodeTree (src/core/tree.hpp, which gives the
// lock order of the whole core).
#pragma once
#include <sys/stat.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "aufs_fuse/small_mutex.hpp"

namespace aufs {

using NodeId = uint64_t;
struct FileHandle;
struct Orphan;
struct VDirCache;
namespace core {
struct DirParts;
}
inline constexpr NodeId kRootId = 1;

// A string that is nearly always empty: 8 bytes in place of 32.
class RareString {
 public:
  bool empty() const { return !p_; }
  void clear() { p_.reset(); }
  RareString& operator=(std::string s) {
    if (s.empty()) p_.reset();
    else p_ = std::make_unique<std::string>(std::move(s));
    return *this;
  }
  const std::string& str() const { return p_ ? *p_ : none(); }
  operator const std::string&() const { return str(); }
  bool operator==(const std::string& o) const { return str() == o; }

 private:
  static const std::string& none() {
    static const std::string empty;
    return empty;
  }
  std::unique_ptr<std::string> p_;
};

// Branch indices of a node, top first. Up to three are kept in place (a
// file has one), more on the heap: 16 bytes, where a vector takes 24 plus a
// 32-byte allocation for a single index.
class LayerList {
 public:
  LayerList() = default;
  LayerList(std::initializer_list<int> l) { assign(l.begin(), l.size()); }
  LayerList(const std::vector<int>& v) { assign(v.data(), v.size()); }
  LayerList(const LayerList& o) { assign(o.begin(), o.size()); }
  LayerList(LayerList&& o) noexcept : size_(o.size_) {
    std::memcpy(inl_, o.inl_, sizeof inl_);
    o.size_ = 0;
  }
  LayerList& operator=(LayerList o) noexcept {
    swap(o);
    return *this;
  }
  LayerList& operator=(std::initializer_list<int> l) { return *this = LayerList(l); }
  LayerList& operator=(const std::vector<int>& v) { return *this = LayerList(v); }
  ~LayerList() { clear(); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const int* begin() const { return size_ > kInline ? heap() : inl_; }
  const int* end() const { return begin() + size_; }
  int* begin() { return size_ > kInline ? heap() : inl_; }
  int* end() { return begin() + size_; }
  int operator[](size_t i) const { return begin()[i]; }
  int& operator[](size_t i) { return begin()[i]; }
  void push_back(int b) { insert_at(size_, b); }
  void push_front(int b) { insert_at(0, b); }
  void clear() {
    if (size_ > kInline) delete[] heap();
    size_ = 0;
  }
  operator std::vector<int>() const { return {begin(), end()}; }
  bool operator==(const LayerList& o) const { return std::equal(begin(), end(), o.begin(), o.end()); }
  bool operator==(const std::vector<int>& o) const {
    return std::equal(begin(), end(), o.begin(), o.end());
  }
  void swap(LayerList& o) noexcept {
    std::swap(size_, o.size_);
    int t[kInline];
    std::memcpy(t, inl_, sizeof t);
    std::memcpy(inl_, o.inl_, sizeof t);
    std::memcpy(o.inl_, t, sizeof t);
  }

 private:
  static constexpr uint32_t kInline = 3;
  // The heap pointer lives in the inline ints' bytes (unaligned: memcpy).
  int* heap() const {
    int* p;
    std::memcpy(&p, inl_, sizeof p);
    return p;
  }
  void alloc(size_t n) {
    clear();
    size_ = static_cast<uint32_t>(n);
    if (n > kInline) {
      int* p = new int[n];
      std::memcpy(inl_, &p, sizeof p);
    }
  }
  void insert_at(size_t at, int b) {
    LayerList t;
    t.alloc(size_ + 1);
    std::copy(begin(), begin() + at, t.begin());
    t.begin()[at] = b;
    std::copy(begin() + at, end(), t.begin() + at + 1);
    swap(t);
  }
  void assign(const int* src, size_t n) {
    alloc(n);
    std::copy(src, src + n, begin());
  }
  uint32_t size_ = 0;
  int inl_[kInline]{};
  static_assert(sizeof(int[kInline]) >= sizeof(int*));
};

struct Node {
  Node(NodeId i, uint64_t in, mode_t t) : id(i), ino(in), type(t) {}
  const NodeId id;
  const uint64_t ino;
  const mode_t type;  // S_IFMT bits, fixed for the node's life
  std::atomic<int> open_count{0};
  std::atomic<uint64_t> nlookup{0};

  // Guarded by NodeTree::mu_ (src/core/tree.hpp).
  std::shared_ptr<Node> parent;
  std::string name;
  int children = 0;  // live nodes whose parent is this one
  bool unlinked = false;

  std::atomic<bool> watch_failed{false};  // udba=notify: some layer unwatched
  // Guarded by mu.
  SmallMutex mu;
  int opaque = -1;           // dirs: branch carrying .wh..wh..opq (cut)
  LayerList layers;          // dirs: branch indices holding it, top first,
                             // cut at the opaque one; others: {top}
  RareString data_rel;       // non-dirs: path of the data on layers[0] when
                             // it differs from the name path (pseudo-links)
  uint64_t data_gen = 0;     // bumped when the backing file changes
  uint64_t bgen = 0;         // branch-set generation layers refer to
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

  // State few nodes need, allocated on first use: most cached nodes are
  // files met by a walk, and these fields would more than double them.
  struct Extra {
    // Guarded by NodeTree::mu_ (src/core/tree.hpp).
    // Non-dirs: other names the node was reached by (hard links), tried
    // when its name is removed; each is checked before use. A few at most.
    std::vector<std::pair<std::shared_ptr<Node>, std::string>> other_names;
    // dirren, dirs: (branch id, path there) of each lower part found through
    // this directory's redirect record; a descendant's path on such a branch
    // is built from here (NodeTree::paths_on).
    std::vector<std::pair<uint32_t, std::string>> redir;
    // dirren, dirs: ctime (ns) of the top copy when it was seen without a
    // redirect record (0: not known); spares a lookup the record check.
    std::atomic<int64_t> no_redir_ctime{0};

    // Guarded by Node::mu.
    std::vector<int> watched;                // udba=notify: layers watched
    std::vector<FileHandle*> handles;        // open files, re-pointed at copy-up
    std::shared_ptr<const VDirCache> vdir;   // dirs: merged listing (rdcache)
    std::shared_ptr<core::DirParts> parts;   // dirs: branch parts (core/part_cache.hpp)
    CacheStamp cache_stamp;                  // size -1: nothing cached yet
    uint64_t served_seq = 0;  // dirs: rdcache listing the last opendir served
    // Files: the object itself once its last name is removed while the
    // kernel still knows the node (core::keep_orphan).
    std::shared_ptr<const Orphan> orphan;
  };
  Extra& extra();  // allocates on first use; safe from any thread
  Extra* extra_if() const { return extra_.load(std::memory_order_acquire); }
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  bool is_dir() const { return (type & S_IFMT) == S_IFDIR; }

 private:
  std::atomic<Extra*> extra_{nullptr};
};

using NodePtr = std::shared_ptr<Node>;

// A hash set of node pointers keyed by one of the node's own fields (open
// addressing, linear probing, deletion by backward shift): one pointer per
// slot, where an unordered_map spends a 48-byte allocation and a bucket per
// entry. P is NodePtr (owning) or Node* (an index into owned nodes).
template <typename P, const uint64_t Node::*Key>
class NodeSet {
 public:
  const P* find(uint64_t key) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = home(key);; i = next(i)) {
      if (!slots_[i]) return nullptr;
      if ((*slots_[i]).*Key == key) return &slots_[i];
    }
  }
  // Adds p, replacing the entry with the same key.
  void put(P p) {
    if ((count_ + 1) * 4 > slots_.size() * 3) grow();
    for (size_t i = home((*p).*Key);; i = next(i)) {
      if (!slots_[i]) {
        slots_[i] = std::move(p);
        ++count_;
        return;
      }
      if ((*slots_[i]).*Key == (*p).*Key) {
        slots_[i] = std::move(p);
        return;
      }
    }
  }
  // Removes the entry for key if it is `only` (or any entry when only is null).
  bool erase(uint64_t key, const Node* only = nullptr) {
    const P* f = find(key);
    if (!f || (only && &**f != only)) return false;
    size_t i = static_cast<size_t>(f - slots_.data());
    slots_[i] = P{};
    --count_;
    // Shift later members of the probe run back so no run has a hole.
    for (size_t j = next(i); slots_[j]; j = next(j)) {
      size_t h = home((*slots_[j]).*Key);
      bool movable = i <= j ? (h <= i || h > j) : (h <= i && h > j);
      if (movable) {
        slots_[i] = std::move(slots_[j]);
        slots_[j] = P{};
        i = j;
      }
    }
    if (slots_.size() > 64 && count_ * 8 < slots_.size()) rehash(slots_.size() / 2);
    return true;
  }
  size_t size() const { return count_; }
  template <typename F>
  void for_each(F&& f) const {
    for (auto& p : slots_)
      if (p) f(p);
  }

 private:
  size_t home(uint64_t key) const {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ULL) >> shift_);
  }
  size_t next(size_t i) const { return (i + 1) & (slots_.size() - 1); }
  void grow() { rehash(slots_.empty() ? 16 : slots_.size() * 2); }
  void rehash(size_t n) {
    std::vector<P> old(n);
    old.swap(slots_);
    shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(n));
    count_ = 0;
    for (auto& p : old)
      if (p) put(std::move(p));
  }
  std::vector<P> slots_;  // size a power of two, or empty
  size_t count_ = 0;
  unsigned shift_ = 64;
};

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
  // `refs` lookup references under the table's lock.
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
  NodePtr owner_locked(const Node* n) const;
  mutable std::mutex mu_;
  NodeSet<NodePtr, &Node::id> by_id_;    // owns the nodes; guarded by mu_
  NodeSet<Node*, &Node::ino> by_ino_;    // current node of each number; mu_
  NodeId next_id_ = 16;                            // guarded by mu_
  std::atomic<size_t> size_{0};  // by_id_'s size, readable without mu_
                                 // (forget checks it on every call)
};

}  // namespace aufs
