// SPDX-License-Identifier: GPL-2.0-or-later
// The rdcache's budget (see listing_cache.hpp).
#include "core/listing_cache.hpp"

#include <algorithm>
#include <vector>

namespace aufs::core {

std::shared_ptr<VDirCache> ListingCache::make(Listing entries) {
  auto c = std::make_shared<VDirCache>();
  c->entries = std::move(entries);
  c->live = live_;
  live_->entries.fetch_add(c->entries.size());
  live_->caches.fetch_add(1);
  c->seq = seq_.fetch_add(1);
  return c;
}

// Bounded in entries, not only in time: a walk of a million directories
// must not keep a million listings.
void ListingCache::keep(const NodePtr& n, uint64_t seq) {
  std::vector<std::shared_ptr<const VDirCache>> drop;  // freed after the locks
  std::lock_guard<std::mutex> g(mu_);
  fifo_.emplace_back(n, seq);
  // Records of caches already replaced or freed are dropped as they reach
  // the front; the length check keeps them from piling up.
  size_t entries = live_->entries.load(), caches = live_->caches.load();
  while (fifo_.size() > 1 && (entries > budget_ || fifo_.size() > 2 * caches + 16)) {
    auto [wn, s] = fifo_.front();
    fifo_.pop_front();
    NodePtr old = wn.lock();
    if (!old) continue;
    std::lock_guard<SmallMutex> ng(old->mu);
    Node::Extra* x = old->extra_if();
    if (x && x->vdir && x->vdir->seq == s) {
      entries -= std::min(entries, x->vdir->entries.size());
      caches -= std::min<size_t>(caches, 1);
      drop.push_back(std::move(x->vdir));
    }
  }
}

}  // namespace aufs::core
