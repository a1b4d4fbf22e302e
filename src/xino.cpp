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
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!alias_.empty()) {
      auto it = alias_.find(Key{seed, branch_ino});
      if (it != alias_.end()) return it->second;
    }
  }
  return hash_ino(seed, branch_ino);
}

std::optional<uint64_t> Xino::find(uint64_t seed, ino_t branch_ino) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = alias_.find(Key{seed, branch_ino});
  if (it == alias_.end()) return std::nullopt;
  return it->second;
}

void Xino::alias(uint64_t seed, ino_t branch_ino, uint64_t ino) {
  std::lock_guard<std::mutex> g(mu_);
  alias_[Key{seed, branch_ino}] = ino;
}

void Xino::unalias(uint64_t seed, ino_t branch_ino) {
  std::lock_guard<std::mutex> g(mu_);
  alias_.erase(Key{seed, branch_ino});
}

void Xino::unalias_if(uint64_t seed, ino_t branch_ino, uint64_t ino) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = alias_.find(Key{seed, branch_ino});
  if (it != alias_.end() && it->second == ino) alias_.erase(it);
}

size_t Xino::alias_count() const {
  std::lock_guard<std::mutex> g(mu_);
  return alias_.size();
}

}  // namespace aufs
