// SPDX-License-Identifier: GPL-2.0-or-later
// udba=notify: inotify watches on the branch directories behind every cached
// union directory. A change made directly in a branch (behind the mount's
// back) is reported to a callback, which the FUSE adapter turns into kernel
// cache invalidations, so long cache timeouts stay safe.
#pragma once
#include <sys/inotify.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "aufs_fuse/node.hpp"
#include "aufs_fuse/unique_fd.hpp"

namespace aufs {

class BranchWatcher {
 public:
  // (directory node, entry name) changed, named as in the union (a
  // whiteout by the name it hides, the opaque marker as the directory;
  // the union's own bookkeeping names are never reported); name "" means
  // the directory itself
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
  // What the events of changes made before this call allow: `settled`,
  // every one has been handled (caches that events keep exact may be
  // used); `dirs_settled`, none left to handle made, removed or moved a
  // directory (cached branch directories still lead where they did).
  struct State {
    bool settled;
    bool dirs_settled;
  };
  State state();
  // Watches refused (fs.inotify.max_user_watches): those directories get
  // udba=reval timeouts.
  uint64_t failures() const { return failures_.load(); }

  // The union's own changes. Between hold() and release() of a key, the
  // events it matches are dropped when read, as AUFS suspends its watch of
  // a branch directory while it changes it: the core keeps its caches and
  // the kernel's right for its own changes (as under udba=none), so they
  // cost no invalidation. A key is (union directory, entry name): "" the
  // directory itself, kAllNames any entry in it; events are matched by
  // their names as the callback gets them. hold() reads
  // the queue first, so an earlier change made behind the mount is kept.
  struct OwnKey {
    NodeId dir;
    std::string name;
  };
  static constexpr std::string_view kAllNames{"\0*", 2};
  void hold(const std::vector<OwnKey>& keys);
  // Reads the queue (every event of the changes made so far), then lets
  // the keys go.
  void release(const std::vector<OwnKey>& keys);
  uint64_t own_dropped() const { return own_dropped_.load(); }
  // Events handed to the callback (changes made behind the mount, or not
  // known as the union's own).
  uint64_t reported() const { return reported_.load(); }

 private:
  struct Event {
    NodeId id;
    uint32_t brid;
    std::string name;
    unsigned flags;
    bool structural;
  };
  void run();
  // Reads what the kernel has queued into queue_ (qmu_ held); true if it
  // queued any (dropped events need no handler).
  bool pump_locked();
  bool own_locked(NodeId id, const std::string& name) const;
  void wake();
  UniqueFd fd_;
  int init_errno_ = 0;
  std::atomic<uint64_t> failures_{0};
  UniqueFd stop_fd_;  // eventfd to wake the reader
  UniqueFd wake_fd_;  // eventfd: state() queued events for the handler
  std::thread thread_;
  Callback cb_;
  // The events read and not yet handled. A request's state() reads the
  // kernel's queue too, so what it reports covers every change before it.
  // qmu_ is taken before mu_.
  std::mutex qmu_;
  std::deque<Event> queue_;            // qmu_
  uint64_t structural_ = 0;            // structural events queued or being handled; qmu_
  bool handling_ = false;              // a batch taken from queue_ is being handled; qmu_
  alignas(struct inotify_event) char buf_[64 * 1024];  // qmu_
  // Held own keys, each with its count of holders; qmu_.
  std::unordered_map<NodeId, std::unordered_map<std::string, unsigned>> own_;
  std::atomic<uint64_t> own_dropped_{0};
  std::atomic<uint64_t> reported_{0};
  mutable std::mutex mu_;
  std::unordered_map<int, std::pair<NodeId, uint32_t>> by_wd_;  // (dir, brid); mu_
  std::unordered_map<NodeId, std::unordered_set<int>> by_id_;  // guarded by mu_
};

}  // namespace aufs
