// SPDX-License-Identifier: GPL-2.0-or-later
// The union file system core: AUFS semantics over branch directories,
// addressed by NodeId, independent of libfuse. The FUSE adapter translates
// requests into these calls; core tests call them directly.
//
// Union is a facade: each call forwards to the module of src/core/ that
// owns it (docs/architecture.md has the module graph and the lock order).
// Every method is thread-safe. Errors are positive errno values.
#pragma once
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "aufs_fuse/branch.hpp"
#include "aufs_fuse/control.hpp"
#include "aufs_fuse/core_types.hpp"
#include "aufs_fuse/creds.hpp"
#include "aufs_fuse/handle.hpp"
#include "aufs_fuse/options.hpp"
#include "aufs_fuse/result.hpp"
#include "aufs_fuse/vdir.hpp"
#include "aufs_fuse/write_gate.hpp"
#include "aufs_fuse/xino.hpp"

namespace aufs {

namespace core {
struct Mount;
}

class Union {
 public:
  // Opens the branches of validated options and prepares rw branches
  // (whiteout base, plnk, orph; stale temporaries removed).
  // On failure *why, when given, may hold one line saying why.
  // With prepare_now false, rw branches get their metadata (whiteout base,
  // plnk, orph) only from prepare_branches(), once FUSE has mounted.
  static Result<std::unique_ptr<Union>> mount(const MountOptions& opts, std::string* why = nullptr,
                                              bool prepare_now = true);
  Status prepare_branches(std::string* why);
  // After the last request, at a clean stop: see core::release_branches.
  void release_branches(bool only_if_was_clean);
  ~Union();

  // Names (lookup, forget) and attributes (src/core/entry, attr).
  // ctx (optional): the caller, for nodirperm1 checks on lower directories.
  Result<Entry> lookup(NodeId parent, std::string_view name, const Ctx* ctx = nullptr);
  void forget(NodeId id, uint64_t n);
  Result<struct stat> getattr(NodeId id, FileHandle* fh = nullptr);
  Result<struct stat> setattr(NodeId id, const SetAttrIn& in, FileHandle* fh, const Ctx& ctx);
  Result<std::string> readlink(NodeId id);
  // access(2) on the union's view, for callers that ask (the kernel checks
  // permissions itself under default_permissions).
  Status access(NodeId id, int mask, const Ctx& ctx);
  Result<struct statvfs> statfs();
  Status fsyncdir(NodeId id, bool datasync);

  // Namespace changes (src/core/dir, rename).
  Result<Entry> mknod(NodeId parent, std::string_view name, mode_t mode, dev_t rdev,
                      const Ctx& ctx);
  Result<Entry> mkdir(NodeId parent, std::string_view name, mode_t mode, const Ctx& ctx);
  Result<Entry> symlink(const std::string& target, NodeId parent, std::string_view name,
                        const Ctx& ctx);
  Result<Entry> link(NodeId src, NodeId newparent, std::string_view name, const Ctx& ctx);
  Status unlink(NodeId parent, std::string_view name);
  Status rmdir(NodeId parent, std::string_view name);
  Status rename(NodeId parent, std::string_view name, NodeId newparent, std::string_view newname,
                unsigned flags);

  // Open files (src/core/file, handles).
  Result<std::unique_ptr<FileHandle>> open(NodeId id, int flags, const Ctx& ctx);
  using Created = aufs::Created;
  Result<Created> create(NodeId parent, std::string_view name, mode_t mode, int flags,
                         const Ctx& ctx);
  // The fd to use for I/O on fh (re-pointed after a copy-up), kept open for
  // as long as the caller holds it.
  Result<SharedFd> io_fd(FileHandle& fh);
  // Held by the adapter around a write through an open file: the pause
  // control request holds it like every other modification.
  WriteGate::Ticket write_ticket();
  WriteGate& write_gate();
  void release(std::unique_ptr<FileHandle> fh);
  size_t open_files() const;

  // Directories (src/core/readdir).
  Result<std::unique_ptr<DirHandle>> opendir(NodeId id, const Ctx* ctx = nullptr);
  Status rewinddir(DirHandle& dh);
  // Before a readdir reply the kernel may keep (see core/readdir.hpp).
  Status before_read(DirHandle& dh, bool first);
  // Lookups of listed entries (one readdirplus reply), each as lookup() of
  // its name, adding a reference: the directory is opened once per branch
  // for all of them.
  std::vector<Result<Entry>> lookup_entries(DirHandle& dh, const VEntry* const* es, size_t n);
  // d_ino for a listed entry, equal to the st_ino a lookup reports.
  uint64_t entry_ino(const VEntry& e) const { return e.ino; }
  void releasedir(std::unique_ptr<DirHandle> dh) { (void)dh; }

  // Extended attributes (src/core/xattr; the control file's: control).
  Result<std::vector<char>> getxattr(NodeId id, const char* key, size_t size);
  Result<std::vector<char>> listxattr(NodeId id, size_t size);
  Status setxattr(NodeId id, const char* key, const void* val, size_t size, int flags,
                  const Ctx& ctx = Ctx{});
  Status removexattr(NodeId id, const char* key);
  const std::string& ino_xattr() const;  // the core's own, never shown

  // Branches and the control file (src/core/branches, control).
  // Runtime branch changes (remount), applied all-or-nothing in order.
  // Errors: EDOM bad index, ENOSPC too many branches, EBUSY files open on a
  // branch being removed or made read-only, EINVAL bad/overlapping branch,
  // ENOENT missing path. `msg` gets a one-line reason; on success, a note
  // for the user ("nothing changed: ...", no writable branch left) or "".
  Status change_branches(const std::vector<BranchOp>& ops, std::string* msg);
  // JSON description of the mount (branches, options, counters).
  std::string info_json() const;
  // The front end's own part of info_json (a JSON object, shown as "fuse":
  // the kernel features in use). Set before serving requests.
  void set_frontend_info(std::function<std::string()> f);
  // JSON: which branch serves NAME in directory `dir`, copy-up/whiteout state.
  Result<std::string> which_json(NodeId dir, std::string_view name);
  // The FUSE layer's request counts, shown as user.aufs.stats of the control
  // file. Set before serving requests; an empty source (after serving) hides
  // them again.
  void set_request_stats(StatsSource s);
  // The front end cannot hold a request while others are served (FUSE over
  // io_uring): pauses are refused with `why` from now on.
  void refuse_pauses(std::string why);
  BranchSetPtr branches() const;
  const MountOptions& options() const;
  bool read_only() const;  // -o ro, or remounted read-only
  const Counters& counters() const;
  size_t reap_pending() const;  // dirwh removals still queued

  // udba=notify (src/core/udba): starts watching branch directories;
  // `inval(dir, name)` is called (from the watcher thread) for every entry
  // changed behind the mount, dir 0 meaning "everything". Returns false
  // when watching is impossible (the caller then shortens its timeouts).
  bool start_notify(std::function<void(NodeId dir, const std::string& name)> inval);
  // Why udba=notify runs as reval on this mount (empty: it does not).
  std::string udba_fallback() const;
  void stop_notify();
  // The cached node a directory entry currently resolves to (0 if none).
  NodeId cached_child(NodeId dir, const std::string& name);
  // Changes in directory `dir` (or, for a non-directory, in its parent)
  // would go unnoticed because a watch could not be added.
  bool unwatched_dir(NodeId dir) const;
  bool unwatched_node(NodeId id) const;

  // The node tree (src/core/tree).
  // (node, parent, name) of every cached named node, for cache invalidation.
  std::vector<std::tuple<NodeId, NodeId, std::string>> cached_names() const;
  size_t node_count() const;
  uint64_t root_ino() const { return kRootIno; }
  uint64_t ino_of_node(NodeId id) const;  // st_ino of a node (0 if unknown)
  uint64_t parent_ino(NodeId id) const;   // st_ino of its parent directory

  // Tests only (set before use): see TestHook.
  void set_test_hook(TestHook h);
  // Entries the rdcache keeps in all (tests use small budgets).
  void set_listing_budget(size_t entries);

 private:
  explicit Union(std::unique_ptr<core::Mount> m);
  std::unique_ptr<core::Mount> m_;
};

}  // namespace aufs
