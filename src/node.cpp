// SPDX-License-Identifier: GPL-2.0-or-later
#include "aufs_fuse/node.hpp"

#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace aufs {

#if !defined(__SANITIZE_THREAD__)
// The classic three-state futex lock: a waiter marks the word contended, so
// the unlock that sees the mark wakes one sleeper.
void SmallMutex::lock_slow(uint32_t c) {
  if (c != kContended) c = state_.exchange(kContended, std::memory_order_acquire);
  while (c != kFree) {
    ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&state_), FUTEX_WAIT_PRIVATE, kContended,
              nullptr, nullptr, 0);
    c = state_.exchange(kContended, std::memory_order_acquire);
  }
}

void SmallMutex::wake_one() {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&state_), FUTEX_WAKE_PRIVATE, 1, nullptr,
            nullptr, 0);
}
#endif

Node::~Node() { delete extra_.load(); }

Node::Extra& Node::extra() {
  Extra* e = extra_.load(std::memory_order_acquire);
  if (e) return *e;
  auto* fresh = new Extra;
  if (extra_.compare_exchange_strong(e, fresh, std::memory_order_acq_rel)) return *fresh;
  delete fresh;  // another thread installed one first
  return *e;
}

InodeTable::InodeTable() = default;

void InodeTable::insert(const NodePtr& n, uint64_t refs) {
  std::lock_guard<std::mutex> g(mu_);
  by_id_.put(n);
  by_ino_.put(n.get());
  size_.store(by_id_.size(), std::memory_order_relaxed);
  n->nlookup.fetch_add(refs);
}

NodePtr InodeTable::get(NodeId id) const {
  std::lock_guard<std::mutex> g(mu_);
  const NodePtr* p = by_id_.find(id);
  return p ? *p : nullptr;
}

// Every node in by_ino_ is in by_id_: erase_if_unused removes both.
NodePtr InodeTable::owner_locked(const Node* n) const {
  const NodePtr* p = by_id_.find(n->id);
  return p ? *p : nullptr;
}

NodePtr InodeTable::by_ino(uint64_t ino) const {
  std::lock_guard<std::mutex> g(mu_);
  Node* const* p = by_ino_.find(ino);
  return p ? owner_locked(*p) : nullptr;
}

NodePtr InodeTable::find_or_insert(uint64_t ino, mode_t type, uint64_t refs) {
  std::lock_guard<std::mutex> g(mu_);
  Node* const* cur = by_ino_.find(ino);
  if (cur && ((*cur)->type & S_IFMT) == (type & S_IFMT)) {
    (*cur)->nlookup.fetch_add(refs);
    return owner_locked(*cur);
  }
  auto n = std::make_shared<Node>(next_id_++, ino, type & S_IFMT);
  n->nlookup.store(refs);
  by_id_.put(n);
  by_ino_.put(n.get());
  size_.store(by_id_.size(), std::memory_order_relaxed);
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
  by_ino_.erase(n->ino, n.get());
}

NodePtr InodeTable::forget(NodeId id, uint64_t n) {
  std::lock_guard<std::mutex> g(mu_);
  const NodePtr* p = by_id_.find(id);
  if (!p) return nullptr;
  uint64_t cur = (*p)->nlookup.load();
  uint64_t next = n >= cur ? 0 : cur - n;
  (*p)->nlookup.store(next);
  if (next == 0 && id != kRootId) return *p;
  return nullptr;
}

bool InodeTable::erase_if_unused(NodeId id, int children) {
  std::lock_guard<std::mutex> g(mu_);
  const NodePtr* p = by_id_.find(id);
  if (!p || id == kRootId) return false;
  if ((*p)->nlookup.load() != 0 || children != 0) return false;
  NodePtr keep = *p;  // alive until both sets let go
  by_ino_.erase(keep->ino, keep.get());
  by_id_.erase(id);
  size_.store(by_id_.size(), std::memory_order_relaxed);
  return true;
}

size_t InodeTable::size() const { return size_.load(std::memory_order_relaxed); }

std::vector<NodePtr> InodeTable::all() const {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<NodePtr> out;
  out.reserve(by_id_.size());
  by_id_.for_each([&](const NodePtr& n) { out.push_back(n); });
  return out;
}

}  // namespace aufs
