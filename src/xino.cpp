// SPDX-License-Identifier: GPL-2.0-or-later
#include "aufs_fuse/xino.hpp"

#include <xxhash.h>

#include <cstring>

namespace aufs {

uint64_t branch_seed(const char* abs_path) {
  return XXH3_64bits(abs_path, std::strlen(abs_path));
}

uint64_t hash_ino(uint64_t seed, uint64_t branch_ino) {
  uint64_t h = XXH3_64bits_withSeed(&branch_ino, sizeof branch_ino, seed);
  // Keep clear of the reserved range and of the sign bit (some tools print
  // st_ino as a signed number).
  h &= 0x7fffffffffffffffULL;
  if (h < kFirstIno) h += kFirstIno;
  return h;
}

uint64_t Xino::get(uint64_t seed, ino_t branch_ino) const {
  if (auto v = find(seed, branch_ino)) return *v;
  return hash_ino(seed, branch_ino);
}

std::optional<uint64_t> Xino::find(uint64_t seed, ino_t branch_ino) const {
  std::lock_guard<std::mutex> g(mu_);
  Key k{seed, branch_ino};
  if (!alias_.empty()) {
    auto it = alias_.find(k);
    if (it != alias_.end()) return it->second;
  }
  if (!seen_.empty()) {
    auto it = seen_.find(k);
    if (it != seen_.end()) return it->second;
  }
  return std::nullopt;
}

void Xino::alias(uint64_t seed, ino_t branch_ino, uint64_t ino) {
  std::lock_guard<std::mutex> g(mu_);
  Key k{seed, branch_ino};
  forget_seen_locked(k);
  alias_[k] = ino;
}

void Xino::remember(uint64_t seed, ino_t branch_ino, uint64_t ino) {
  std::lock_guard<std::mutex> g(mu_);
  Key k{seed, branch_ino};
  if (alias_.count(k)) return;
  if (seen_.size() >= kRememberMax) {
    seen_.clear();
    seen_recorded_ = 0;
  }
  uint64_t natural = hash_ino(seed, branch_ino);
  auto [it, fresh] = seen_.try_emplace(k, ino);
  if (!fresh && it->second != natural) --seen_recorded_;
  it->second = ino;
  if (ino != natural) ++seen_recorded_;
}

void Xino::forget_seen_locked(const Key& k) {
  auto it = seen_.find(k);
  if (it != seen_.end()) forget_seen_locked(it);
}

void Xino::forget_seen_locked(std::unordered_map<Key, uint64_t, KeyHash>::iterator it) {
  if (it->second != hash_ino(it->first.seed, it->first.ino)) --seen_recorded_;
  seen_.erase(it);
}

void Xino::unalias(uint64_t seed, ino_t branch_ino) {
  std::lock_guard<std::mutex> g(mu_);
  Key k{seed, branch_ino};
  alias_.erase(k);
  forget_seen_locked(k);
}

void Xino::unalias_if(uint64_t seed, ino_t branch_ino, uint64_t ino) {
  std::lock_guard<std::mutex> g(mu_);
  Key k{seed, branch_ino};
  auto it = alias_.find(k);
  if (it != alias_.end() && it->second == ino) alias_.erase(it);
  auto si = seen_.find(k);
  if (si != seen_.end() && si->second == ino) forget_seen_locked(si);
}

size_t Xino::alias_count() const {
  std::lock_guard<std::mutex> g(mu_);
  return alias_.size() + seen_recorded_;
}

size_t Xino::remembered() const {
  std::lock_guard<std::mutex> g(mu_);
  return seen_.size();
}

}  // namespace aufs
