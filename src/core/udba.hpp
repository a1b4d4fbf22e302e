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

}  // namespace aufs::core
