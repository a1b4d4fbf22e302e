// SPDX-License-Identifier: GPL-2.0-or-later
// Cached branch parts of union directories (see part_cache.hpp).
#include "core/part_cache.hpp"

#include <xxhash.h>

#include <algorithm>
#include <ctime>

namespace aufs::core {

int64_t mono_ns() {
  struct timespec t;
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1'000'000'000LL + t.tv_nsec;
}

PartFd::PartFd(UniqueFd fd, std::shared_ptr<PartCounts> c) : fd_(std::move(fd)), counts_(std::move(c)) {
  if (counts_) counts_->fds++;
}

PartFd::~PartFd() {
  if (counts_) counts_->fds--;
}

namespace {
uint64_t name_hash(std::string_view s) { return XXH3_64bits(s.data(), s.size()); }
}  // namespace

NameSet::NameSet(const std::vector<sys::RawDirent>& ents, const struct stat& dir,
                 std::shared_ptr<PartCounts> c)
    : mtime_(dir.st_mtim), ctime_(dir.st_ctim), ino_(dir.st_ino), counts_(std::move(c)) {
  hashes_.reserve(ents.size());
  for (auto& e : ents) hashes_.push_back(name_hash(e.name));
  std::sort(hashes_.begin(), hashes_.end());
  if (counts_) {
    counts_->name_bytes += static_cast<int64_t>(bytes());
    counts_->sets++;
  }
}

NameSet::~NameSet() {
  if (counts_) {
    counts_->name_bytes -= static_cast<int64_t>(bytes());
    counts_->sets--;
  }
}

bool NameSet::may_have(std::string_view name) const {
  return std::binary_search(hashes_.begin(), hashes_.end(), name_hash(name));
}

bool NameSet::matches(const struct stat& d) const {
  return d.st_ino == ino_ && d.st_mtim.tv_sec == mtime_.tv_sec &&
         d.st_mtim.tv_nsec == mtime_.tv_nsec && d.st_ctim.tv_sec == ctime_.tv_sec &&
         d.st_ctim.tv_nsec == ctime_.tv_nsec;
}

PartCache::PartCache() : counts_(std::make_shared<PartCounts>()) {}

void PartCache::configure(size_t fd_budget, size_t name_budget, int64_t window_ns) {
  fd_budget_ = std::max<size_t>(fd_budget, 16);
  name_budget_ = name_budget;
  window_ns_ = window_ns;
}

std::shared_ptr<const PartFd> PartCache::adopt(UniqueFd fd) {
  counts_->opens++;
  return std::make_shared<const PartFd>(std::move(fd), counts_);
}

bool PartCache::room_for_names(size_t bytes) {
  if (static_cast<size_t>(counts_->name_bytes.load()) + bytes <= name_budget_) return true;
  counts_->over_budget++;
  return false;
}

std::vector<NodePtr> PartCache::remember(const NodePtr& n) {
  std::vector<NodePtr> victims;
  std::lock_guard<std::mutex> g(mu_);
  order_.push_back(n);
  int64_t over = counts_->fds.load() - static_cast<int64_t>(fd_budget_);
  if (over > 0) {
    // Down to 7/8 of the budget, so eviction runs once per many inserts.
    size_t want = static_cast<size_t>(over) + fd_budget_ / 8;
    while (!order_.empty() && victims.size() < want) {
      NodePtr v = order_.front().lock();
      order_.pop_front();
      if (v && v != n) victims.push_back(std::move(v));
    }
    counts_->evictions += victims.size();
  } else if (order_.size() > 4 * fd_budget_ + 64) {
    // Nodes forgotten, or their parts dropped and taken again.
    std::erase_if(order_, [](const std::weak_ptr<Node>& w) { return w.expired(); });
  }
  return victims;
}

}  // namespace aufs::core
