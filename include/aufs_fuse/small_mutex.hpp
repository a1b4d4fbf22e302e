// SPDX-License-Identifier: GPL-2.0-or-later
// A 4-byte mutex for objects that exist by the hundred thousand (one per
// cached node): glibc's std::mutex takes 40 bytes. Uncontended lock and
// unlock are one atomic operation each; waiters sleep on a futex.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>

namespace aufs {

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer understands pthread mutexes, not hand-made futex locks.
using SmallMutex = std::mutex;
#else
class SmallMutex {
 public:
  SmallMutex() = default;
  SmallMutex(const SmallMutex&) = delete;
  SmallMutex& operator=(const SmallMutex&) = delete;

  void lock() {
    uint32_t c = kFree;
    if (!state_.compare_exchange_strong(c, kLocked, std::memory_order_acquire)) lock_slow(c);
  }
  bool try_lock() {
    uint32_t c = kFree;
    return state_.compare_exchange_strong(c, kLocked, std::memory_order_acquire);
  }
  void unlock() {
    if (state_.exchange(kFree, std::memory_order_release) == kContended) wake_one();
  }

 private:
  static constexpr uint32_t kFree = 0, kLocked = 1, kContended = 2;
  void lock_slow(uint32_t c);
  void wake_one();
  std::atomic<uint32_t> state_{kFree};
};
static_assert(sizeof(SmallMutex) == 4);
#endif

}  // namespace aufs
