// SPDX-License-Identifier: GPL-2.0-or-later
// The state of one mount, shared by the core's modules (overlayfs's struct
// ovl_fs): options, the branch snapshot, the node tree and the stores. The
// modules are free functions taking a Mount&; docs/architecture.md says
// which may call which. The stores own their locks (lock order: tree.hpp).
#pragma once
#include <atomic>
#include <cerrno>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "aufs_fuse/branch.hpp"
#include "aufs_fuse/core_types.hpp"
#include "aufs_fuse/notify.hpp"
#include "aufs_fuse/options.hpp"
#include "aufs_fuse/policy.hpp"
#include "aufs_fuse/result.hpp"
#include "aufs_fuse/whiteout.hpp"
#include "aufs_fuse/write_gate.hpp"
#include "aufs_fuse/xino.hpp"
#include "core/handles.hpp"
#include "core/listing_cache.hpp"
#include "core/part_cache.hpp"
#include "core/reaper.hpp"
#include "core/tree.hpp"
#include "core/util.hpp"

namespace aufs::core {

// Names removed or moved: unlink, rmdir and rename count themselves in
// `busy` while they change branches and bump `gen` when done. A resolution
// read while either changed may be stale.
struct NameChanges {
  uint64_t gen = 0;
  uint64_t busy = 0;
};

// Reasons of refused control requests, kept until their caller reads them
// (control.cpp). Bounded: a caller that never asks loses nothing of others'.
struct ControlReasons {
  std::mutex mu;
  std::deque<std::pair<std::string, std::string>> by_token;  // mu
};

struct Mount {
  explicit Mount(const MountOptions& o) : opts(o), policy(o.policy), ro_(o.read_only) {}
  ~Mount() {
    if (watch_setup.joinable()) watch_setup.join();
  }

  const MountOptions opts;
  mutable Xino xino;  // a cache: lookups record what they read
  NodeTree tree;
  OpenFiles files;
  ListingCache listings;
  PartCache parts;  // directories' branch parts (namei.cpp)
  Reaper reaper;
  Counters counters;
  uid_t owner = 0;           // who mounted: may change branches
  bool persist_ino = true;   // record inode numbers on copied-up entries
  std::string ino_key;       // xattr holding a copied-up entry's inode number
  std::string nlink_key;     // xattr holding a pseudo-linked inode's link count offset
  std::mutex nlink_mu;       // one read-modify-write of nlink_key at a time (a leaf)
  DirChanges dir_changes;    // the user's directory changes, for KeepTimes
  struct timespec started {};
  std::unique_ptr<BranchWatcher> watcher;  // udba=notify only
  std::thread watch_setup;                 // udba.cpp: the root's first watches
  std::string udba_fallback;  // why notify runs as reval (set before serving)
  TestHook test_hook;                      // tests only: set before use
  StatsSource request_stats;               // set before serving, cleared after
  std::function<std::string()> frontend_info;  // JSON object for info_json; set before use
  // placement.cpp only.
  std::mutex policy_mu;
  PolicyState policy;  // rr counter and mfs cache: policy_mu
  // branches.cpp only.
  std::mutex change_mu;    // one branch change at a time
  uint32_t next_brid = 0;  // change_mu
  // control.cpp only.
  ControlReasons reasons;
  // Every modification runs in one of its tickets (union_fs.cpp); the
  // pause control request holds them.
  WriteGate writes;

  BranchSetPtr branches() const {
    std::lock_guard<std::mutex> g(branches_mu_);
    return branches_;
  }
  void set_branches(BranchSetPtr bs) {
    std::lock_guard<std::mutex> g(branches_mu_);
    branches_ = std::move(bs);
  }
  bool ro() const { return ro_.load(); }  // -o ro, or remount ro
  void set_ro(bool v) { ro_.store(v); }
  // A fresh temporary name for `base` (wh::temp_name).
  std::string temp_name(std::string_view base) { return wh::temp_name(base, temp_seq_.fetch_add(1)); }
  void seed_temp_names(uint32_t s) { temp_seq_.store(s); }
  NameChanges name_changes() const { return {names_gen_.load(), names_busy_.load()}; }
  void hook(std::string_view point, std::string_view name) const {
    if (test_hook) test_hook(point, name);
  }

 private:
  friend class NameChange;
  mutable std::mutex branches_mu_;
  BranchSetPtr branches_;  // branches_mu_
  std::atomic<bool> ro_;
  std::atomic<uint32_t> temp_seq_{0};
  std::atomic<uint64_t> names_gen_{0}, names_busy_{0};
};

// RAII: one removal or move of a name in progress (see NameChanges).
class NameChange {
 public:
  explicit NameChange(Mount& m) : m_(m) { m_.names_busy_++; }
  ~NameChange() {
    m_.names_gen_++;
    m_.names_busy_--;
  }
  NameChange(const NameChange&) = delete;
  NameChange& operator=(const NameChange&) = delete;

 private:
  Mount& m_;
};

// A make_temp maker's answer from a sys:: call: true, or false with errno.
inline bool made(const Status& s) {
  errno = s.err();
  return s.ok();
}
inline bool made(Result<UniqueFd> r, UniqueFd* out) {
  if (!r.ok()) return made(Status{Errno{r.err()}});
  *out = std::move(r.value());
  return true;
}

// Tries make(name) on fresh temporary names for `base` until one is not
// taken (make fails with errno EEXIST): the name made, or the errno.
template <class Make>
Result<std::string> make_temp(Mount& m, std::string_view base, Make&& make) {
  for (int i = 0;; ++i) {
    std::string tmp = m.temp_name(base);
    if (make(tmp)) return tmp;
    if (errno != EEXIST || i > 32) return last_errno();
  }
}

// A name the user may use (lookup: also a whiteout shown under shwh).
Status check_name(const Mount& m, std::string_view name, bool lookup = false);
// The top writable branch, -1 if none (or a read-only mount).
int first_writable(const Mount& m, const BranchSet& bs);
// A node's remembered name no longer leads to it (renamed, replaced or
// removed meanwhile): ESTALE while the node still stands for its inode
// (the kernel then walks the path again, and its lookups re-attach the
// node to a current name), ENOENT once its last name is gone.
int stale_errno(const Mount& m, const NodePtr& n);
// The control file's attributes.
Entry control_entry(const Mount& m);

}  // namespace aufs::core
