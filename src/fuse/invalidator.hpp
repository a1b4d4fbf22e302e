// SPDX-License-Identifier: GPL-2.0-or-later
// udba=notify's cache notifications, sent from a thread of their own.
//
// A notification that drops a name (FUSE_NOTIFY_INVAL_ENTRY) takes the
// directory's lock in the kernel; if a request the kernel holds that lock
// for has not been answered, it waits. So: the watcher thread only posts
// here and never waits inside the kernel; this thread holds a notification
// back while a request on its node is being served (inflight.hpp); and a
// stopping daemon serves requests until this thread is out of the kernel
// (session.cpp), instead of waiting for it forever.
#pragma once
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "aufs_fuse/node.hpp"

namespace aufs {

struct FuseContext;

class Invalidator {
 public:
  explicit Invalidator(FuseContext& ctx) : ctx_(ctx) {}
  ~Invalidator() { stop(); }
  Invalidator(const Invalidator&) = delete;
  Invalidator& operator=(const Invalidator&) = delete;

  void start();
  // (dir, name) changed behind the mount; dir 0: everything. The same
  // change posted again before it is sent is sent once (what is sent is
  // read at sending time).
  void post(NodeId dir, std::string name);
  // Takes no more posts and drops the ones not sent. True once the thread
  // is not inside a notification, within `wait`.
  bool quiesce(std::chrono::milliseconds wait);
  // Inside a notification now (the kernel may be waiting for a request).
  bool in_kernel() const;
  void stop();  // quiesce, then join

 private:
  void run();

  struct Item {
    NodeId dir;
    std::string name;
    std::string key;  // "<dir>/<name>", in queued_ until sent
  };
  FuseContext& ctx_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Item> queue_;                 // mu_
  std::unordered_set<std::string> queued_;  // mu_: keys of queued and held items
  bool stopping_ = false;                              // mu_
  bool sending_ = false;                               // mu_
  std::thread thread_;
};

}  // namespace aufs
