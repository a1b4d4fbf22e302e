// SPDX-License-Identifier: GPL-2.0-or-later
// udba=notify: inotify watches on every branch copy of the cached
// directories, and the invalidation they trigger.
#pragma once
#include <functional>
#include <string>

#include "core/mount.hpp"

namespace aufs::core {

// Watches every layer of directory n (rel: its union path), once per set
// of layers; marks the node unwatched where a watch fails.
void watch_dir(Mount& m, const BranchSet& bs, const NodePtr& n, const std::string& rel);
// Starts watching branch directories; `inval(dir, name)` is called (from
// the watcher thread) for every entry changed behind the mount, dir 0
// meaning "everything". False when watching is impossible.
bool start_notify(Mount& m, std::function<void(NodeId dir, const std::string& name)> inval);
void stop_notify(Mount& m);
// Changes in directory `dir` (or, for a non-directory, in its parent) would
// go unnoticed because a watch could not be added.
bool unwatched_dir(const Mount& m, NodeId dir);
bool unwatched_node(const Mount& m, NodeId id);
// The cached node a directory entry currently resolves to (0 if none).
NodeId cached_child(Mount& m, NodeId dir, const std::string& name);

// A request's own changes to branch directories (udba=notify): while it
// lives, the watch events of the entries it names are dropped (see
// BranchWatcher::hold). The directories above an entry count too, since a
// copy-up makes them on the writable branch and puts their times back.
// The innermost scope of a thread is current(), so code deeper in the
// request can add an entry it finds (the directory rmdir removes). Does
// nothing without a watcher.
class OwnChanges {
 public:
  explicit OwnChanges(Mount& m);
  // With entry(parent, name).
  OwnChanges(Mount& m, NodeId parent, std::string_view name);
  ~OwnChanges();
  OwnChanges(const OwnChanges&) = delete;
  OwnChanges& operator=(const OwnChanges&) = delete;
  // The entry `name` of directory `parent`.
  OwnChanges& entry(NodeId parent, std::string_view name);
  // The node under its name; a directory also itself, and with `whole`
  // every entry in it.
  OwnChanges& node(NodeId id, bool whole = false);
  static OwnChanges* current();

 private:
  void hold(std::vector<BranchWatcher::OwnKey> keys);
  void dir_and_above(const NodePtr& dir, std::vector<BranchWatcher::OwnKey>& keys);
  Mount& m_;
  BranchWatcher* w_;
  OwnChanges* outer_;
  std::vector<BranchWatcher::OwnKey> keys_;
};

}  // namespace aufs::core
