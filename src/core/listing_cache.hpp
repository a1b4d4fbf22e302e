// SPDX-License-Identifier: GPL-2.0-or-later
// The rdcache's budget: merged listings kept on directory nodes, oldest
// first; past the budget (entries) the oldest go. The newest always stays.
#pragma once
#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <utility>

#include "aufs_fuse/node.hpp"
#include "aufs_fuse/vdir.hpp"

namespace aufs::core {

class ListingCache {
 public:
  // A new cache record for `entries` (its seq set), counted in the budget.
  std::shared_ptr<VDirCache> make(Listing entries);
  // Registers n's new listing `seq` and drops the oldest past the budget.
  // Called with no lock held.
  void keep(const NodePtr& n, uint64_t seq);
  size_t entries() const { return live_->entries.load(); }
  void set_budget(size_t entries) { budget_ = entries; }

 private:
  std::shared_ptr<VDirLive> live_ = std::make_shared<VDirLive>();
  std::mutex mu_;
  size_t budget_ = 65536;  // entries, ~6 MB
  std::deque<std::pair<std::weak_ptr<Node>, uint64_t>> fifo_;  // (node, seq); mu_
  std::atomic<uint64_t> seq_{1};
};

}  // namespace aufs::core
