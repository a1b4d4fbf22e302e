// The union file system core: AUFS semantics over branch directories,
// addressed by NodeId, independent of libfuse. The FUSE adapter translates
// requests into these calls; core tests call them directly.
//
// Every method is thread-safe. Errors are positive errno values.
#pragma once
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <thread>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "aufs_fuse/branch.hpp"
#include "aufs_fuse/creds.hpp"
#include "aufs_fuse/node.hpp"
#include "aufs_fuse/notify.hpp"
#include "aufs_fuse/options.hpp"
#include "aufs_fuse/policy.hpp"
#include "aufs_fuse/result.hpp"
#include "aufs_fuse/vdir.hpp"
#include "aufs_fuse/xino.hpp"

namespace aufs {

struct Entry {
  NodeId id = 0;
  struct stat attr {};
  // udba=notify: the directory holding the entry is not watched (no inotify
  // watch could be added), so the kernel must not cache it for long.
  bool unwatched = false;
};

// An open file's branch fd, shared by the requests using it: a copy-up
// swaps a reader's fd while a read may still be splicing from the old one,
// which must stay open until that read ends (a closed number can be reused
// by any other open at once).
using SharedFd = std::shared_ptr<const UniqueFd>;

// An open file. `fd` is the backing file; read-only handles are re-pointed
// to the copy when their file is copied up (see repoint_readers).
struct FileHandle {
  NodePtr node;
  uint32_t brid = 0;  // branch the fd lives on (for del/mod EBUSY)
  SharedFd fd;        // guarded by mu; never null once opened
  int raw_fd() const { return fd ? fd->get() : -1; }
  int flags = 0;
  uint64_t data_gen = 0;
  bool keep_cache = false;  // the kernel's cached pages are still valid
  std::mutex mu;  // guards fd/data_gen swaps
};

// A removed file the kernel may still ask about by node: an open that raced
// with the removal, an open of /proc/PID/fd/N, fchmod(2) of an open file.
// On a local filesystem those reach the inode; here an O_PATH descriptor of
// the branch file keeps it reachable until the kernel forgets the node.
struct Orphan {
  Orphan(UniqueFd f, uint32_t b) : fd(std::move(f)), brid(b) { live.fetch_add(1); }
  ~Orphan() { live.fetch_sub(1); }
  Orphan(const Orphan&) = delete;
  Orphan& operator=(const Orphan&) = delete;
  UniqueFd fd;    // O_PATH, or the read-write copy made by a change
  uint32_t brid;  // branch holding it
  static inline std::atomic<long> live{0};  // descriptors held, all mounts
};

struct DirHandle {
  NodePtr node;
  Listing entries;  // snapshot taken at opendir / rewind
  uint64_t listing_seq = 0;  // the rdcache listing served (0: not cached)
  bool keep_cache = false;   // the kernel's cached listing is this one
  bool started = false;         // a read at offset 0 after this rewinds
  std::mutex mu;
};

struct SetAttrIn {
  int valid = 0;  // SET_* bits below
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  off_t size = 0;
  struct timespec atime {}, mtime {};
  enum : int {
    kMode = 1, kUid = 2, kGid = 4, kSize = 8, kAtime = 16, kMtime = 32,
    kAtimeNow = 64, kMtimeNow = 128, kCtime = 256,
  };
};

struct Counters {
  std::atomic<uint64_t> copyups{0}, copyup_bytes{0}, whiteouts{0}, branch_changes{0};
};

// The control file: a hidden root entry whose xattrs expose the mount's
// state and accept branch changes. Its name starts with ".wh." so it can
// never collide with a user's file (such names are refused through AUFS).
inline constexpr std::string_view kControlName = kControlNameForTools;
inline constexpr NodeId kControlId = 3;
inline constexpr std::string_view kXattrInfo = "user.aufs.info";
inline constexpr std::string_view kXattrRemount = "user.aufs.remount";
inline constexpr std::string_view kXattrWhichPrefix = "user.aufs.which/";

class Union {
 public:
  // Opens the branches of validated options and prepares rw branches
  // (whiteout base, plnk, orph; stale temporaries removed).
  static Result<std::unique_ptr<Union>> create(const MountOptions& opts);
  ~Union();

  // ctx (optional): the caller, for nodirperm1 checks on lower directories.
  Result<Entry> lookup(NodeId parent, std::string_view name, const Ctx* ctx = nullptr);
  void forget(NodeId id, uint64_t n);
  Result<struct stat> getattr(NodeId id, FileHandle* fh = nullptr);
  Result<struct stat> setattr(NodeId id, const SetAttrIn& in, FileHandle* fh,
                              const Ctx& ctx);
  Result<std::string> readlink(NodeId id);

  Result<Entry> mknod(NodeId parent, std::string_view name, mode_t mode,
                      dev_t rdev, const Ctx& ctx);
  Result<Entry> mkdir(NodeId parent, std::string_view name, mode_t mode,
                      const Ctx& ctx);
  Result<Entry> symlink(const std::string& target, NodeId parent,
                        std::string_view name, const Ctx& ctx);
  Result<Entry> link(NodeId src, NodeId newparent, std::string_view name,
                     const Ctx& ctx);
  Status unlink(NodeId parent, std::string_view name);
  Status rmdir(NodeId parent, std::string_view name);
  Status rename(NodeId parent, std::string_view name, NodeId newparent,
                std::string_view newname, unsigned flags);

  Result<std::unique_ptr<FileHandle>> open(NodeId id, int flags, const Ctx& ctx);
  struct Created {
    Entry entry;
    std::unique_ptr<FileHandle> fh;
  };
  Result<Created> create(NodeId parent, std::string_view name, mode_t mode,
                         int flags, const Ctx& ctx);
  // The fd to use for I/O on fh (re-pointed after a copy-up), kept open for
  // as long as the caller holds it.
  Result<SharedFd> io_fd(FileHandle& fh);
  void release(std::unique_ptr<FileHandle> fh);

  Result<std::unique_ptr<DirHandle>> opendir(NodeId id, const Ctx* ctx = nullptr);
  Status rewinddir(DirHandle& dh);
  // Lookups of listed entries (one readdirplus reply), each as lookup() of
  // its name, adding a reference: the directory is opened once per branch
  // for all of them.
  std::vector<Result<Entry>> lookup_entries(DirHandle& dh, const VEntry* const* es, size_t n);
  // d_ino for a listed entry, equal to the st_ino a lookup reports.
  uint64_t entry_ino(const VEntry& e) const;
  void releasedir(std::unique_ptr<DirHandle> dh);

  Status fsyncdir(NodeId id, bool datasync);
  const std::string& ino_xattr() const { return ino_key_; }
  // access(2) on the union's view, for callers that ask (the kernel checks
  // permissions itself under default_permissions).
  Status access(NodeId id, int mask, const Ctx& ctx);
  Result<struct statvfs> statfs();
  Result<std::vector<char>> getxattr(NodeId id, const char* key, size_t size);
  Result<std::vector<char>> listxattr(NodeId id, size_t size);
  Status setxattr(NodeId id, const char* key, const void* val, size_t size, int flags,
                  const Ctx& ctx = Ctx{});
  Status removexattr(NodeId id, const char* key);

  // Runtime branch changes (remount), applied all-or-nothing in order.
  // Errors: EDOM bad index, ENOSPC too many branches, EBUSY files open on a
  // branch being removed or made read-only, EINVAL bad/overlapping branch,
  // ENOENT missing path. `msg` gets a one-line reason.
  Status change_branches(const std::vector<BranchOp>& ops, std::string* msg);
  // JSON description of the mount (branches, options, counters).
  std::string info_json() const;
  // JSON: which branch serves NAME in directory `dir`, copy-up/whiteout state.
  Result<std::string> which_json(NodeId dir, std::string_view name);
  // (node, parent, name) of every cached named node, for cache invalidation.
  std::vector<std::tuple<NodeId, NodeId, std::string>> cached_names() const;
  size_t open_files() const;
  size_t reap_pending() const;  // dirwh removals still queued
  // udba=notify: starts watching branch directories; `inval(dir, name)` is
  // called (from the watcher thread) for every entry changed behind the
  // mount, dir 0 meaning "everything".
  // Returns false when watching is impossible (the caller then shortens its
  // cache timeouts).
  bool start_notify(std::function<void(NodeId dir, const std::string& name)> inval);
  void stop_notify();
  // The cached node a directory entry currently resolves to (0 if none).
  NodeId cached_child(NodeId dir, const std::string& name);
  // udba=notify: changes in directory `dir` (or, for a non-directory, in its
  // parent) would go unnoticed because a watch could not be added.
  bool unwatched_dir(NodeId dir) const;
  bool unwatched_node(NodeId id) const;

  size_t node_count() const { return table_.size(); }
  const Counters& counters() const { return counters_; }
  BranchSetPtr branches() const;
  const MountOptions& options() const { return opts_; }
  uint64_t root_ino() const { return kRootIno; }
  uint64_t ino_of_node(NodeId id) const;  // st_ino of a node (0 if unknown)
  uint64_t parent_ino(NodeId id) const;   // st_ino of its parent directory

  // Attribute as the union shows it (own st_dev/st_ino, dir nlink rule).
  struct stat present(const Node& n, const struct stat& st) const;

  // Tests only (set before use): called at fixed points of a request, with
  // no lock held, so a test can interleave requests deterministically.
  // Points: "make_entry" (a name was resolved, the node not updated yet),
  // "copied_up" (a change made sure of its copy-up, not located yet),
  // "unlink" (the name to remove was resolved, nothing changed yet).
  using TestHook = std::function<void(std::string_view point, std::string_view name)>;
  void set_test_hook(TestHook h) { test_hook_ = std::move(h); }
  // Entries the rdcache keeps in all (tests use small budgets).
  void set_listing_budget(size_t entries) { listing_budget_ = entries; }

 private:
  explicit Union(const MountOptions& opts);
  struct Hit {
    int branch;
    struct stat st;
    uint64_t ino;  // union inode number of this branch entry
    std::string path;         // of the entry on its branch (dirren only)
    bool redirected = false;  // found through a dirren record
  };
  struct Resolution {
    std::vector<Hit> hits;      // top first; dirs: every merged layer
    bool whiteout = false;      // search stopped at a whiteout
    int whiteout_branch = -1;
    int opaque_branch = -1;     // dirs: layer carrying .wh..wh..opq
    bool lower_exists = false;  // some entry below the top hit (full scan)
    bool positive() const { return !hits.empty(); }
  };
  struct Where {  // a resolved node: its path and layers
    std::string rel;
    std::vector<int> layers;
    std::string data_rel;  // path on layers[0]
    int opaque = -1;  // dirs: branch of its opaque marker
    // dirren only: the path on each layer (a renamed directory's lower parts
    // keep their old paths); empty means rel on every layer.
    std::vector<std::string> paths;
    const std::string& at(size_t i) const { return paths.empty() ? rel : paths[i]; }
    const std::string& on(int b) const {
      for (size_t i = 0; i < paths.size(); ++i)
        if (layers[i] == b) return paths[i];
      return rel;
    }
  };
  // The Where of a resolved name (rel: its union path).
  Where where_of(const Resolution& r, const std::string& rel) const;
  // dirren: the path of n on branch `brid` (its redirect there, else its
  // parent's path plus its name). Caller holds tree_mu_.
  std::string path_on_locked(const Node& n, uint32_t brid) const;
  // dirren: reads the redirect record inside directory `name` of dirfd and
  // adds the lower parts it lists (branches below `top`) to r.
  bool add_redirects(const BranchSet& bs, int top, int dirfd, const std::string& name,
                     Resolution& r) const;
  // dirren: remembers the redirected layers of a resolved directory.
  void set_redirects(const BranchSet& bs, const NodePtr& n, const Resolution& r);
  // dirren: writes the redirect record of node n (on writable branch bw,
  // inside dirfd/name) for its current lower layers. *created: no record
  // was there before. Returns the (branch id, path) pairs recorded.
  Result<std::vector<std::pair<uint32_t, std::string>>> write_redirects(
      const BranchSet& bs, int bw, const Where& w, int dirfd, const std::string& name,
      bool* created);

  Status prepare_rw_branch(const Branch& b);
  // The parent opened on each of its layers, for several resolve_child
  // calls in one request (never kept longer: udba=reval must see renames).
  struct OpenedParent {
    std::vector<UniqueFd> fds;  // per index of Where::layers
    std::vector<int> errs;      // errno of a failed open, else 0
  };
  OpenedParent open_parent(const BranchSet& bs, const Where& parent) const;
  Result<Resolution> resolve_child(const BranchSet& bs, const Where& parent,
                                   std::string_view name, bool full,
                                   const Ctx* perm = nullptr,
                                   const OpenedParent* opened = nullptr) const;
  Result<std::vector<int>> root_layers(const BranchSet& bs) const;
  NodePtr node(NodeId id) const;
  std::string rel_path(const Node& n) const;  // takes tree_mu_ shared
  std::string rel_path_locked(const Node& n) const;
  Result<Where> where(const BranchSet& bs, const NodePtr& n);
  Status refresh(const BranchSet& bs, const NodePtr& n);
  // Names removed or moved: unlink, rmdir and rename count themselves in
  // `busy` while they change branches and bump `gen` when done. A
  // resolution read while either changed may be stale.
  struct NameChanges {
    uint64_t gen = 0;
    uint64_t busy = 0;
  };
  NameChanges name_changes() const { return {names_gen_.load(), names_busy_.load()}; }
  class NameChange;  // RAII: one removal or move in progress
  // seen: name_changes() from before the resolution (lookup): a node it
  // would make for a name removed meanwhile is checked first.
  Result<Entry> make_entry(const BranchSet& bs, const NodePtr& parent, std::string_view name,
                           const Resolution& r, const std::string& parent_rel,
                           const NameChanges* seen = nullptr);
  void detach(const NodePtr& n);
  // `fence`: table_.next_id() taken before the branch entry was removed.
  // Once it is gone, its inode (and so its number) may already belong to a
  // new object made by another request; only nodes older than the fence
  // stand for the removed one.
  void mark_unlinked(const BranchSet& bs, const NodePtr& parent, const std::string& name,
                     const Hit& top, NodeId fence);
  NodePtr node_for(const BranchSet& bs, const NodePtr& parent, const std::string& name,
                   const Resolution& r, const std::string& parent_rel);
  // keep_old: the node's current name stays one of its names (a hard link
  // looked up under another name): remembered in other_names. redir: the
  // directory's new dirren redirects, set with the name.
  void set_parent(const NodePtr& n, const NodePtr& parent, std::string_view name,
                  bool keep_old = false,
                  const std::vector<std::pair<uint32_t, std::string>>* redir = nullptr);
  void add_other_name_locked(Node& n, const NodePtr& parent, const std::string& name);

  Result<struct stat> stat_at(const BranchSet& bs, int b, const std::string& rel) const;
  uint64_t ino_of(const BranchSet& bs, int b, const struct stat& st) const;
  // Like ino_of, but reads the persistent number recorded on entries of
  // writable branches (set at copy-up) when it is not cached yet.
  uint64_t ino_at(const BranchSet& bs, int b, int dirfd, const std::string& name,
                  const struct stat& st) const;
  void record_ino(int dirfd, const std::string& name, uint64_t ino);
  bool is_internal_xattr(std::string_view key) const;
  // Pseudo-link store entry for a union inode on branch bw, if present.
  std::string plink_name(uint64_t ino) const;

  int first_writable(const BranchSet& bs) const;
  BranchFacts facts(const BranchSet& bs, const std::vector<int>& parent_layers, int parent_opaque,
                    int name_whiteout) const;
  // create= policy for a new name in `parent` (whited out on name_whiteout).
  Result<int> pick_create(const BranchSet& bs, const Where& parent, int name_whiteout, bool is_mkdir);
  // cpup= policy for an entry of `parent` that lives on branch src.
  Result<int> pick_cpup(const BranchSet& bs, const Where& parent, int src) const;
  Result<Where> parent_where(const BranchSet& bs, const NodePtr& n);
  Status ensure_dir_path(const BranchSet& bs, int bw, const NodePtr& dir);
  // want_ino: the union inode number of the directory being copied; the
  // entry at rel (on src_b, and on bw if there already) must be that one.
  // src_rel: its path on src_b (differs from rel under dirren redirects).
  Status copy_dir_entry(const BranchSet& bs, int src_b, int bw, const std::string& src_rel,
                        const std::string& rel, uint64_t want_ino);
  // Makes the node's data writable: copies it to a writable branch (with
  // its missing parents) unless it is on one already. need_name: also make
  // sure the node's own name exists there (not only a pseudo-link).
  // force_bw: copy to this branch even if the source is writable (coo/moo).
  Status copy_up(const NodePtr& n, bool with_data, off_t max_size = -1, bool need_name = false,
                 int force_bw = -1);
  Status copy_up_on_open(const BranchSet& bs, const NodePtr& n);
  // copy_up, then where(): the node's location for a change, which is
  // always on a writable branch (EIO rather than a read-only branch).
  Result<Where> where_for_write(const BranchSet& bs, const NodePtr& n, bool with_data,
                                off_t max_size = -1);
  // A node's remembered name no longer leads to it (renamed, replaced or
  // removed meanwhile): ESTALE while the node still stands for its inode
  // (the kernel then walks the path again, and its lookups re-attach the
  // node to a current name), ENOENT once its last name is gone.
  int stale_errno(const NodePtr& n) const;
  // Is st (found on branch b at the node's path) the node's own entry?
  bool is_node_entry(const BranchSet& bs, const NodePtr& n, int b, const struct stat& st) const;
  void reap_later(int parentfd, const std::string& name);
  bool name_below(const BranchSet& bs, const Where& parent, const std::string& name,
                  int top) const;
  Status copy_attrs(int src_dir, const std::string& src_name, int dst_dir,
                    const std::string& dst_name, const struct stat& st, unsigned icex);
  Status make_whiteout(const BranchSet& bs, int bw, int dirfd, std::string_view name);
  Status remove_whiteout_if_any(int dirfd, std::string_view name, bool* removed);
  Status make_opaque(const BranchSet& bs, int bw, int dirfd);
  void watch_dir(const BranchSet& bs, const NodePtr& n, const std::string& rel);
  // dirfd AT_FDCWD: name is a /proc/self/fd path (an orphan's copy).
  void repoint_readers(const NodePtr& n, int dirfd, const std::string& name, uint32_t brid);
  // Orphans (see struct Orphan). keep_orphan: called before a change that
  // may remove n's last name; does nothing unless the kernel knows n.
  void keep_orphan(const BranchSet& bs, const NodePtr& n);
  void drop_orphan(const NodePtr& n);  // the change did not happen
  void follow_orphan_locked(const NodePtr& n, int dirfd, const std::string& name, uint32_t brid);
  bool is_unlinked(const NodePtr& n) const;
  // n's orphan (null: none); for a change, first copied to an unnamed file
  // on a writable branch, as AUFS copies an unlinked open file.
  Result<std::shared_ptr<const Orphan>> orphan_of(const BranchSet& bs, const NodePtr& n,
                                                  bool for_change, bool with_data);
  Result<std::unique_ptr<FileHandle>> open_orphan(const BranchSet& bs, const NodePtr& n,
                                                  int flags, int err);
  Result<struct stat> setattr_orphan(const BranchSet& bs, const NodePtr& n, const SetAttrIn& in,
                                     int err);
  std::unique_ptr<FileHandle> new_handle(const NodePtr& n, UniqueFd fd, int flags, uint32_t brid);
  Status remove_dir_tree_meta(int parentfd, const std::string& name);
  // stamps (optional): mtime of every listed branch copy, for the rdcache.
  Result<std::vector<VEntry>> list_dir(const BranchSet& bs, const Where& w,
                                       std::vector<struct timespec>* stamps = nullptr) const;
  Result<Entry> create_common(NodeId parent, std::string_view name, mode_t mode, dev_t rdev,
                              const std::string* symlink_target, int open_flags,
                              const Ctx& ctx, std::unique_ptr<FileHandle>* fh_out);
  Status check_name(std::string_view name, bool lookup = false) const;
  // Registers n's new listing cache number `seq` and drops the oldest
  // caches past the budget. Called with no lock held.
  void keep_listing(const NodePtr& n, uint64_t seq);
  uint32_t next_temp_seq() { return temp_seq_.fetch_add(1); }
  Result<Entry> control_entry() const;
  Result<std::vector<char>> xattr_value(const std::string& s, size_t size) const;
  void track_open(uint32_t brid, bool writer, int delta);
  // Opens a branch root (no writes); finish_rw() then prepares an rw branch.
  Result<std::shared_ptr<Branch>> open_branch(const BranchSpec& spec, uint32_t id);
  Status finish_rw(Branch& b);
  bool ro() const { return ro_.load(); }

  MountOptions opts_;
  BranchSetPtr branches_;
  mutable std::mutex branches_mu_;
  mutable Xino xino_;  // a cache: lookups record what they read
  InodeTable table_;
  NodePtr root_;
  mutable std::shared_mutex tree_mu_;
  std::atomic<uint32_t> temp_seq_{0};
  Counters counters_;
  dev_t st_dev_ = 0;
  uid_t owner_ = 0;
  bool persist_ino_ = true;
  std::string ino_key_;  // xattr holding a copied-up entry's inode number
  struct timespec started_ {};
  std::mutex change_mu_;  // one branch change at a time
  uint32_t next_brid_ = 0;
  std::unique_ptr<BranchWatcher> watcher_;  // udba=notify only
  mutable std::mutex reap_mu_;
  std::condition_variable reap_cv_;
  std::deque<std::pair<UniqueFd, std::string>> reap_queue_;  // guarded by reap_mu_
  bool reap_stop_ = false;                                     // guarded by reap_mu_
  std::thread reaper_;
  std::mutex policy_mu_;
  PolicyState policy_;  // rr counter and mfs cache guarded by policy_mu_
  std::atomic<bool> ro_{false};  // -o ro, or remount ro
  mutable std::mutex open_mu_;
  std::unordered_map<uint32_t, std::pair<int, int>> open_by_branch_;  // (all, writers)
  TestHook test_hook_;
  std::atomic<uint64_t> names_gen_{0}, names_busy_{0};
  // rdcache: listings kept, oldest first; past the budget the oldest go.
  std::shared_ptr<VDirLive> vdir_live_ = std::make_shared<VDirLive>();
  std::mutex vdir_mu_;
  size_t listing_budget_ = 65536;  // entries, ~6 MB
  std::deque<std::pair<std::weak_ptr<Node>, uint64_t>> vdir_fifo_;  // (node, seq); vdir_mu_
  std::atomic<uint64_t> vdir_seq_{1};
  std::atomic<uint64_t> erased_{0}, trimmed_at_{0};  // nodes freed; at the last trim
};

}  // namespace aufs
