// SPDX-License-Identifier: GPL-2.0-or-later
// Holding writes to the branches for a while (the pause control request,
// used by `aufs-fuse-image commit --pause` to read a consistent rw branch):
// every modification of the union, its copy-ups included, runs inside a
// Ticket; pause() stops new tickets and waits for those in flight; release()
// or the pause's deadline lets the held ones go on.
#pragma once
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

namespace aufs {

class WriteGate {
 public:
  using Clock = std::chrono::steady_clock;

  class Ticket {
   public:
    explicit Ticket(WriteGate* g) : g_(g) {
      if (g_) g_->enter();
    }
    Ticket(Ticket&& o) noexcept : g_(o.g_) { o.g_ = nullptr; }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    Ticket& operator=(Ticket&&) = delete;
    ~Ticket() {
      if (g_) g_->leave();
    }

   private:
    WriteGate* g_;
  };

  Ticket ticket() { return Ticket(this); }

  // Holds new modifications until release() or `hold` from now, and waits
  // (as long) for those in flight. EBUSY: paused already; ETIMEDOUT: those
  // in flight did not end in time; ETXTBSY: pinned writers are open
  // (nothing is held after either). 0: held.
  int pause(Clock::duration hold) {
    std::unique_lock<std::mutex> l(mu_);
    expire_locked();
    if (!refused_.empty()) return EOPNOTSUPP;
    if (paused_) return EBUSY;
    paused_ = true;
    until_ = Clock::now() + hold;
    if (!cv_.wait_until(l, until_, [&] { return active_ == 0; })) {
      paused_ = false;
      cv_.notify_all();
      return ETIMEDOUT;
    }
    if (pinned_) {
      paused_ = false;
      cv_.notify_all();
      return ETXTBSY;
    }
    return 0;
  }
  // Holding writes is unsafe on this mount (why: the reason a user reads):
  // pause() refuses with EOPNOTSUPP from now on.
  void refuse_pauses(std::string why) {
    std::lock_guard<std::mutex> g(mu_);
    refused_ = std::move(why);
  }
  std::string refused() const {
    std::lock_guard<std::mutex> g(mu_);
    return refused_;
  }
  // A file open for writing whose writes bypass the daemon (FUSE
  // passthrough) cannot be held: pause() refuses (ETXTBSY) while one is
  // open. Pinned inside a Ticket, so a pause sees every pin made before it.
  void pin() {
    std::lock_guard<std::mutex> g(mu_);
    ++pinned_;
  }
  void unpin() {
    std::lock_guard<std::mutex> g(mu_);
    --pinned_;
  }
  unsigned pinned() const {
    std::lock_guard<std::mutex> g(mu_);
    return pinned_;
  }
  // 0, or ENOENT when nothing was held (never paused, or timed out).
  int release() {
    std::lock_guard<std::mutex> g(mu_);
    expire_locked();
    if (!paused_) return ENOENT;
    paused_ = false;
    cv_.notify_all();
    return 0;
  }

 private:
  void enter() {
    std::unique_lock<std::mutex> l(mu_);
    while (paused_ && Clock::now() < until_) cv_.wait_until(l, until_);
    expire_locked();
    ++active_;
  }
  void leave() {
    std::lock_guard<std::mutex> g(mu_);
    if (--active_ == 0) cv_.notify_all();
  }
  void expire_locked() {
    if (paused_ && Clock::now() >= until_) {
      paused_ = false;
      cv_.notify_all();
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  unsigned active_ = 0;  // mu_
  unsigned pinned_ = 0;  // mu_
  bool paused_ = false;  // mu_
  std::string refused_;  // mu_
  Clock::time_point until_;  // mu_
};

}  // namespace aufs
