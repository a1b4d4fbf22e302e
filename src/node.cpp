#include "aufs_fuse/node.hpp"

#include <sys/stat.h>

namespace aufs {

InodeTable::InodeTable() = default;

void InodeTable::insert(const NodePtr& n, uint64_t refs) {
  std::lock_guard<std::mutex> g(mu_);
  by_id_[n->id] = n;
  by_ino_[n->ino] = n;
  n->nlookup.fetch_add(refs);
}

NodePtr InodeTable::get(NodeId id) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

NodePtr InodeTable::by_ino(uint64_t ino) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = by_ino_.find(ino);
  return it == by_ino_.end() ? nullptr : it->second;
}

NodePtr InodeTable::find_or_insert(uint64_t ino, mode_t type, uint64_t refs) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = by_ino_.find(ino);
  if (it != by_ino_.end() && (it->second->type & S_IFMT) == (type & S_IFMT)) {
    it->second->nlookup.fetch_add(refs);
    return it->second;
  }
  auto n = std::make_shared<Node>(next_id_++, ino, type & S_IFMT);
  n->nlookup.store(refs);
  by_id_[n->id] = n;
  by_ino_[ino] = n;
  return n;
}

void InodeTable::add_ref(const NodePtr& n, uint64_t refs) {
  std::lock_guard<std::mutex> g(mu_);
  n->nlookup.fetch_add(refs);
}

NodeId InodeTable::next_id() const {
  std::lock_guard<std::mutex> g(mu_);
  return next_id_;
}

void InodeTable::retire(const NodePtr& n) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = by_ino_.find(n->ino);
  if (it != by_ino_.end() && it->second == n) by_ino_.erase(it);
}

NodePtr InodeTable::forget(NodeId id, uint64_t n) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return nullptr;
  uint64_t cur = it->second->nlookup.load();
  uint64_t next = n >= cur ? 0 : cur - n;
  it->second->nlookup.store(next);
  if (next == 0 && id != kRootId) return it->second;
  return nullptr;
}

bool InodeTable::erase_if_unused(NodeId id, int children) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end() || id == kRootId) return false;
  if (it->second->nlookup.load() != 0 || children != 0) return false;
  auto ii = by_ino_.find(it->second->ino);
  if (ii != by_ino_.end() && ii->second == it->second) by_ino_.erase(ii);
  by_id_.erase(it);
  return true;
}

size_t InodeTable::size() const {
  std::lock_guard<std::mutex> g(mu_);
  return by_id_.size();
}

std::vector<NodePtr> InodeTable::all() const {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<NodePtr> out;
  out.reserve(by_id_.size());
  for (auto& [id, n] : by_id_) out.push_back(n);
  return out;
}

}  // namespace aufs
