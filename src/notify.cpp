// SPDX-License-Identifier: GPL-2.0-or-later
#include "aufs_fuse/notify.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cstring>
#include <tuple>

#include "aufs_fuse/sys.hpp"
#include "aufs_fuse/whiteout.hpp"

namespace aufs {
namespace {
constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB |
                           IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
constexpr int kGatherMs = 1;
}

BranchWatcher::BranchWatcher()
    : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)),
      stop_fd_(::eventfd(0, EFD_CLOEXEC)),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!fd_.valid()) init_errno_ = errno;
}

BranchWatcher::~BranchWatcher() { stop(); }

void BranchWatcher::start(Callback cb) {
  cb_ = std::move(cb);
  if (fd_.valid()) thread_ = std::thread([this] { run(); });
}

void BranchWatcher::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!::write(stop_fd_.get(), &one, sizeof one);
  thread_.join();
}

bool BranchWatcher::watch(NodeId id, const std::vector<Part>& parts) {
  if (!fd_.valid()) return false;
  bool all = true;
  std::unordered_map<int, uint32_t> wds;
  for (const Part& p : parts) {
    int wd = ::inotify_add_watch(fd_.get(), sys::proc_fd_path(p.fd).c_str(), kMask);
    if (wd < 0) {
      failures_++;
      static std::atomic<bool> warned{false};
      if (!warned.exchange(true))
        spdlog::warn("udba=notify: inotify_add_watch: {} (raise fs.inotify.max_user_watches); "
                     "unwatched directories fall back to udba=reval timeouts",
                     std::strerror(errno));
      all = false;
      continue;
    }
    wds[wd] = p.brid;
  }
  std::lock_guard<std::mutex> g(mu_);
  auto& cur = by_id_[id];
  for (int wd : cur)
    if (!wds.count(wd)) {
      ::inotify_rm_watch(fd_.get(), wd);
      by_wd_.erase(wd);
    }
  cur.clear();
  for (auto [wd, brid] : wds) {
    by_wd_[wd] = {id, brid};
    cur.insert(wd);
  }
  return all;
}

void BranchWatcher::unwatch(NodeId id) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  for (int wd : it->second) {
    ::inotify_rm_watch(fd_.get(), wd);
    by_wd_.erase(wd);
  }
  by_id_.erase(it);
}

void BranchWatcher::wake() {
  uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof one);
}

BranchWatcher::State BranchWatcher::state() {
  std::lock_guard<std::mutex> g(qmu_);
  // Events of changes made before this call are all in the queue now.
  if (pump_locked()) wake();
  return {queue_.empty() && !handling_, structural_ == 0};
}

void BranchWatcher::hold(const std::vector<OwnKey>& keys) {
  if (!fd_.valid() || keys.empty()) return;
  std::lock_guard<std::mutex> g(qmu_);
  // Changes made before this call are not ours to drop.
  if (pump_locked()) wake();
  for (const OwnKey& k : keys) own_[k.dir][k.name]++;
}

void BranchWatcher::release(const std::vector<OwnKey>& keys) {
  if (!fd_.valid() || keys.empty()) return;
  std::lock_guard<std::mutex> g(qmu_);
  // The holder's changes are done: their events are all queued by now.
  if (pump_locked()) wake();
  for (const OwnKey& k : keys) {
    auto d = own_.find(k.dir);
    if (d == own_.end()) continue;
    auto n = d->second.find(k.name);
    if (n != d->second.end() && --n->second == 0) d->second.erase(n);
    if (d->second.empty()) own_.erase(d);
  }
}

bool BranchWatcher::own_locked(NodeId id, const std::string& name) const {
  auto d = own_.find(id);
  return d != own_.end() && (d->second.count(std::string(kAllNames)) || d->second.count(name));
}

bool BranchWatcher::pump_locked() {
  size_t before = queue_.size();
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf_, sizeof buf_);
    if (n <= 0) return queue_.size() > before;  // EAGAIN: nothing more queued
    for (char* c = buf_; c < buf_ + n;) {
      auto* ev = reinterpret_cast<struct inotify_event*>(c);
      c += sizeof(struct inotify_event) + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        queue_.push_back({0, kAnyBranch, "", kMoved | kBinding, true});
        structural_++;
        continue;
      }
      NodeId id = 0;
      uint32_t brid = kAnyBranch;
      {
        std::lock_guard<std::mutex> g(mu_);
        auto it = by_wd_.find(ev->wd);
        if (it != by_wd_.end()) std::tie(id, brid) = it->second;
        if (ev->mask & IN_IGNORED) {
          if (it != by_wd_.end()) {
            auto bi = by_id_.find(id);
            if (bi != by_id_.end()) bi->second.erase(ev->wd);
            by_wd_.erase(it);
          }
          continue;
        }
      }
      if (!id) continue;
      std::string name = ev->len ? std::string(ev->name) : std::string();
      // The union's temporaries and bookkeeping names never reach the
      // kernel: nothing to report. The opaque marker changes the directory
      // itself; a whiteout stands for the name it hides.
      if (name == wh::kOpaque) name.clear();
      else if (wh::is_meta_name(name)) continue;
      else if (wh::is_whiteout_name(name)) name = std::string(wh::whiteout_target(name));
      if (!own_.empty() && own_locked(id, name)) {
        own_dropped_++;
        continue;
      }
      unsigned flags = 0;
      if ((ev->mask & IN_MOVE_SELF) ||
          ((ev->mask & IN_ISDIR) && (ev->mask & (IN_MOVED_FROM | IN_MOVED_TO))))
        flags |= kMoved;
      if (ev->mask & (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF |
                      IN_MOVE_SELF))
        flags |= kBinding;
      // A directory made, removed or moved (or a watched one itself gone):
      // a cached branch directory may be at another path now.
      bool structural = (flags & kMoved) || (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) ||
                        ((ev->mask & IN_ISDIR) && (flags & kBinding));
      queue_.push_back({id, brid, std::move(name), flags, structural});
      if (structural) structural_++;
    }
  }
}

size_t BranchWatcher::watch_count() const {
  std::lock_guard<std::mutex> g(mu_);
  return by_wd_.size();
}

void BranchWatcher::run() {
  for (;;) {
    struct pollfd p[3] = {
        {fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
    if (::poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents) return;
    if (p[2].revents) {
      uint64_t v;
      (void)!::read(wake_fd_.get(), &v, sizeof v);
    } else {
      // Woken by the kernel's queue: gather what follows for a moment. A
      // request reads the queue itself (state(), hold()), and the union's
      // own changes, most of the events, are dropped there: waking for
      // each of them would cost a switch per event for nothing.
      struct pollfd s = {stop_fd_.get(), POLLIN, 0};
      if (::poll(&s, 1, kGatherMs) > 0) return;
    }
    std::deque<Event> todo;
    uint64_t structural = 0;
    {
      std::lock_guard<std::mutex> g(qmu_);
      pump_locked();
      todo.swap(queue_);
      for (auto& e : todo) structural += e.structural ? 1 : 0;
      handling_ = !todo.empty();  // with the swap: state() sees no gap
    }
    if (todo.empty()) continue;
    // One call per (directory, name) of a batch: a copy-up alone makes
    // several events for the same names.
    std::unordered_set<std::string> seen;
    for (auto& e : todo) {
      std::string key = std::to_string(e.id) + '/' + std::to_string(e.brid) + '/' + e.name + '/' +
                        std::to_string(e.flags);
      if (seen.insert(std::move(key)).second) {
        reported_++;
        cb_(e.id, e.brid, e.name, e.flags);
      }
    }
    std::lock_guard<std::mutex> g(qmu_);
    structural_ -= structural;
    handling_ = false;
  }
}

}  // namespace aufs
