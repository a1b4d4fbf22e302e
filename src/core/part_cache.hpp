// SPDX-License-Identifier: GPL-2.0-or-later
// The cached branch parts of union directories: an O_PATH fd per part, so a
// lookup does not walk the path from the branch root again, and on
// read-only branches the set of names in the part, so a name absent there
// costs no system call. This store keeps the budgets, the counters and the
// eviction order; when a part may be used is namei.cpp's rule.
#pragma once
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "aufs_fuse/node.hpp"
#include "aufs_fuse/sys.hpp"
#include "aufs_fuse/unique_fd.hpp"

namespace aufs::core {

// What the parts in use cost; shared so a part freed after the mount's
// store (a node outliving it) still has somewhere to count.
struct PartCounts {
  std::atomic<int64_t> fds{0}, name_bytes{0}, sets{0};
  std::atomic<uint64_t> opens{0}, reuses{0}, set_builds{0}, set_answers{0}, evictions{0},
      over_budget{0};
};

// One part's directory fd (O_PATH), counted while it lives.
class PartFd {
 public:
  PartFd(UniqueFd fd, std::shared_ptr<PartCounts> c);
  ~PartFd();
  PartFd(const PartFd&) = delete;
  PartFd& operator=(const PartFd&) = delete;
  int get() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  std::shared_ptr<PartCounts> counts_;
};

// The names in one read-only part (entries and whiteouts alike), as sorted
// 64-bit hashes: a collision only costs the lookup it would have made.
class NameSet {
 public:
  NameSet(const std::vector<sys::RawDirent>& ents, const struct stat& dir,
          std::shared_ptr<PartCounts> c);
  ~NameSet();
  NameSet(const NameSet&) = delete;
  NameSet& operator=(const NameSet&) = delete;
  bool may_have(std::string_view name) const;
  // The part it was read from is unchanged.
  bool matches(const struct stat& dir) const;
  size_t bytes() const { return hashes_.size() * sizeof(uint64_t); }

 private:
  std::vector<uint64_t> hashes_;
  struct timespec mtime_, ctime_;
  ino_t ino_;
  std::shared_ptr<PartCounts> counts_;
};

// One branch part of a cached directory (guarded by its Node::mu).
struct DirPart {
  uint32_t brid = 0;
  std::string path;  // on the branch, when opened
  std::shared_ptr<const PartFd> fd;
  int64_t checked_ns = 0;  // monotonic: opened or last found at `path`
  uint64_t gen = 0;        // PartCache::gen() when opened
  std::shared_ptr<const NameSet> names;
  uint32_t uses = 0;  // lookups without a name set
};
struct DirParts {
  uint64_t bgen = 0;  // branch-set generation
  std::vector<DirPart> parts;
};

class PartCache {
 public:
  PartCache();
  // fd_budget: parts holding an fd at once; name_budget: bytes of name
  // sets; window_ns: how long a part is trusted without a check where no
  // watch covers it (udba=reval), < 0 forever (udba=none).
  void configure(size_t fd_budget, size_t name_budget, int64_t window_ns);
  int64_t window_ns() const { return window_ns_; }
  // Bumped when a branch directory was moved or removed behind our back:
  // every cached fd is found again at its path before its next use.
  uint64_t gen() const { return gen_.load(std::memory_order_acquire); }
  void invalidate_all() { gen_.fetch_add(1, std::memory_order_acq_rel); }

  std::shared_ptr<const PartFd> adopt(UniqueFd fd);
  // Room for a name set of `bytes`? (counted as refused when not)
  bool room_for_names(size_t bytes);
  std::shared_ptr<PartCounts> counts() const { return counts_; }
  size_t fd_budget() const { return fd_budget_; }
  size_t name_budget() const { return name_budget_; }

  // A node whose parts now hold fds; when over the fd budget, returns the
  // oldest such nodes, whose parts the caller drops (without this store's
  // lock: Node::mu is taken outside it).
  std::vector<NodePtr> remember(const NodePtr& n);

 private:
  std::shared_ptr<PartCounts> counts_;
  size_t fd_budget_ = 1024, name_budget_ = 32u << 20;
  int64_t window_ns_ = 1'000'000'000;
  std::atomic<uint64_t> gen_{1};
  std::mutex mu_;
  std::deque<std::weak_ptr<Node>> order_;  // mu_: nodes in the order they got parts
};

int64_t mono_ns();

}  // namespace aufs::core
