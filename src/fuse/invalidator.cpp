// SPDX-License-Identifier: GPL-2.0-or-later
// udba=notify's cache notifications from a thread of their own (see
// invalidator.hpp).
#include "fuse/invalidator.hpp"

#include "fuse/adapter.hpp"

namespace aufs {
namespace {

using Clock = std::chrono::steady_clock;
// How long a notification waits for its node to be idle before it is sent
// anyway (it then waits in the kernel for that request, which the daemon is
// serving). A directory busy without pause (an untar into it) still sees
// its changes this late at most, well within reval's second.
constexpr auto kMaxHold = std::chrono::milliseconds(100);
constexpr auto kRetry = std::chrono::milliseconds(1);

}  // namespace

void Invalidator::start() {
  std::lock_guard<std::mutex> g(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { run(); });
}

void Invalidator::post(NodeId dir, std::string name) {
  std::lock_guard<std::mutex> g(mu_);
  if (stopping_) return;
  std::string key = std::to_string(dir) + "/" + name;
  if (!queued_.insert(key).second) return;  // queued or held, not sent yet
  queue_.push_back({dir, std::move(name), std::move(key)});
  cv_.notify_one();
}

bool Invalidator::in_kernel() const {
  std::lock_guard<std::mutex> g(mu_);
  return sending_;
}

bool Invalidator::quiesce(std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> l(mu_);
  stopping_ = true;
  queue_.clear();
  queued_.clear();
  cv_.notify_all();
  return cv_.wait_for(l, wait, [this] { return !sending_; });
}

void Invalidator::stop() {
  quiesce(std::chrono::milliseconds(0));
  if (thread_.joinable()) thread_.join();
}

void Invalidator::run() {
  struct Held {
    Item item;
    Clock::time_point since;
  };
  std::vector<Held> held;
  std::vector<std::string> sent;
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    if (held.empty()) cv_.wait(l, [this] { return stopping_ || !queue_.empty(); });
    else cv_.wait_for(l, kRetry, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    auto now = Clock::now();
    for (auto& it : queue_) held.push_back({std::move(it), now});
    queue_.clear();
    sending_ = true;
    l.unlock();
    std::vector<Held> later;
    for (auto& h : held) {
      bool force = now - h.since >= kMaxHold;
      if (invalidate_entry(ctx_, h.item.dir, h.item.name, force)) sent.push_back(std::move(h.item.key));
      else later.push_back(std::move(h));
    }
    held.swap(later);
    l.lock();
    // Sent: the same change may be posted again (a later one, read afresh).
    for (auto& k : sent) queued_.erase(k);
    sent.clear();
    sending_ = false;
    cv_.notify_all();
  }
}

}  // namespace aufs
