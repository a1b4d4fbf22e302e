// SPDX-License-Identifier: GPL-2.0-or-later
// Requests the daemon is serving, counted per node (hashed into slots).
// While the kernel waits for such a request it may hold that node's lock (a
// directory's i_rwsem during lookup, create, unlink, rename, readdir; a
// file's page locks during a read), and a cache notification that needs the
// same lock would wait for it inside the kernel. The invalidator
// (invalidator.hpp) holds such a notification back until the node is idle.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>

namespace aufs {

class Inflight {
 public:
  void enter(uint64_t id) { slot(id).fetch_add(1, std::memory_order_relaxed); }
  void leave(uint64_t id) { slot(id).fetch_sub(1, std::memory_order_release); }
  // A request on this node (or one sharing its slot: then it waits longer
  // than it had to, never less) is being served.
  bool busy(uint64_t id) const { return slot(id).load(std::memory_order_acquire) != 0; }

  // Counts requests on up to two nodes for a scope (rename and link name a
  // second directory).
  class Scope {
   public:
    Scope(Inflight& f, uint64_t a, uint64_t b = 0) : f_(f), a_(a), b_(b) {
      f_.enter(a_);
      if (b_) f_.enter(b_);
    }
    ~Scope() {
      f_.leave(a_);
      if (b_) f_.leave(b_);
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Inflight& f_;
    uint64_t a_, b_;
  };

 private:
  static constexpr int kBits = 10;
  std::atomic<uint32_t>& slot(uint64_t id) const {
    return slots_[(id * 0x9E3779B97F4A7C15ull) >> (64 - kBits)];
  }
  mutable std::array<std::atomic<uint32_t>, size_t{1} << kBits> slots_{};
};

}  // namespace aufs
