// SPDX-License-Identifier: GPL-2.0-or-later
// udba=notify: inotify watches on the branch directories behind every cached
// union directory. A change made directly in a branch (behind the mount's
// back) is reported to a callback, which the FUSE adapter turns into kernel
// cache invalidations, so long cache timeouts stay safe.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "aufs_fuse/node.hpp"
#include "aufs_fuse/unique_fd.hpp"

namespace aufs {

class BranchWatcher {
 public:
  // (directory node, entry name) changed; name "" means the directory itself
  // (or everything, after an event-queue overflow when dir == 0). Flags:
  // kMoved, a directory was moved (in, out or itself), so paths below it
  // changed; kBinding, the name was created, removed or moved (else only
  // the entry's attributes or data changed). brid: the branch whose
  // directory changed (kAnyBranch after an overflow).
  enum : unsigned { kMoved = 1, kBinding = 2 };
  static constexpr uint32_t kAnyBranch = UINT32_MAX;
  using Callback =
      std::function<void(NodeId dir, uint32_t brid, const std::string& name, unsigned flags)>;
  struct Part {
    uint32_t brid;
    int fd;  // O_PATH
  };

  BranchWatcher();
  ~BranchWatcher();
  BranchWatcher(const BranchWatcher&) = delete;
  BranchWatcher& operator=(const BranchWatcher&) = delete;

  bool ok() const { return fd_.valid(); }
  int init_errno() const { return init_errno_; }
  void start(Callback cb);
  void stop();
  // Watches the branch directories that make up union dir `id`.
  // False if a watch could not be added (e.g. fs.inotify.max_user_watches).
  bool watch(NodeId id, const std::vector<Part>& parts);
  void unwatch(NodeId id);
  size_t watch_count() const;
  // Every event of a change made before this call has been handled (none
  // is queued or being handled): caches that events keep exact may be used.
  bool settled() const;
  // Watches refused (fs.inotify.max_user_watches): those directories get
  // udba=reval timeouts.
  uint64_t failures() const { return failures_.load(); }

 private:
  void run();
  UniqueFd fd_;
  int init_errno_ = 0;
  std::atomic<uint64_t> failures_{0};
  std::atomic<bool> in_flight_{false};  // a batch read and not yet handled
  UniqueFd stop_fd_;  // eventfd to wake the reader
  std::thread thread_;
  Callback cb_;
  mutable std::mutex mu_;
  std::unordered_map<int, std::pair<NodeId, uint32_t>> by_wd_;  // (dir, brid); mu_
  std::unordered_map<NodeId, std::unordered_set<int>> by_id_;  // guarded by mu_
};

}  // namespace aufs
