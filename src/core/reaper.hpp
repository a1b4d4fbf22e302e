// SPDX-License-Identifier: GPL-2.0-or-later
// A background worker that removes directories renamed aside by rmdir
// (dirwh: many whiteouts inside). If the daemon stops first, the hidden
// leftovers are removed by the branch check at the next mount.
#pragma once
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "aufs_fuse/unique_fd.hpp"

namespace aufs::core {

class Reaper {
 public:
  Reaper() = default;
  ~Reaper();  // stops after the queued removals
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;
  // Removes parentfd/name (only AUFS metadata inside) later.
  void later(int parentfd, const std::string& name);
  size_t pending() const;
  // Waits until every queued removal is done; false if one ever failed
  // (its leftover waits for the next mount's check).
  bool drain();

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<UniqueFd, std::string>> queue_;  // guarded by mu_
  bool stop_ = false;                                   // guarded by mu_
  bool working_ = false;                                // a removal runs; mu_
  bool failed_ = false;                                 // mu_
  std::thread thread_;
};

}  // namespace aufs::core
