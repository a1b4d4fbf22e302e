// SPDX-License-Identifier: GPL-2.0-or-later
// Inode numbers (AUFS "xino"). A union object's number is derived from the
// branch inode that first supplied it: XXH3(branch seed, branch ino). The
// branch seed comes from the branch's absolute path, so numbers of untouched
// objects are the same after a remount. Copy-up records the new backing
// inode as an alias of the old number, so st_ino never changes under a user.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace aufs {

inline constexpr uint64_t kRootIno = 2;
inline constexpr uint64_t kFirstIno = 16;  // below: reserved (root, control)

uint64_t branch_seed(const char* abs_path);
uint64_t hash_ino(uint64_t seed, uint64_t branch_ino);

class Xino {
 public:
  // Number for (branch seed, branch ino); honours aliases from copy-up.
  uint64_t get(uint64_t seed, ino_t branch_ino) const;
  // The recorded number for (seed, branch_ino), if any.
  std::optional<uint64_t> find(uint64_t seed, ino_t branch_ino) const;
  // Future lookups of (seed, branch_ino) yield `ino` (also records that a
  // persistent number was looked for, when ino is the natural one).
  void alias(uint64_t seed, ino_t branch_ino, uint64_t ino);
  // A number read from a branch (its recorded xattr, or the natural one
  // when none is recorded), kept to spare the read: a bounded cache,
  // emptied when full, since the branch still has the answer.
  void remember(uint64_t seed, ino_t branch_ino, uint64_t ino);
  void unalias(uint64_t seed, ino_t branch_ino);
  // Only while it still yields `ino`: the branch inode may already hold a
  // new object with an alias of its own.
  void unalias_if(uint64_t seed, ino_t branch_ino, uint64_t ino);
  // Aliases, plus remembered numbers that differ from the natural one.
  size_t alias_count() const;
  size_t remembered() const;
  static constexpr size_t kRememberMax = 1 << 16;

 private:
  struct Key {
    uint64_t seed;
    uint64_t ino;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return static_cast<size_t>(hash_ino(k.seed, k.ino)); }
  };
  mutable std::mutex mu_;
  std::unordered_map<Key, uint64_t, KeyHash> alias_;  // guarded by mu_
  std::unordered_map<Key, uint64_t, KeyHash> seen_;   // guarded by mu_
  size_t seen_recorded_ = 0;  // entries of seen_ not natural; mu_
  void forget_seen_locked(const Key& k);
  void forget_seen_locked(std::unordered_map<Key, uint64_t, KeyHash>::iterator it);
};

}  // namespace aufs
