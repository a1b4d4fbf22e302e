// SPDX-License-Identifier: GPL-2.0-or-later
// The node tree (see tree.hpp).
#include "core/tree.hpp"

#include <malloc.h>

#include <algorithm>

namespace aufs::core {

NodeTree::NodeTree() : root(std::make_shared<Node>(kRootId, kRootIno, S_IFDIR)) {
  table.insert(root, 1);
}

NodePtr NodeTree::node(NodeId id) const {
  if (id == kRootId) return root;
  return table.get(id);
}

std::string NodeTree::rel_path_locked(const Node& n) const {
  std::vector<const std::string*> parts;
  const Node* cur = &n;
  while (cur && cur->id != kRootId) {
    parts.push_back(&cur->name);
    cur = cur->parent.get();
  }
  std::string r;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (!r.empty()) r += '/';
    r += **it;
  }
  return r;
}

std::string NodeTree::rel_path(const Node& n) const {
  std::shared_lock<std::shared_mutex> g(mu_);
  return rel_path_locked(n);
}

std::optional<std::string> NodeTree::live_path(const Node& n) const {
  std::shared_lock<std::shared_mutex> g(mu_);
  // Its name was removed: what is there now (if anything) is another
  // object. A hard link may keep it under another name.
  if (n.unlinked && !n.is_dir()) return std::nullopt;
  return rel_path_locked(n);
}

std::string NodeTree::path_on_locked(const Node& start, uint32_t brid) const {
  std::string suffix;
  for (const Node* c = &start; c && c->id != kRootId; c = c->parent.get()) {
    if (const Node::Extra* x = c->extra_if())
      for (auto& [id, p] : x->redir)
        if (id == brid) return suffix.empty() ? p : p + "/" + suffix;
    suffix = suffix.empty() ? c->name : c->name + "/" + suffix;
  }
  return suffix;
}

std::vector<std::string> NodeTree::paths_on(const Node& n, const std::vector<uint32_t>& brids) const {
  std::vector<std::string> out;
  std::shared_lock<std::shared_mutex> g(mu_);
  for (uint32_t id : brids) out.push_back(path_on_locked(n, id));
  return out;
}

NodeTree::Naming NodeTree::naming(const Node& n) const {
  std::shared_lock<std::shared_mutex> g(mu_);
  return {n.parent, n.name, n.unlinked};
}

bool NodeTree::is_unlinked(const Node& n) const {
  std::shared_lock<std::shared_mutex> g(mu_);
  return n.unlinked;
}

NodePtr NodeTree::parent(const Node& n) const {
  std::shared_lock<std::shared_mutex> g(mu_);
  return n.parent;
}

NodePtr NodeTree::live_parent(const Node& n) const {
  std::shared_lock<std::shared_mutex> g(mu_);
  return n.unlinked ? nullptr : n.parent;
}

std::optional<std::vector<NodePtr>> NodeTree::chain(const NodePtr& n) const {
  std::vector<NodePtr> out;
  std::shared_lock<std::shared_mutex> g(mu_);
  for (NodePtr c = n; c && c->id != kRootId; c = c->parent) out.push_back(c);
  if (n->unlinked) return std::nullopt;
  std::reverse(out.begin(), out.end());
  return out;
}

bool NodeTree::placed_elsewhere(const Node& n, const NodePtr& parent, std::string_view name) const {
  std::shared_lock<std::shared_mutex> g(mu_);
  return n.parent && (n.parent != parent || n.name != name || n.unlinked);
}

bool NodeTree::placed_at(const Node& n, const NodePtr& parent, std::string_view name) const {
  std::shared_lock<std::shared_mutex> g(mu_);
  return n.parent == parent && n.name == name;
}

uint64_t NodeTree::parent_ino(const Node& n) const {
  std::shared_lock<std::shared_mutex> g(mu_);
  if (!n.parent || n.parent->id == kRootId) return kRootIno;
  return n.parent->ino;
}

std::vector<std::tuple<NodeId, NodeId, std::string>> NodeTree::cached_names() const {
  std::vector<std::tuple<NodeId, NodeId, std::string>> out;
  std::vector<NodePtr> nodes = table.all();
  std::shared_lock<std::shared_mutex> g(mu_);
  for (auto& n : nodes) {
    if (n->id == kRootId || !n->parent || n->unlinked) continue;
    out.emplace_back(n->id, n->parent->id, n->name);
  }
  return out;
}

void NodeTree::add_other_name_locked(Node& n, const NodePtr& parent, const std::string& name) {
  if (n.is_dir() || !parent) return;
  auto& others = n.extra().other_names;
  for (auto& [p, nm] : others)
    if (p == parent && nm == name) return;
  if (others.size() >= 4) others.erase(others.begin());
  others.emplace_back(parent, name);
}

void NodeTree::add_name(const NodePtr& n, const NodePtr& parent, const std::string& name) {
  std::unique_lock<std::shared_mutex> g(mu_);
  if (n->parent != parent || n->name != name) add_other_name_locked(*n, parent, name);
}

void NodeTree::set_redirects(const NodePtr& n, Redirects redir) {
  std::unique_lock<std::shared_mutex> g(mu_);
  if (!redir.empty() || n->extra_if()) n->extra().redir = std::move(redir);
}

void NodeTree::set_unlinked(const NodePtr& n) {
  std::unique_lock<std::shared_mutex> g(mu_);
  n->unlinked = true;
}

void NodeTree::set_parent(const NodePtr& n, const NodePtr& parent, std::string_view name,
                          bool keep_old, const Redirects* redir) {
  std::unique_lock<std::shared_mutex> g(mu_);
  // With the name, under one lock: a path built between the two would
  // join the new name to the old redirects.
  if (redir && (!redir->empty() || n->extra_if())) n->extra().redir = *redir;
  if (n->parent == parent && n->name == name && !n->unlinked) return;
  if (keep_old && n->parent && !n->unlinked) add_other_name_locked(*n, n->parent, n->name);
  if (Node::Extra* x = n->extra_if())
    std::erase_if(x->other_names, [&](auto& o) { return o.first == parent && o.second == name; });
  NodePtr old = n->parent;
  if (old != parent) {
    if (parent) parent->children++;
    n->parent = parent;
    if (old) {
      old->children--;
      if (old->children == 0 && old->nlookup.load() == 0 && old->id != kRootId) {
        g.unlock();
        detach(old);
        g.lock();
      }
    }
  }
  n->name = std::string(name);
  n->unlinked = false;
}

std::vector<std::pair<NodePtr, std::string>> NodeTree::remove_name(const NodePtr& n,
                                                                   const NodePtr& parent,
                                                                   const std::string& name,
                                                                   bool other_links) {
  std::vector<std::pair<NodePtr, std::string>> others;
  std::unique_lock<std::shared_mutex> g(mu_);
  Node::Extra* x = n->extra_if();
  if (x) std::erase_if(x->other_names, [&](auto& o) { return o.first == parent && o.second == name; });
  if (n->parent == parent && n->name == name) {
    if (other_links) {
      if (x) others = x->other_names;
    } else {
      n->unlinked = true;
    }
  }
  return others;
}

void NodeTree::unlink_if_at(const NodePtr& n, const NodePtr& parent, const std::string& name) {
  std::unique_lock<std::shared_mutex> g(mu_);
  if (n->parent == parent && n->name == name) n->unlinked = true;
}

void NodeTree::detach(const NodePtr& start) {
  NodePtr n = start;
  while (n && n->id != kRootId) {
    NodePtr parent;
    {
      std::unique_lock<std::shared_mutex> g(mu_);
      if (!table.erase_if_unused(n->id, n->children)) return;
      erased_.fetch_add(1, std::memory_order_relaxed);
      if (watcher_ && n->is_dir()) watcher_->unwatch(n->id);
      parent = n->parent;
      if (parent) parent->children--;
      if (!parent || parent->children != 0 || parent->nlookup.load() != 0) return;
    }
    n = parent;
  }
}

void NodeTree::forget(NodeId id, uint64_t count) {
  if (NodePtr n = table.forget(id, count)) detach(n);
  // After a wave of forgets (memory pressure, drop_caches; or one that left
  // few nodes) the freed nodes go back to the system, not only to malloc's
  // free lists: the heap is fragmented by then, so free() alone returns
  // little.
  constexpr uint64_t kTrimEvery = 32768;
  uint64_t e = erased_.load(std::memory_order_relaxed);
  uint64_t last = trimmed_at_.load(std::memory_order_relaxed);
  bool wave = e - last >= kTrimEvery || (e - last >= 4096 && table.size() < (e - last) / 4);
  if (wave && trimmed_at_.compare_exchange_strong(last, e)) ::malloc_trim(0);
}

}  // namespace aufs::core
