#include "aufs_fuse/node.hpp"

#include <sys/stat.h>

namespace aufs {

NodePtr InodeTable::get(NodeId id) const {
  Shard& s = shard(id);
  std::lock_guard<std::mutex> g(s.mu);
  auto it = s.map.find(id);
  return it == s.map.end() ? nullptr : it->second;
}

NodePtr InodeTable::find_or_insert(NodeId id, const NodePtr& fresh, uint64_t refs) {
  Shard& s = shard(id);
  std::lock_guard<std::mutex> g(s.mu);
  auto [it, inserted] = s.map.try_emplace(id, fresh);
  it->second->nlookup.fetch_add(refs);
  return it->second;
}

void InodeTable::add_ref(const NodePtr& n, uint64_t refs) {
  Shard& s = shard(n->id);
  std::lock_guard<std::mutex> g(s.mu);
  n->nlookup.fetch_add(refs);
}

NodePtr InodeTable::forget(NodeId id, uint64_t n) {
  Shard& s = shard(id);
  std::lock_guard<std::mutex> g(s.mu);
  auto it = s.map.find(id);
  if (it == s.map.end()) return nullptr;
  uint64_t cur = it->second->nlookup.load();
  uint64_t next = n >= cur ? 0 : cur - n;
  it->second->nlookup.store(next);
  if (next == 0 && id != kRootId) return it->second;
  return nullptr;
}

bool InodeTable::erase_if_unused(NodeId id, int children) {
  Shard& s = shard(id);
  std::lock_guard<std::mutex> g(s.mu);
  auto it = s.map.find(id);
  if (it == s.map.end() || id == kRootId) return false;
  if (it->second->nlookup.load() != 0 || children != 0) return false;
  s.map.erase(it);
  return true;
}

std::vector<NodePtr> InodeTable::all() const {
  std::vector<NodePtr> out;
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> g(s.mu);
    for (auto& [id, n] : s.map) out.push_back(n);
  }
  return out;
}

size_t InodeTable::size() const {
  size_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> g(s.mu);
    n += s.map.size();
  }
  return n;
}

}  // namespace aufs
