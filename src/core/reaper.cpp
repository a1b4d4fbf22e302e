// SPDX-License-Identifier: GPL-2.0-or-later
// The dirwh reaper (see reaper.hpp).
#include "core/reaper.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "core/util.hpp"

namespace aufs::core {

Reaper::~Reaper() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Reaper::later(int parentfd, const std::string& name) {
  int d = ::fcntl(parentfd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) {
    if (!remove_dir_tree_meta(parentfd, name).ok()) {
      std::lock_guard<std::mutex> g(mu_);
      failed_ = true;
    }
    return;
  }
  std::lock_guard<std::mutex> g(mu_);
  queue_.emplace_back(UniqueFd(d), name);
  if (!thread_.joinable()) {
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lk(mu_);
      for (;;) {
        cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        auto job = std::move(queue_.front());
        queue_.pop_front();
        working_ = true;
        lk.unlock();
        auto st = remove_dir_tree_meta(job.first.get(), job.second);
        if (!st.ok())
          spdlog::warn("background removal of {} failed: {}", job.second, std::strerror(st.err()));
        lk.lock();
        working_ = false;
        failed_ = failed_ || !st.ok();
        cv_.notify_all();
      }
    });
  }
  cv_.notify_all();  // drain() waits on it too
}

bool Reaper::drain() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [this] { return queue_.empty() && !working_; });
  return !failed_;
}

size_t Reaper::pending() const {
  std::lock_guard<std::mutex> g(mu_);
  return queue_.size();
}

}  // namespace aufs::core
