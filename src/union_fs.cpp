// Union operations with AUFS semantics. See union_fs.hpp for the contract and
// node.hpp for the locking rules.
//
// Crash-safety orderings (the daemon may die between any two steps):
//  * copy-up: build the copy under a hidden temporary name, rename it into
//    place with RENAME_NOREPLACE; only a hidden temporary can be left over.
//  * unlink/rmdir: the whiteout is made first, then the upper entry goes.
//  * create over a whiteout: the entry is made first, then the whiteout goes.
// An interruption can therefore leave a name and its whiteout together on a
// writable branch; on writable branches the real entry wins (it is the state
// either before an unlink or after a create), where AUFS would report EIO.
#include "aufs_fuse/union_fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <spdlog/spdlog.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <random>

#include "aufs_fuse/check.hpp"
#include "aufs_fuse/dirren.hpp"
#include "aufs_fuse/json.hpp"
#include "aufs_fuse/sys.hpp"
#include "aufs_fuse/whiteout.hpp"

namespace aufs {
namespace {

bool is_dir_mode(mode_t m) { return S_ISDIR(m); }

// The kernel's open flags carry internal bits (e.g. __FMODE_EXEC for an
// execve) that openat2 rejects with EINVAL: pass on only the flags that
// mean something for the backing file.
constexpr int kPassFlags = O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_DIRECT |
                           O_LARGEFILE | O_NOATIME | O_TRUNC;
bool absent(int e) { return e == ENOENT || e == ENOTDIR || e == ELOOP || e == ENAMETOOLONG; }

// File times advance in clock ticks: a change made within the same tick as
// the stamp would leave it equal. A stamp that recent is not trusted (the
// "racy git" rule).
bool recent(const struct timespec& t) {
  struct timespec now;
  ::clock_gettime(CLOCK_REALTIME, &now);
  int64_t age_ns = (now.tv_sec - t.tv_sec) * 1000000000LL + (now.tv_nsec - t.tv_nsec);
  return age_ns < 50'000'000;
}

// Restores a directory's atime/mtime when it goes out of scope, so internal
// steps (copy-up, whiteouts) do not change the visible parent timestamps.
class KeepTimes {
 public:
  explicit KeepTimes(int dirfd) : fd_(dirfd) {
    struct stat st;
    if (::fstatat(fd_, "", &st, AT_EMPTY_PATH) == 0) {
      ts_[0] = st.st_atim;
      ts_[1] = st.st_mtim;
      ok_ = true;
    }
  }
  ~KeepTimes() {
    if (ok_) ::utimensat(AT_FDCWD, sys::proc_fd_path(fd_).c_str(), ts_, 0);
  }

 private:
  int fd_;
  bool ok_ = false;
  struct timespec ts_[2] {};
};

}  // namespace

Union::Union(const MountOptions& opts) : opts_(opts), policy_(opts.policy), ro_(opts.read_only) {}
Union::~Union() {
  {
    std::lock_guard<std::mutex> g(reap_mu_);
    reap_stop_ = true;
  }
  reap_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
}

// A background worker removes directories renamed aside by rmdir (dirwh).
// If the daemon stops first, the hidden leftovers are removed by the branch
// check at the next mount.
void Union::reap_later(int parentfd, const std::string& name) {
  int d = ::fcntl(parentfd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) {
    (void)remove_dir_tree_meta(parentfd, name);
    return;
  }
  std::lock_guard<std::mutex> g(reap_mu_);
  reap_queue_.emplace_back(UniqueFd(d), name);
  if (!reaper_.joinable()) {
    reaper_ = std::thread([this] {
      std::unique_lock<std::mutex> lk(reap_mu_);
      for (;;) {
        reap_cv_.wait(lk, [this] { return reap_stop_ || !reap_queue_.empty(); });
        if (reap_queue_.empty()) return;  // stopping, nothing left
        auto job = std::move(reap_queue_.front());
        reap_queue_.pop_front();
        lk.unlock();
        if (auto st = remove_dir_tree_meta(job.first.get(), job.second); !st.ok())
          spdlog::warn("background removal of {} failed: {}", job.second, std::strerror(st.err()));
        lk.lock();
      }
    });
  }
  reap_cv_.notify_one();
}

size_t Union::reap_pending() const {
  std::lock_guard<std::mutex> g(reap_mu_);
  return reap_queue_.size();
}

Result<std::unique_ptr<Union>> Union::create(const MountOptions& opts) {
  std::unique_ptr<Union> u(new Union(opts));
  auto bs = std::make_shared<BranchSet>();
  bs->generation = 1;
  u->owner_ = ::geteuid();
  u->persist_ino_ = !opts.noxino;
  u->ino_key_ = daemon_is_root() ? "trusted.aufs-fuse.ino" : "user.aufs-fuse.ino";
  ::clock_gettime(CLOCK_REALTIME, &u->started_);
  for (const auto& spec : opts.branches) {
    if (spec.writable() && !opts.read_only && opts.check) {
      // Leftovers of an interrupted run (daemon killed mid-operation).
      auto rep = check_branch(spec.path, true);
      if (!rep.ok()) {
        spdlog::warn("branch {}: check failed: {}", spec.path, std::strerror(rep.err()));
      } else {
        for (auto& is : rep->issues)
          spdlog::warn("branch {}: {} {}{}", spec.path, kind_name(is.kind), is.path,
                       is.fixed ? ": repaired" : ": left as is");
      }
    }
    auto b = u->open_branch(spec, u->next_brid_++);
    if (!b.ok()) return Errno{b.err()};
    if (b.value()->writable() && !opts.read_only) AUFS_TRY(u->finish_rw(*b.value()));
    bs->br.push_back(std::move(b.value()));
  }
  u->branches_ = bs;
  u->root_ = std::make_shared<Node>(kRootId, kRootIno, S_IFDIR);
  auto rl = u->root_layers(*bs);
  if (!rl.ok()) return Errno{rl.err()};
  u->root_->layers = rl.value();
  {
    const BranchSet& b0 = *bs;
    int last = rl->back();
    auto o = sys::lstat_at(b0[static_cast<size_t>(last)].root.get(), std::string(wh::kOpaque));
    if (b0[static_cast<size_t>(last)].wh_able() && o.ok() && S_ISREG(o->st_mode)) u->root_->opaque = last;
  }
  u->root_->bgen = bs->generation;
  u->table_.insert(u->root_, 1);
  std::random_device rd;
  u->temp_seq_.store(rd());
  return u;
}

Result<std::shared_ptr<Branch>> Union::open_branch(const BranchSpec& spec, uint32_t id) {
  auto b = std::make_shared<Branch>();
  b->id = id;
  b->spec = spec;
  int fd = ::open(spec.path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    spdlog::error("branch {}: {}", spec.path, std::strerror(e));
    return Errno{e};
  }
  b->root.reset(fd);
  struct stat st;
  if (::fstat(fd, &st) < 0) return last_errno();
  b->dev = st.st_dev;
  b->root_ino = st.st_ino;
  b->seed = branch_seed(spec.path.c_str());
  return b;
}

Status Union::finish_rw(Branch& b) {
  if (auto s = prepare_rw_branch(b); !s.ok()) {
    spdlog::error("branch {}: cannot prepare rw branch: {}", b.spec.path, std::strerror(s.err()));
    return s;
  }
  auto base = sys::lstat_at(b.root.get(), std::string(wh::kBase));
  b.base_ok = base.ok() && S_ISREG(base->st_mode);
  return {};
}

Status Union::prepare_rw_branch(const Branch& b) {
  int root = b.root.get();
  auto base = sys::lstat_at(root, std::string(wh::kBase));
  if (b.spec.nolwh) {
    if (base.ok() && S_ISREG(base->st_mode))
      (void)sys::unlink_at(root, std::string(wh::kBase), 0);
  } else if (!base.ok()) {
    int fd = ::openat(root, std::string(wh::kBase).c_str(),
                      O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0444);
    if (fd < 0 && errno != EEXIST) return last_errno();
    if (fd >= 0) {
      ::fchmod(fd, 0444);
      ::close(fd);
    }
  } else if (!S_ISREG(base->st_mode)) {
    // Whiteouts are hard links to the base: a planted symlink or device
    // there would turn every whiteout into one. Replace it.
    if (S_ISDIR(base->st_mode) || ::unlinkat(root, std::string(wh::kBase).c_str(), 0) < 0) {
      spdlog::warn("branch {}: {} is not a regular file; whiteouts will be plain files",
                   b.spec.path, wh::kBase);
    } else {
      spdlog::warn("branch {}: replaced {} (was not a regular file)", b.spec.path, wh::kBase);
      int fd = ::openat(root, std::string(wh::kBase).c_str(),
                        O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0444);
      if (fd >= 0) {
        ::fchmod(fd, 0444);
        ::close(fd);
      }
    }
  }
  for (auto d : {wh::kPlink, wh::kOrph}) {
    if (::mkdirat(root, std::string(d).c_str(), 0700) < 0 && errno != EEXIST)
      return last_errno();
  }
  return {};
}

BranchSetPtr Union::branches() const {
  std::lock_guard<std::mutex> g(branches_mu_);
  return branches_;
}

NodePtr Union::node(NodeId id) const {
  if (id == kRootId) return root_;
  return table_.get(id);
}

std::string Union::rel_path_locked(const Node& n) const {
  std::vector<const std::string*> parts;
  const Node* cur = &n;
  while (cur && cur->id != kRootId) {
    parts.push_back(&cur->name);
    cur = cur->parent.get();
  }
  std::string r;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (!r.empty()) r += '/';
    r += **it;
  }
  return r;
}

std::string Union::rel_path(const Node& n) const {
  std::shared_lock<std::shared_mutex> g(tree_mu_);
  return rel_path_locked(n);
}

Status Union::check_name(std::string_view name, bool lookup) const {
  // shwh lets whiteouts be looked at (read-only use), never created.
  // (metadata such as .wh..wh.plnk stays out of reach even then).
  bool shown = lookup && opts_.shwh && (!wh::is_meta_name(name) || name == wh::kOpaque);
  if (int e = wh::check_user_name(name, shown); e) return Errno{e};
  if (name.find('/') != std::string_view::npos || name.empty()) return Errno{EINVAL};
  return {};
}

Result<std::vector<int>> Union::root_layers(const BranchSet& bs) const {
  std::vector<int> layers;
  for (size_t i = 0; i < bs.size(); ++i) {
    layers.push_back(static_cast<int>(i));
    if (bs[i].wh_able()) {
      auto st = sys::lstat_at(bs[i].root.get(), std::string(wh::kOpaque));
      if (st.ok() && S_ISREG(st->st_mode)) break;
    }
  }
  return layers;
}

uint64_t Union::ino_of(const BranchSet& bs, int b, const struct stat& st) const {
  return xino_.get(bs[static_cast<size_t>(b)].seed, st.st_ino);
}

uint64_t Union::ino_at(const BranchSet& bs, int b, int dirfd, const std::string& name,
                       const struct stat& st) const {
  const Branch& br = bs[static_cast<size_t>(b)];
  if (!br.writable() || !persist_ino_) return xino_.get(br.seed, st.st_ino);
  if (auto v = xino_.find(br.seed, st.st_ino)) return *v;
  uint64_t val = hash_ino(br.seed, st.st_ino);
  auto x = sys::getxattr_at(dirfd, name, ino_key_.c_str(), sizeof(uint64_t));
  if (x.ok() && x->size() == sizeof(uint64_t)) {
    uint64_t v;
    std::memcpy(&v, x->data(), sizeof v);
    if (v >= kFirstIno) val = v;
  }
  xino_.remember(br.seed, st.st_ino, val);
  return val;
}

// The number survives unmount: a copied-up entry carries it in an xattr.
void Union::record_ino(int dirfd, const std::string& name, uint64_t ino) {
  if (!persist_ino_) return;
  auto s = sys::setxattr_at(dirfd, name, ino_key_.c_str(), &ino, sizeof ino, 0);
  if (!s.ok()) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
      spdlog::warn("cannot record inode numbers ({}): they will change after a remount",
                   std::strerror(s.err()));
  }
}

bool Union::is_internal_xattr(std::string_view key) const {
  return key.starts_with("trusted.aufs-fuse.") || key.starts_with("user.aufs-fuse.");
}

std::string Union::plink_name(uint64_t ino) const {
  return std::string(wh::kPlink) + "/" + std::to_string(ino);
}

Result<struct stat> Union::stat_at(const BranchSet& bs, int b, const std::string& rel) const {
  auto fd = sys::open_beneath(bs[static_cast<size_t>(b)].root.get(), rel, O_PATH | O_NOFOLLOW);
  if (!fd.ok()) return Errno{fd.err()};
  return sys::fstat_fd(fd->get());
}

Union::OpenedParent Union::open_parent(const BranchSet& bs, const Where& parent) const {
  OpenedParent o;
  for (size_t li = 0; li < parent.layers.size(); ++li) {
    auto fd = sys::open_beneath(bs[static_cast<size_t>(parent.layers[li])].root.get(),
                                parent.at(li), O_PATH | O_DIRECTORY);
    o.errs.push_back(fd.ok() ? 0 : fd.err());
    o.fds.push_back(fd.ok() ? std::move(fd.value()) : UniqueFd());
  }
  return o;
}

Result<Union::Resolution> Union::resolve_child(const BranchSet& bs, const Where& parent,
                                               std::string_view name_sv, bool full,
                                               const Ctx* perm, const OpenedParent* opened) const {
  Resolution r;
  std::string name(name_sv);
  std::string whname = wh::whiteout_of(name);
  const std::vector<int>& parent_layers = parent.layers;
  bool first = true;  // the first branch where the parent exists
  for (size_t li = 0; li < parent_layers.size(); ++li) {
    int b = parent_layers[li];
    const std::string& parent_rel = parent.at(li);
    const Branch& br = bs[static_cast<size_t>(b)];
    UniqueFd own;
    int pfd;
    if (opened) {
      if (int e = opened->errs[li]) {
        if (absent(e)) continue;
        return Errno{e};
      }
      pfd = opened->fds[li].get();
    } else {
      auto o = sys::open_beneath(br.root.get(), parent_rel, O_PATH | O_DIRECTORY);
      if (!o.ok()) {
        if (absent(o.err())) continue;
        return Errno{o.err()};
      }
      own = std::move(o.value());
      pfd = own.get();
    }
    if (perm && b != parent_layers[0]) {
      // nodirperm1: every branch's copy of the directory must allow the
      // search (the kernel checked the top copy already).
      auto dst = sys::fstat_fd(pfd);
      if (dst.ok() && !may_access(dst.value(), X_OK, *perm)) return Errno{EACCES};
    }
    bool whiteout = false;
    if (br.wh_able()) {
      auto w = sys::lstat_at(pfd, whname);
      if (w.ok()) {
        if (!S_ISREG(w->st_mode)) {
          spdlog::warn("invalid whiteout {}/{} on branch {} (not a regular file)", parent_rel,
                       whname, br.spec.path);
          return Errno{EIO};
        }
        whiteout = true;
      } else if (!absent(w.err())) {
        return Errno{w.err()};
      }
    }
    auto st = sys::lstat_at(pfd, name);
    if (!st.ok() && !absent(st.err())) return Errno{st.err()};
    if (whiteout) {
      if (st.ok() && (br.writable() || opts_.ociwh) && r.hits.empty()) {
        // rw branch: an interrupted create/unlink left both; the real entry
        // wins. ociwh: OCI layers' whiteouts hide only lower layers.
        if (br.writable())
          spdlog::warn("{}/{} and its whiteout both exist on branch {}; using the entry",
                       parent_rel, name, br.spec.path);
        r.hits.push_back({b, st.value(), ino_at(bs, b, pfd, name, st.value()),
                          opts_.dirren ? sys::join(parent_rel, name) : std::string()});
        // An interrupted dirren rename (its whiteout made, the directory not
        // moved yet) keeps the old name whole.
        if (opts_.dirren && br.writable() && is_dir_mode(st->st_mode))
          add_redirects(bs, b, pfd, name, r);
      }
      if (st.ok() && !br.writable() && !opts_.ociwh && first && opts_.udba != Udba::None) {
        // AUFS: both on the first branch examined is an inconsistent branch.
        spdlog::warn("{}/{} and its whiteout both exist on branch {}", parent_rel, name, br.spec.path);
        return Errno{EIO};
      }
      r.whiteout = true;
      r.whiteout_branch = b;
      break;
    }
    first = false;
    if (!st.ok()) continue;
    if (!r.hits.empty()) {
      bool top_dir = is_dir_mode(r.hits[0].st.st_mode);
      if (!top_dir || !is_dir_mode(st->st_mode)) {
        // Non-dirs do not merge; a lower entry of another type under a
        // directory is skipped and the merge goes on below it (AUFS). The
        // OCI rule (ociwh) lets it end the directory, as overlayfs does.
        r.lower_exists = true;
        if (opts_.ociwh && top_dir) break;
        if (!full && !top_dir) break;
        continue;
      }
      r.lower_exists = true;
    }
    r.hits.push_back({b, st.value(), ino_at(bs, b, pfd, name, st.value()),
                      opts_.dirren ? sys::join(parent_rel, name) : std::string()});
    if (!is_dir_mode(st->st_mode)) {
      if (!full) break;
      continue;
    }
    if (br.wh_able()) {
      auto o = sys::lstat_at(pfd, name + "/" + std::string(wh::kOpaque));
      if (o.ok() && S_ISREG(o->st_mode)) {
        r.opaque_branch = b;
        break;
      }
    }
    // dirren: a directory renamed with its lower parts left in place; its
    // record replaces the search below (like an opaque directory that lists
    // its lower parts). Only the top copy can carry one.
    if (opts_.dirren && r.hits.size() == 1 && br.writable() &&
        add_redirects(bs, b, pfd, name, r))
      break;
  }
  return r;
}

bool Union::add_redirects(const BranchSet& bs, int top, int dirfd, const std::string& name,
                          Resolution& r) const {
  // A cached directory remembers that it had no record at a given ctime;
  // adding one (a new entry in it) changes the ctime.
  const struct stat& dst = r.hits[0].st;
  int64_t ctime_ns = dst.st_ctim.tv_sec * 1000000000LL + dst.st_ctim.tv_nsec;
  NodePtr cached = table_.by_ino(r.hits[0].ino);
  if (cached && cached->extra_if() && cached->extra_if()->no_redir_ctime.load() == ctime_ns)
    return false;
  auto fd = sys::open_beneath(dirfd, sys::join(name, std::string(dirren::kRecordName)),
                              O_RDONLY | O_NOFOLLOW);
  if (!fd.ok()) {
    if (!absent(fd.err()))
      spdlog::warn("{}: dirren record unreadable: {}", name, std::strerror(fd.err()));
    else if (cached && !recent(dst.st_ctim))
      cached->extra().no_redir_ctime.store(ctime_ns);
    return false;
  }
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t k = ::read(fd->get(), buf, sizeof buf);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0 || text.size() > (1u << 20)) break;
    text.append(buf, static_cast<size_t>(k));
  }
  auto es = dirren::decode(text);
  if (!es.ok()) {
    // Not ours, or damaged: the directory merges by name as without dirren.
    spdlog::warn("{}: invalid dirren record ignored", name);
    return false;
  }
  r.lower_exists = true;  // the old name's parts, at least (whiteouts are cheap)
  for (size_t b = static_cast<size_t>(top) + 1; b < bs.size(); ++b) {
    const Branch& lb = bs[b];
    bool by_path = false;
    const dirren::Entry* e = dirren::match(*es, lb.dev, lb.root_ino, lb.spec.path, &by_path);
    if (!e) continue;
    if (lb.writable()) {
      // Recorded while read-only: writes would look for it at the
      // directory's own path, so it is not merged while writable.
      spdlog::warn("{}: dirren record names writable branch {}; its part is not merged", name,
                   lb.spec.path);
      continue;
    }
    auto [prel, leaf] = sys::split_parent(e->rel);
    auto pfd = sys::open_beneath(lb.root.get(), prel, O_PATH | O_DIRECTORY);
    if (!pfd.ok()) continue;  // stale record: the lower directory is gone
    auto st = sys::lstat_at(pfd->get(), leaf);
    if (!st.ok() || !S_ISDIR(st->st_mode)) continue;
    // Same branch tree (its root inode unchanged): the directory must be the
    // one recorded. A branch copied elsewhere has new inode numbers; there
    // the path alone decides.
    if (lb.root_ino == e->root_ino && st->st_ino != e->dir_ino) continue;
    r.hits.push_back({static_cast<int>(b), st.value(),
                      ino_at(bs, static_cast<int>(b), pfd->get(), leaf, st.value()), e->rel, true});
    if (lb.wh_able()) {
      auto o = sys::lstat_at(pfd->get(), leaf + "/" + std::string(wh::kOpaque));
      if (o.ok() && S_ISREG(o->st_mode)) {
        r.opaque_branch = static_cast<int>(b);
        break;
      }
    }
  }
  return true;
}

Union::Where Union::where_of(const Resolution& r, const std::string& rel) const {
  Where w;
  w.rel = rel;
  for (auto& h : r.hits) w.layers.push_back(h.branch);
  w.opaque = r.opaque_branch;
  if (opts_.dirren)
    for (auto& h : r.hits) w.paths.push_back(h.path);
  w.data_rel = w.paths.empty() ? rel : w.paths[0];
  return w;
}

void Union::set_redirects(const BranchSet& bs, const NodePtr& n, const Resolution& r) {
  std::vector<std::pair<uint32_t, std::string>> redir;
  for (auto& h : r.hits)
    if (h.redirected) redir.emplace_back(bs[static_cast<size_t>(h.branch)].id, h.path);
  std::unique_lock<std::shared_mutex> g(tree_mu_);
  if (!redir.empty() || n->extra_if()) n->extra().redir = std::move(redir);
}

std::string Union::path_on_locked(const Node& start, uint32_t brid) const {
  std::string suffix;
  for (const Node* c = &start; c && c->id != kRootId; c = c->parent.get()) {
    if (const Node::Extra* x = c->extra_if())
      for (auto& [id, p] : x->redir)
        if (id == brid) return suffix.empty() ? p : p + "/" + suffix;
    suffix = suffix.empty() ? c->name : c->name + "/" + suffix;
  }
  return suffix;
}

struct stat Union::present(const Node& n, const struct stat& st) const {
  struct stat out = st;
  out.st_ino = n.id == kRootId ? kRootIno : n.ino;
  return out;
}

void Union::add_other_name_locked(Node& n, const NodePtr& parent, const std::string& name) {
  if (n.is_dir() || !parent) return;
  auto& others = n.extra().other_names;
  for (auto& [p, nm] : others)
    if (p == parent && nm == name) return;
  if (others.size() >= 4) others.erase(others.begin());
  others.emplace_back(parent, name);
}

void Union::set_parent(const NodePtr& n, const NodePtr& parent, std::string_view name,
                       bool keep_old, const std::vector<std::pair<uint32_t, std::string>>* redir) {
  std::unique_lock<std::shared_mutex> g(tree_mu_);
  // With the name, under one lock: a path built between the two would
  // join the new name to the old redirects.
  if (redir && (!redir->empty() || n->extra_if())) n->extra().redir = *redir;
  if (n->parent == parent && n->name == name && !n->unlinked) return;
  if (keep_old && n->parent && !n->unlinked) add_other_name_locked(*n, n->parent, n->name);
  if (Node::Extra* x = n->extra_if())
    std::erase_if(x->other_names, [&](auto& o) { return o.first == parent && o.second == name; });
  NodePtr old = n->parent;
  if (old != parent) {
    if (parent) parent->children++;
    n->parent = parent;
    if (old) {
      old->children--;
      if (old->children == 0 && old->nlookup.load() == 0 && old->id != kRootId) {
        g.unlock();
        detach(old);
        g.lock();
      }
    }
  }
  n->name = std::string(name);
  n->unlinked = false;
}

void Union::detach(const NodePtr& start) {
  NodePtr n = start;
  while (n && n->id != kRootId) {
    NodePtr parent;
    {
      std::unique_lock<std::shared_mutex> g(tree_mu_);
      if (!table_.erase_if_unused(n->id, n->children)) return;
      erased_.fetch_add(1, std::memory_order_relaxed);
      if (watcher_ && n->is_dir()) watcher_->unwatch(n->id);
      parent = n->parent;
      if (parent) parent->children--;
      if (!parent || parent->children != 0 || parent->nlookup.load() != 0) return;
    }
    n = parent;
  }
}

void Union::forget(NodeId id, uint64_t n) {
  if (id == kControlId) return;
  if (NodePtr node = table_.forget(id, n)) detach(node);
  // After a wave of forgets (memory pressure, drop_caches; or one that left
  // few nodes) the freed nodes go back to the system, not only to malloc's
  // free lists: the heap is fragmented by then, so free() alone returns
  // little.
  constexpr uint64_t kTrimEvery = 32768;
  uint64_t e = erased_.load(std::memory_order_relaxed);
  uint64_t last = trimmed_at_.load(std::memory_order_relaxed);
  bool wave = e - last >= kTrimEvery || (e - last >= 4096 && table_.size() < (e - last) / 4);
  if (wave && trimmed_at_.compare_exchange_strong(last, e)) ::malloc_trim(0);
}

int Union::stale_errno(const NodePtr& n) const {
  return table_.by_ino(n->ino) == n ? ESTALE : ENOENT;
}

bool Union::is_node_entry(const BranchSet& bs, const NodePtr& n, int b, const struct stat& st) const {
  if ((st.st_mode & S_IFMT) != n->type) return false;
  // noplink: a hard-linked file copied up became a separate inode with a
  // number of its own, still served by the node; only the type can tell.
  if (!opts_.plink && S_ISREG(n->type)) return true;
  return n->id == kRootId || ino_of(bs, b, st) == n->ino;
}

Result<Union::Where> Union::where(const BranchSet& bs, const NodePtr& n) {
  bool stale;
  {
    std::lock_guard<SmallMutex> g(n->mu);
    stale = n->bgen != bs.generation;
  }
  if (stale) AUFS_TRY(refresh(bs, n));
  Where w;
  {
    std::shared_lock<std::shared_mutex> g(tree_mu_);
    // Its name was removed: what is there now (if anything) is another
    // object. A hard link may keep it under another name.
    if (n->unlinked && !n->is_dir()) return Errno{stale_errno(n)};
    w.rel = rel_path_locked(*n);
  }
  bool own_data;
  {
    std::lock_guard<SmallMutex> g(n->mu);
    w.layers = n->layers;
    // data_rel empty: the data lives under the node's own (current) name, so
    // a rename of any ancestor directory is followed automatically.
    own_data = n->is_dir() || n->data_rel.empty();
    w.data_rel = own_data ? w.rel : n->data_rel;
    w.opaque = n->opaque;
  }
  if (w.layers.empty()) return Errno{ESTALE};
  if (opts_.dirren) {
    std::shared_lock<std::shared_mutex> g(tree_mu_);
    for (int b : w.layers) w.paths.push_back(path_on_locked(*n, bs[static_cast<size_t>(b)].id));
    if (own_data) w.data_rel = w.paths[0];
  }
  return w;
}

Result<Union::Where> Union::parent_where(const BranchSet& bs, const NodePtr& n) {
  NodePtr parent;
  {
    std::shared_lock<std::shared_mutex> g(tree_mu_);
    if (n->unlinked) return Errno{ESTALE};
    parent = n->parent;
  }
  if (!parent) return Errno{ESTALE};
  return where(bs, parent);
}

// After a branch change: resolve the node's path again from the root with
// the new branch set (AUFS refreshes its objects lazily the same way).
Status Union::refresh(const BranchSet& bs, const NodePtr& n) {
  std::vector<NodePtr> chain;
  {
    std::shared_lock<std::shared_mutex> g(tree_mu_);
    for (NodePtr c = n; c && c->id != kRootId; c = c->parent) chain.push_back(c);
    if (n->unlinked) return Errno{ESTALE};
  }
  std::reverse(chain.begin(), chain.end());
  auto rl = root_layers(bs);
  if (!rl.ok()) return Errno{rl.err()};
  Where cur;
  cur.layers = rl.value();
  if (opts_.dirren) cur.paths.assign(cur.layers.size(), std::string());
  {
    std::lock_guard<SmallMutex> g(root_->mu);
    root_->layers = cur.layers;
    root_->bgen = bs.generation;
  }
  for (auto& c : chain) {
    std::string name;
    {
      std::shared_lock<std::shared_mutex> g(tree_mu_);
      name = c->name;
    }
    auto r = resolve_child(bs, cur, name, false);
    if (!r.ok()) return Errno{r.err()};
    if (!r->positive() || (r->hits[0].st.st_mode & S_IFMT) != c->type) return Errno{ESTALE};
    cur = where_of(r.value(), sys::join(cur.rel, name));
    const std::vector<int>& layers = cur.layers;
    if (opts_.dirren && c->is_dir()) set_redirects(bs, c, r.value());
    std::lock_guard<SmallMutex> g(c->mu);
    if (c->is_dir()) {
      c->layers = layers;
      c->opaque = r->opaque_branch;
    } else {
      if (c->layers.empty() || c->layers[0] != layers[0] || !c->data_rel.empty()) c->data_gen++;
      c->layers = {layers[0]};
      c->data_rel.clear();
    }
    c->bgen = bs.generation;
  }
  return {};
}

class Union::NameChange {
 public:
  explicit NameChange(Union& u) : u_(u) { u_.names_busy_++; }
  ~NameChange() {
    u_.names_gen_++;
    u_.names_busy_--;
  }

 private:
  Union& u_;
};

Result<Entry> Union::make_entry(const BranchSet& bs, const NodePtr& parent, std::string_view name,
                                const Resolution& r_in, const std::string& parent_rel,
                                const NameChanges* seen) {
  if (test_hook_) test_hook_("make_entry", name);
  const Resolution* rp = &r_in;
  Resolution fresh;
  NodePtr n;
  for (int attempt = 0;; ++attempt) {
    n = table_.find_or_insert(rp->hits[0].ino, rp->hits[0].st.st_mode & S_IFMT, 1);
    bool moving;
    {
      std::shared_lock<std::shared_mutex> g(tree_mu_);
      moving = n->parent && (n->parent != parent || n->name != name || n->unlinked);
    }
    // A name removed or moved while it was resolved: a new node made for
    // the old answer would stand for nothing (its node, if any, was retired).
    bool changed = false;
    if (seen && !moving && attempt == 0) {
      NameChanges now = name_changes();
      changed = seen->busy || now.busy || now.gen != seen->gen;
    }
    if (!moving && !changed) break;
    // The node is known under another name, or as removed. A resolution
    // read before the node was renamed or unlinked (a whiteout made, or the
    // upper entry gone) would undo that and point the node at a name that
    // stands for something else by now, or bring a removed file back: move
    // the node only if the name still resolves to it; else answer with what
    // the name resolves to now.
    auto pw = where(bs, parent);
    auto again = pw.ok() ? resolve_child(bs, pw.value(), name, false)
                         : Result<Resolution>(Errno{pw.err()});
    if (again.ok() && again->positive() && again->hits[0].ino == rp->hits[0].ino &&
        !((again->hits[0].st.st_mode ^ rp->hits[0].st.st_mode) & S_IFMT))
      break;
    forget(n->id, 1);
    if (!again.ok()) return Errno{again.err()};
    if (!again->positive()) return Errno{ENOENT};
    if (attempt >= 2) return Errno{ESTALE};  // the kernel walks the path again
    fresh = std::move(again.value());
    rp = &fresh;
  }
  const Resolution& r = *rp;
  const Hit& top = r.hits[0];
  uint64_t ino = top.ino;
  set_parent(n, parent, name, !S_ISDIR(top.st.st_mode) && top.st.st_nlink > 1);
  if (opts_.dirren && n->is_dir()) set_redirects(bs, n, r);
  struct stat st = top.st;
  std::string rel = sys::join(parent_rel, name);
  {
    std::lock_guard<SmallMutex> g(n->mu);
    // The resolution was read without the node's lock: a copy-up of this
    // node may have finished since (copy_up and ensure_dir_path update the
    // layers under n->mu after the copy is in place). A layer of the node
    // above the resolution's top that still holds this very entry means the
    // resolution is stale there; keeping the lower layer would point the
    // node (and the next open for writing) back at a read-only branch.
    auto newer_upper = [&](int b, const std::string& data_rel) -> std::optional<struct stat> {
      auto [prel, leaf] = sys::split_parent(data_rel);
      auto pfd = sys::open_beneath(bs[static_cast<size_t>(b)].root.get(), prel, O_PATH | O_DIRECTORY);
      if (!pfd.ok()) return std::nullopt;
      auto ust = sys::lstat_at(pfd->get(), leaf);
      if (!ust.ok() || (ust->st_mode & S_IFMT) != n->type) return std::nullopt;
      if (ino_at(bs, b, pfd->get(), leaf, ust.value()) != n->ino) return std::nullopt;
      return ust.value();
    };
    bool same_gen = n->bgen == bs.generation;
    bool kept_upper = false;
    if (n->is_dir()) {
      std::vector<int> upper;  // copied-up layers the resolution missed
      std::optional<struct stat> upper_st;
      if (same_gen)
        for (int b : n->layers) {
          if (b >= top.branch) break;
          if (auto u = newer_upper(b, rel)) {
            upper.push_back(b);
            if (!upper_st) upper_st = u;
          }
        }
      n->layers = upper;
      for (auto& h : r.hits) n->layers.push_back(h.branch);
      n->opaque = r.opaque_branch;
      // AUFS: nlink = top's plus (nlink - 2) of each lower dir, so that find
      // never under-counts subdirectories.
      if (upper_st) {
        st = *upper_st;
        if (top.st.st_nlink > 2) st.st_nlink += top.st.st_nlink - 2;
      }
      for (size_t i = 1; i < r.hits.size(); ++i)
        if (r.hits[i].st.st_nlink > 2) st.st_nlink += r.hits[i].st.st_nlink - 2;
    } else if (same_gen && !n->layers.empty() && n->layers[0] < top.branch &&
               bs[static_cast<size_t>(n->layers[0])].writable()) {
      if (auto u = newer_upper(n->layers[0], n->data_rel.empty() ? rel : n->data_rel)) {
        st = *u;
        kept_upper = true;  // stale resolution: the node keeps its copied-up data
      }
    }
    if (!n->is_dir() && !kept_upper) {
      bool keep = false;
      if (opts_.plink && S_ISREG(top.st.st_mode) && top.st.st_nlink > 1 &&
          !bs[static_cast<size_t>(top.branch)].writable()) {
        // A lower hard link whose inode was copied up under another name:
        // serve the copy (pseudo-link, recorded in .wh..wh.plnk/).
        for (int b = top.branch - 1; b >= 0 && !keep; --b) {
          if (!bs[static_cast<size_t>(b)].writable()) continue;
          std::string pl = plink_name(ino);
          auto up = sys::lstat_at(bs[static_cast<size_t>(b)].root.get(), pl);
          if (up.ok() && S_ISREG(up->st_mode)) {
            keep = true;
            st = up.value();
            if (n->layers.empty() || n->layers[0] != b || n->data_rel != pl) n->data_gen++;
            n->layers = {b};
            n->data_rel = pl;
          }
        }
      }
      if (!keep) {
        if (n->layers.empty() || n->layers[0] != top.branch || !n->data_rel.empty()) n->data_gen++;
        n->layers = {top.branch};
        n->data_rel.clear();
      }
    }
    n->bgen = bs.generation;
  }
  if (watcher_ && n->is_dir()) watch_dir(bs, n, rel);
  Entry e{n->id, present(*n, st)};
  e.unwatched = watcher_ && (parent->watch_failed.load() || n->watch_failed.load());
  return e;
}

Result<Entry> Union::lookup(NodeId parent_id, std::string_view name, const Ctx* ctx) {
  if (parent_id == kRootId && name == kControlName) return control_entry();
  if (auto s = check_name(name, true); !s.ok()) return Errno{s.err()};
  NodePtr p = node(parent_id);
  if (!p) return Errno{ESTALE};
  if (!p->is_dir()) return Errno{ENOTDIR};
  auto bs = branches();
  auto pw = where(*bs, p);
  if (!pw.ok()) return Errno{pw.err()};
  const Ctx* perm = (ctx && !opts_.dirperm1 && ctx->uid != 0 && pw->layers.size() > 1) ? ctx : nullptr;
  NameChanges seen = name_changes();
  auto r = resolve_child(*bs, pw.value(), name, false, perm);
  if (!r.ok()) return Errno{r.err()};
  if (!r->positive()) return Errno{ENOENT};
  return make_entry(*bs, p, name, r.value(), pw->rel, &seen);
}

Result<struct stat> Union::getattr(NodeId id, FileHandle* fh) {
  if (id == kControlId) return control_entry()->attr;
  NodePtr n = node(id);
  if (!n) return Errno{ESTALE};
  if (fh) {
    std::lock_guard<std::mutex> g(fh->mu);
    if (fh->fd) {
      auto st = sys::fstat_fd(fh->raw_fd());
      if (st.ok()) return present(*n, st.value());
    }
  }
  {
    // fstat(2) of an unlinked but open file comes without a handle: any
    // open handle of the node knows the inode.
    bool gone;
    {
      std::shared_lock<std::shared_mutex> g(tree_mu_);
      gone = n->unlinked;
    }
    if (gone) {
      std::lock_guard<SmallMutex> g(n->mu);
      if (const Node::Extra* x = n->extra_if()) {
        for (FileHandle* h : x->handles) {
          std::lock_guard<std::mutex> hg(h->mu);
          auto st = sys::fstat_fd(h->raw_fd());
          if (st.ok()) return present(*n, st.value());
        }
        if (x->orphan) {
          auto st = sys::fstat_fd(x->orphan->fd.get());
          if (st.ok()) return present(*n, st.value());
        }
      }
      return Errno{stale_errno(n)};
    }
  }
  auto bs = branches();
  auto w = where(*bs, n);
  if (!w.ok()) return Errno{w.err()};
  auto st = stat_at(*bs, w->layers[0], w->data_rel);
  if (st.ok() && ino_of(*bs, w->layers[0], st.value()) == n->ino) {
    struct stat out = st.value();
    if (n->is_dir()) {
      for (size_t i = 1; i < w->layers.size(); ++i) {
        auto ls = stat_at(*bs, w->layers[i], w->at(i));
        if (ls.ok() && ls->st_nlink > 2) out.st_nlink += ls->st_nlink - 2;
      }
    }
    return present(*n, out);
  }
  if (n->id == kRootId) {
    if (!st.ok()) return Errno{st.err()};
    return present(*n, st.value());
  }
  // udba=reval: the backing entry moved or vanished; look the name up again.
  NodePtr parent;
  std::string name;
  {
    std::shared_lock<std::shared_mutex> g(tree_mu_);
    if (n->unlinked) return Errno{stale_errno(n)};
    parent = n->parent;
    name = n->name;
  }
  if (!parent) return Errno{ENOENT};
  auto pw = where(*bs, parent);
  if (!pw.ok()) return Errno{pw.err()};
  auto r = resolve_child(*bs, pw.value(), name, false);
  if (!r.ok()) return Errno{r.err()};
  if (!r->positive() || r->hits[0].ino != n->ino) return Errno{stale_errno(n)};
  auto e = make_entry(*bs, parent, name, r.value(), pw->rel);
  if (!e.ok()) return Errno{e.err()};
  forget(e->id, 1);  // make_entry took a reference the kernel does not know of
  if (e->id != n->id) return Errno{stale_errno(n)};  // the name changed meanwhile
  return e->attr;
}

Result<std::string> Union::readlink(NodeId id) {
  NodePtr n = node(id);
  if (!n) return Errno{ESTALE};
  if (!S_ISLNK(n->type)) return Errno{EINVAL};
  auto bs = branches();
  auto w = where(*bs, n);
  if (!w.ok()) return Errno{w.err()};
  auto [prel, leaf] = sys::split_parent(w->data_rel);
  auto pfd = sys::open_beneath((*bs)[static_cast<size_t>(w->layers[0])].root.get(), prel,
                               O_PATH | O_DIRECTORY);
  if (!pfd.ok()) return Errno{pfd.err()};
  auto t = sys::readlink_at(pfd->get(), leaf);
  if (!t.ok() && (t.err() == EINVAL || absent(t.err()))) return Errno{stale_errno(n)};
  return t;
}

int Union::first_writable(const BranchSet& bs) const {
  if (ro()) return -1;
  for (size_t i = 0; i < bs.size(); ++i)
    if (bs[i].writable()) return static_cast<int>(i);
  return -1;
}

BranchFacts Union::facts(const BranchSet& bs, const std::vector<int>& parent_layers,
                         int parent_opaque, int name_whiteout) const {
  BranchFacts f;
  f.writable.resize(bs.size());
  f.has_parent.resize(bs.size());
  for (size_t i = 0; i < bs.size(); ++i) f.writable[i] = bs[i].writable() && !ro();
  for (int b : parent_layers) f.has_parent[static_cast<size_t>(b)] = true;
  f.parent_top = parent_layers.empty() ? static_cast<int>(bs.size()) : parent_layers[0];
  f.shadow = name_whiteout;
  if (parent_opaque >= 0 && (f.shadow < 0 || parent_opaque < f.shadow)) f.shadow = parent_opaque;
  f.free_bytes = [&bs](int b) -> uint64_t {
    struct statvfs v;
    if (::fstatvfs(bs[static_cast<size_t>(b)].root.get(), &v) < 0) return 0;
    return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
  };
  return f;
}

Result<int> Union::pick_create(const BranchSet& bs, const Where& parent, int name_whiteout,
                               bool is_mkdir) {
  if (ro()) return Errno{EROFS};
  BranchFacts f = facts(bs, parent.layers, parent.opaque, name_whiteout);
  struct timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  std::lock_guard<std::mutex> g(policy_mu_);
  int b = policy_.select_create(f, is_mkdir, now.tv_sec);
  if (b < 0) return Errno{EROFS};
  return b;
}

Result<int> Union::pick_cpup(const BranchSet& bs, const Where& parent, int src) const {
  if (ro()) return Errno{EROFS};
  BranchFacts f = facts(bs, parent.layers, parent.opaque, -1);
  int b = policy_.select_cpup(f, src);
  if (b < 0) return Errno{EROFS};
  return b;
}

namespace {
unsigned icex_bit(std::string_view key) {
  if (key.starts_with("security.")) return BranchSpec::kIcexSec;
  if (key.starts_with("system.")) return BranchSpec::kIcexSys;
  if (key.starts_with("trusted.")) return BranchSpec::kIcexTr;
  if (key.starts_with("user.")) return BranchSpec::kIcexUsr;
  return BranchSpec::kIcexOth;
}
}  // namespace

Status Union::copy_attrs(int src_dir, const std::string& src_name, int dst_dir,
                         const std::string& dst_name, const struct stat& st, unsigned icex) {
  // xattrs, except security.capability: a file capability would grant
  // privileges to whoever owns the copy; it is carried only with cpup_caps,
  // and set after chown (which drops it).
  std::vector<std::pair<std::string, std::vector<char>>> later;
  auto names = sys::listxattr_at(src_dir, src_name, 65536);
  if (names.ok()) {
    const char* p = names->data();
    const char* end = p + names->size();
    while (p < end) {
      std::string key(p);
      p += key.size() + 1;
      if (key.empty() || is_internal_xattr(key)) continue;
      auto val = sys::getxattr_at(src_dir, src_name, key.c_str(), 65536);
      if (!val.ok()) {
        // ENODATA: listed but not readable as such (gone meanwhile, or a
        // key the filesystem only lists); nothing to copy.
        if (val.err() == ENODATA || (icex & icex_bit(key))) continue;
        return Errno{val.err()};
      }
      if (key == "security.capability") {
        if (opts_.cpup_caps) later.emplace_back(key, std::move(val.value()));
        continue;
      }
      auto s = sys::setxattr_at(dst_dir, dst_name, key.c_str(), val->data(), val->size(), 0);
      if (s.ok()) continue;
      // ENOTSUP: the writable branch cannot hold xattrs at all; EPERM for a
      // non-root daemon on trusted.*/security.*; icex* ignores the rest.
      bool ignorable = s.err() == ENOTSUP || s.err() == EOPNOTSUPP ||
                       (s.err() == EPERM && !daemon_is_root()) || (icex & icex_bit(key));
      if (!ignorable) return s;
      if (opts_.verbose) spdlog::info("{}: xattr {} not copied: {}", dst_name, key, std::strerror(s.err()));
    }
  } else if (names.err() != ENOTSUP && names.err() != EOPNOTSUPP && !(icex & BranchSpec::kIcexAll)) {
    return Errno{names.err()};
  }
  if (daemon_is_root()) AUFS_TRY(sys::fchownat_nofollow(dst_dir, dst_name, st.st_uid, st.st_gid));
  if (!S_ISLNK(st.st_mode)) {
    // After chown, which clears set-id bits.
    AUFS_TRY(sys::chmod_at(dst_dir, dst_name, st.st_mode & 07777));
  }
  for (auto& [k, v] : later) {
    auto s = sys::setxattr_at(dst_dir, dst_name, k.c_str(), v.data(), v.size(), 0);
    if (!s.ok() && !(icex & BranchSpec::kIcexSec) && !(s.err() == EPERM && !daemon_is_root()))
      return s;
  }
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  AUFS_TRY(sys::utimens_at(dst_dir, dst_name, ts));
  return {};
}

Status Union::copy_dir_entry(const BranchSet& bs, int src_b, int bw, const std::string& src_rel,
                             const std::string& rel, uint64_t want_ino) {
  auto [prel, name] = sys::split_parent(rel);
  auto [sprel, sname] = sys::split_parent(src_rel);
  auto spfd = sys::open_beneath(bs[static_cast<size_t>(src_b)].root.get(), sprel, O_PATH | O_DIRECTORY);
  if (!spfd.ok()) return Errno{spfd.err()};
  auto st = sys::lstat_at(spfd->get(), sname);
  if (!st.ok()) return Errno{st.err()};
  uint64_t keep_ino = ino_at(bs, src_b, spfd->get(), sname, st.value());
  // The name may hold another directory by now (this one was renamed or
  // removed since it was resolved): never copy that one in its place.
  if (!S_ISDIR(st->st_mode) || keep_ino != want_ino) return Errno{ESTALE};
  auto dpfd = sys::open_beneath(bs[static_cast<size_t>(bw)].root.get(), prel, O_PATH | O_DIRECTORY);
  if (!dpfd.ok()) return Errno{dpfd.err()};
  // Already there (copied by another request meanwhile): it must be the
  // same directory, not another one that took the name.
  auto same_dir_there = [&]() -> Status {
    auto have = sys::lstat_at(dpfd->get(), name);
    if (!have.ok()) return Errno{have.err()};
    if (!S_ISDIR(have->st_mode)) return Errno{ENOTDIR};
    if (ino_at(bs, bw, dpfd->get(), name, have.value()) != want_ino) return Errno{ESTALE};
    return {};
  };
  if (auto have = sys::exists_at(dpfd->get(), name); have.ok() && have.value()) return same_dir_there();
  KeepTimes keep(dpfd->get());
  std::string tmp;
  for (int i = 0;; ++i) {
    tmp = wh::temp_name(name, next_temp_seq());
    if (::mkdirat(dpfd->get(), tmp.c_str(), 0700) == 0) break;
    if (errno != EEXIST || i > 32) return last_errno();
  }
  auto s = copy_attrs(spfd->get(), sname, dpfd->get(), tmp, st.value(),
                      bs[static_cast<size_t>(src_b)].spec.icex | bs[static_cast<size_t>(bw)].spec.icex);
  if (s.ok()) record_ino(dpfd->get(), tmp, keep_ino);
  // The inode made here, before its name is published (after the rename
  // the name may already stand for something else).
  auto tst = sys::lstat_at(dpfd->get(), tmp);
  if (s.ok() && !tst.ok()) s = Errno{tst.err()};
  if (s.ok()) {
    // The union directory keeps its inode number across copy-up.
    xino_.alias(bs[static_cast<size_t>(bw)].seed, tst->st_ino, keep_ino);
    s = sys::rename_at(dpfd->get(), tmp, dpfd->get(), name, RENAME_NOREPLACE);
    if (!s.ok()) xino_.unalias(bs[static_cast<size_t>(bw)].seed, tst->st_ino);
  }
  if (!s.ok()) {
    ::unlinkat(dpfd->get(), tmp.c_str(), AT_REMOVEDIR);
    if (s.err() == EEXIST) return same_dir_there();  // made meanwhile by another request
    return s;
  }
  counters_.copyups++;
  return {};
}

Status Union::ensure_dir_path(const BranchSet& bs, int bw, const NodePtr& dir) {
  {
    std::lock_guard<SmallMutex> g(dir->mu);
    if (std::find(dir->layers.begin(), dir->layers.end(), bw) != dir->layers.end()) return {};
  }
  NodePtr parent;
  {
    std::shared_lock<std::shared_mutex> g(tree_mu_);
    parent = dir->parent;
    if (dir->unlinked) return Errno{ENOENT};
  }
  if (dir->id == kRootId || !parent) return Errno{EIO};  // root exists on every branch
  AUFS_TRY(ensure_dir_path(bs, bw, parent));
  std::string rel = rel_path(*dir);
  // dirren: the top copy may live at another path (a renamed parent).
  std::optional<Where> w;
  if (opts_.dirren) {
    auto ww = where(bs, dir);
    if (!ww.ok()) return Errno{ww.err()};
    w = std::move(ww.value());
  }
  std::lock_guard<SmallMutex> g(dir->mu);
  if (std::find(dir->layers.begin(), dir->layers.end(), bw) != dir->layers.end()) return {};
  if (dir->layers.empty()) return Errno{ESTALE};
  const std::string& src_rel = w ? w->on(dir->layers[0]) : rel;
  AUFS_TRY(copy_dir_entry(bs, dir->layers[0], bw, src_rel, rel, dir->ino));
  // bw is above every current layer (it was chosen above the top).
  dir->layers.push_front(bw);
  std::sort(dir->layers.begin(), dir->layers.end());
  return {};
}

Status Union::copy_up(const NodePtr& n, bool with_data, off_t max_size, bool need_name,
                      int force_bw) {
  auto bs = branches();
  if (n->is_dir()) {
    int top;
    {
      std::lock_guard<SmallMutex> g(n->mu);
      if (n->layers.empty()) return Errno{ESTALE};
      top = n->layers[0];
    }
    if ((*bs)[static_cast<size_t>(top)].writable() && !ro()) return {};
    if (n->id == kRootId) return Errno{EROFS};
    auto pw = parent_where(*bs, n);
    if (!pw.ok()) return Errno{pw.err()};
    auto t = pick_cpup(*bs, pw.value(), top);
    if (!t.ok()) return Errno{t.err()};
    return ensure_dir_path(*bs, t.value(), n);
  }
  NodePtr parent;
  std::string name;
  {
    std::shared_lock<std::shared_mutex> g(tree_mu_);
    if (n->unlinked) return Errno{stale_errno(n)};
    parent = n->parent;
    name = n->name;
  }
  if (!parent) return Errno{ESTALE};
  auto pw = where(*bs, parent);
  if (!pw.ok()) return Errno{pw.err()};
  int src_b;
  std::string src_rel;
  std::string name_rel = sys::join(rel_path(*parent), name);
  {
    std::lock_guard<SmallMutex> g(n->mu);
    if (n->layers.empty()) return Errno{ESTALE};
    src_b = n->layers[0];
    src_rel = n->data_rel;
  }
  bool plinked = !src_rel.empty();
  // dirren: under a renamed directory the lower name keeps its old path.
  if (src_rel.empty()) src_rel = pw->paths.empty() ? name_rel : sys::join(pw->on(src_b), name);
  if ((*bs)[static_cast<size_t>(src_b)].writable() && force_bw < 0) {
    if (!need_name) return {};
    // A pseudo-link serves this name from the plnk store: give the name its
    // own hard link on that branch (rename needs a real entry to move).
    std::string rel = name_rel;
    if (!plinked || src_rel == rel) return {};
    AUFS_TRY(ensure_dir_path(*bs, src_b, parent));
    const Branch& wb = (*bs)[static_cast<size_t>(src_b)];
    auto [dprel, dname] = sys::split_parent(rel);
    auto dpfd = sys::open_beneath(wb.root.get(), dprel, O_PATH | O_DIRECTORY);
    if (!dpfd.ok()) return Errno{dpfd.err()};
    auto [sprel, sname] = sys::split_parent(src_rel);
    auto spfd = sys::open_beneath(wb.root.get(), sprel, O_PATH | O_DIRECTORY);
    if (!spfd.ok()) return Errno{spfd.err()};
    auto s2 = sys::link_at(spfd->get(), sname, dpfd->get(), dname);
    if (!s2.ok() && s2.err() != EEXIST) return s2;
    std::lock_guard<SmallMutex> g(n->mu);
    n->data_rel.clear();
    return {};
  }
  int bw = force_bw;
  if (bw < 0) {
    auto bw_r = pick_cpup(*bs, pw.value(), src_b);
    if (!bw_r.ok()) return Errno{bw_r.err()};
    bw = bw_r.value();
  }
  AUFS_TRY(ensure_dir_path(*bs, bw, parent));

  std::lock_guard<SmallMutex> g(n->mu);  // one copy-up per node at a time
  if (n->layers.empty()) return Errno{ESTALE};
  if (force_bw < 0 && (*bs)[static_cast<size_t>(n->layers[0])].writable()) return {};  // raced
  if (force_bw >= 0 && n->layers[0] <= force_bw) return {};  // raced, done
  std::string rel = rel_path(*parent);
  rel = sys::join(rel, name);
  const Branch& sb = (*bs)[static_cast<size_t>(src_b)];
  const Branch& wb = (*bs)[static_cast<size_t>(bw)];
  auto [sprel, sname] = sys::split_parent(src_rel);
  auto spfd = sys::open_beneath(sb.root.get(), sprel, O_PATH | O_DIRECTORY);
  if (!spfd.ok()) return Errno{spfd.err()};
  auto st = sys::lstat_at(spfd->get(), sname);
  if (!st.ok()) return Errno{absent(st.err()) ? stale_errno(n) : st.err()};
  // The name may lead to another object by now (renamed or replaced since
  // the node was resolved): never copy that one up in the node's place.
  if (!is_node_entry(*bs, n, src_b, st.value())) return Errno{stale_errno(n)};
  auto [dprel, dname] = sys::split_parent(rel);
  auto dpfd = sys::open_beneath(wb.root.get(), dprel, O_PATH | O_DIRECTORY);
  if (!dpfd.ok()) return Errno{dpfd.err()};
  // The name is whited out where the copy would go: it was removed since
  // the node was resolved; a copy would bring it back.
  auto whited = [&] {
    auto w = sys::exists_at(dpfd->get(), wh::whiteout_of(dname));
    return w.ok() && w.value();
  };
  if (whited()) return Errno{stale_errno(n)};
  KeepTimes keep(dpfd->get());
  mode_t fmt = st->st_mode & S_IFMT;
  // Lower hard links stay one inode: the first copy-up is recorded in the
  // plnk store; later ones link to it instead of copying again.
  bool hardlinked = fmt == S_IFREG && st->st_nlink > 1;
  bool use_plink = hardlinked && opts_.plink;
  std::string pl = plink_name(n->ino);
  if (use_plink) {
    auto have = sys::lstat_at(wb.root.get(), pl);
    if (have.ok() && S_ISREG(have->st_mode)) {
      auto ls = sys::link_at(wb.root.get(), pl, dpfd->get(), dname);
      if (!ls.ok() && ls.err() != EEXIST) return ls;
      n->layers = {bw};
      n->data_rel.clear();
      n->data_gen++;
      follow_orphan_locked(n, dpfd->get(), dname, wb.id);
      repoint_readers(n, dpfd->get(), dname, wb.id);
      return {};
    }
  }

  std::string tmp;
  UniqueFd out;
  uint64_t copied = 0;
  for (int i = 0;; ++i) {
    tmp = wh::temp_name(dname, next_temp_seq());
    int r;
    if (fmt == S_IFREG) {
      r = ::openat(dpfd->get(), tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (r >= 0) out.reset(r);
    } else if (fmt == S_IFLNK) {
      auto target = sys::readlink_at(spfd->get(), sname);
      if (!target.ok()) return Errno{target.err()};
      r = ::symlinkat(target->c_str(), dpfd->get(), tmp.c_str());
    } else {
      r = ::mknodat(dpfd->get(), tmp.c_str(), fmt | 0600, st->st_rdev);
    }
    if (r >= 0) break;
    if (errno != EEXIST || i > 32) return last_errno();
  }
  Status s;
  if (fmt == S_IFREG) {
    off_t size = st->st_size;
    if (!with_data) size = 0;
    else if (max_size >= 0 && max_size < size) size = max_size;
    // O_NOATIME: the copy is the daemon's read, not the user's; a lower
    // branch keeps its access times (where the daemon may ask for that).
    auto in = sys::open_beneath(sb.root.get(), src_rel, O_RDONLY | O_NOFOLLOW | O_NOATIME);
    if (!in.ok() && in.err() == EPERM) in = sys::open_beneath(sb.root.get(), src_rel, O_RDONLY | O_NOFOLLOW);
    if (!in.ok()) s = Errno{in.err()};
    else {
      auto c = sys::copy_data(in->get(), out.get(), size);
      if (!c.ok()) s = Errno{c.err()};
      else copied = c.value();
    }
  }
  if (s.ok()) s = copy_attrs(spfd->get(), sname, dpfd->get(), tmp, st.value(), sb.spec.icex | wb.spec.icex);
  out.reset();
  // The inode made here, before its name is published (after the rename
  // the name may already stand for something else).
  auto tst = sys::lstat_at(dpfd->get(), tmp);
  if (s.ok() && !tst.ok()) s = Errno{tst.err()};
  // noplink: a hard-linked file copied up becomes a separate inode (its
  // other names keep the lower data), so it gets its own number.
  uint64_t new_ino = (hardlinked && !opts_.plink) ? 0 : n->ino;
  if (s.ok() && new_ino) record_ino(dpfd->get(), tmp, new_ino);
  if (s.ok() && use_plink) {
    // Before the rename: a crash then leaves a complete copy that every
    // name of the inode already uses.
    auto ls = sys::link_at(dpfd->get(), tmp, wb.root.get(), pl);
    if (!ls.ok() && ls.err() != EEXIST)
      spdlog::warn("{}: pseudo-link not recorded: {}", rel, std::strerror(ls.err()));
  }
  if (s.ok() && new_ino) xino_.alias(wb.seed, tst->st_ino, n->ino);
  if (s.ok()) s = sys::rename_at(dpfd->get(), tmp, dpfd->get(), dname, RENAME_NOREPLACE);
  if (!s.ok()) {
    if (tst.ok() && new_ino) xino_.unalias(wb.seed, tst->st_ino);
    ::unlinkat(dpfd->get(), tmp.c_str(), 0);
    if (s.err() != EEXIST) return s;
    // An upper entry appeared meanwhile: use it if it is this node's (a
    // direct branch edit, or the node's own copy); another object that took
    // the name (renamed or created there since) is not.
    auto have = sys::lstat_at(dpfd->get(), dname);
    if (!have.ok()) return Errno{absent(have.err()) ? stale_errno(n) : have.err()};
    if ((have->st_mode & S_IFMT) != n->type ||
        (new_ino && ino_at(*bs, bw, dpfd->get(), dname, have.value()) != n->ino))
      return Errno{stale_errno(n)};
  } else if (whited()) {
    // An unlink made its whiteout while the copy was being made (it checks
    // for a copy the same way after its whiteout): the name is gone.
    ::unlinkat(dpfd->get(), dname.c_str(), 0);
    if (new_ino) xino_.unalias(wb.seed, tst->st_ino);
    return Errno{stale_errno(n)};
  }
  n->layers = {bw};
  n->data_rel.clear();
  n->data_gen++;
  follow_orphan_locked(n, dpfd->get(), dname, wb.id);
  repoint_readers(n, dpfd->get(), dname, wb.id);
  counters_.copyups++;
  counters_.copyup_bytes += copied;
  return {};
}

Result<Union::Where> Union::where_for_write(const BranchSet& bs, const NodePtr& n, bool with_data,
                                            off_t max_size) {
  // A lower branch must never be changed through the union: whatever
  // happened between the copy-up and here, the location used for a change
  // is on a writable branch, or the change fails.
  for (int attempt = 0;; ++attempt) {
    AUFS_TRY(copy_up(n, with_data, max_size));
    if (test_hook_) test_hook_("copied_up", "");
    auto w = where(bs, n);
    if (!w.ok()) return w;
    if (bs[static_cast<size_t>(w->layers[0])].writable() && !ro()) {
      // The change goes to the node's path: it must still be the node.
      auto st = stat_at(bs, w->layers[0], w->data_rel);
      if (!st.ok()) return Errno{absent(st.err()) ? stale_errno(n) : st.err()};
      if (!is_node_entry(bs, n, w->layers[0], st.value())) return Errno{stale_errno(n)};
      return w;
    }
    if (ro()) return Errno{EROFS};
    if (attempt >= 3) {
      spdlog::error("{}: still on read-only branch {} after copy-up; refusing the change", w->rel,
                    bs[static_cast<size_t>(w->layers[0])].spec.path);
      return Errno{EIO};
    }
  }
}

Status Union::make_whiteout(const BranchSet& bs, int bw, int dirfd, std::string_view name) {
  const Branch& b = bs[static_cast<size_t>(bw)];
  std::string whname = name == wh::kOpaque ? std::string(name) : wh::whiteout_of(name);
  if (!b.spec.nolwh && b.base_ok) {
    if (::linkat(b.root.get(), std::string(wh::kBase).c_str(), dirfd, whname.c_str(), 0) == 0) {
      counters_.whiteouts++;
      return {};
    }
    if (errno == EEXIST) return {};
    // EMLINK, missing base, ...: fall back to a plain whiteout file.
  }
  int fd = ::openat(dirfd, whname.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0444);
  if (fd < 0) return errno == EEXIST ? Status{} : Status{last_errno()};
  ::fchmod(fd, 0444);
  ::close(fd);
  counters_.whiteouts++;
  return {};
}

Status Union::make_opaque(const BranchSet& bs, int bw, int dirfd) {
  return make_whiteout(bs, bw, dirfd, wh::kOpaque);
}

Status Union::remove_whiteout_if_any(int dirfd, std::string_view name, bool* removed) {
  std::string whname = wh::whiteout_of(name);
  if (::unlinkat(dirfd, whname.c_str(), 0) == 0) {
    if (removed) *removed = true;
    return {};
  }
  if (errno == ENOENT) return {};
  return last_errno();
}

// Deletes a directory that holds only AUFS metadata (whiteouts, opaque
// marker, leftover temporaries). Refuses (ENOTEMPTY) if it finds anything
// else, which means the directory gained an entry meanwhile.
Status Union::remove_dir_tree_meta(int parentfd, const std::string& name) {
  auto dfd = sys::open_beneath(parentfd, name, O_PATH | O_DIRECTORY);
  if (!dfd.ok()) return Errno{dfd.err()};
  auto ents = sys::read_dir(dfd->get());
  if (!ents.ok()) return Errno{ents.err()};
  for (auto& e : *ents)
    if (!wh::is_whiteout_name(e.name)) return Errno{ENOTEMPTY};
  for (auto& e : *ents) {
    if (::unlinkat(dfd->get(), e.name.c_str(), 0) == 0) continue;
    if (errno == EISDIR || errno == EPERM) {
      AUFS_TRY(remove_dir_tree_meta(dfd->get(), e.name));
      continue;
    }
    if (errno != ENOENT) return last_errno();
  }
  if (::unlinkat(parentfd, name.c_str(), AT_REMOVEDIR) < 0) return last_errno();
  return {};
}

Result<std::vector<VEntry>> Union::list_dir(const BranchSet& bs, const Where& w,
                                            std::vector<struct timespec>* stamps) const {
  std::vector<BranchListing> ls;
  std::vector<std::pair<int, UniqueFd>> fds;
  for (size_t li = 0; li < w.layers.size(); ++li) {
    int b = w.layers[li];
    const Branch& br = bs[static_cast<size_t>(b)];
    auto dfd = sys::open_beneath(br.root.get(), w.at(li), O_PATH | O_DIRECTORY);
    if (!dfd.ok()) {
      if (absent(dfd.err())) continue;
      return Errno{dfd.err()};
    }
    auto ents = sys::read_dir(dfd->get());
    if (!ents.ok()) return Errno{ents.err()};
    BranchListing l;
    l.branch = b;
    l.wh_able = br.wh_able();
    l.own_wh_hides = !br.writable() && !opts_.ociwh;
    l.entries = std::move(ents.value());
    ls.push_back(std::move(l));
    if (stamps) {
      auto st = sys::fstat_fd(dfd->get());
      stamps->push_back(st.ok() ? st->st_mtim : timespec{});
    }
    fds.emplace_back(b, std::move(dfd.value()));
  }
  auto merged = merge_listings(ls, opts_.shwh);
  // d_ino must equal the st_ino a lookup reports.
  for (auto& e : merged) {
    struct stat st {};
    st.st_ino = e.branch_ino;
    int fd = -1;
    for (auto& [b, f] : fds)
      if (b == e.branch) fd = f.get();
    e.ino = fd >= 0 ? ino_at(bs, e.branch, fd, e.name, st) : ino_of(bs, e.branch, st);
  }
  return merged;
}

Result<Entry> Union::create_common(NodeId parent_id, std::string_view name, mode_t mode,
                                   dev_t rdev, const std::string* symlink_target,
                                   int open_flags, const Ctx& ctx,
                                   std::unique_ptr<FileHandle>* fh_out) {
  if (auto s = check_name(name); !s.ok()) return Errno{s.err()};
  NodePtr p = node(parent_id);
  if (!p) return Errno{ESTALE};
  if (!p->is_dir()) return Errno{ENOTDIR};
  auto bs = branches();
  auto pw = where(*bs, p);
  if (!pw.ok()) return Errno{pw.err()};
  auto r = resolve_child(*bs, pw.value(), name, false);
  if (!r.ok()) return Errno{r.err()};
  if (r->positive()) return Errno{EEXIST};
  auto bw_r = pick_create(*bs, pw.value(), r->whiteout ? r->whiteout_branch : -1,
                         (mode & S_IFMT) == S_IFDIR);
  if (!bw_r.ok()) return Errno{bw_r.err()};
  int bw = bw_r.value();
  AUFS_TRY(ensure_dir_path(*bs, bw, p));
  const Branch& wb = (*bs)[static_cast<size_t>(bw)];
  auto pfd = sys::open_beneath(wb.root.get(), pw->rel, O_PATH | O_DIRECTORY);
  if (!pfd.ok()) return Errno{pfd.err()};
  std::string nm(name);
  auto whx = sys::exists_at(pfd->get(), wh::whiteout_of(nm));
  if (!whx.ok()) return Errno{whx.err()};
  bool had_wh = whx.value();
  mode_t fmt = mode & S_IFMT;
  if (opts_.acl && fmt != S_IFLNK) {
    // The kernel left the umask to us: it applies unless the directory has
    // a default ACL (then the branch filesystem applies that instead).
    auto dacl = sys::getxattr_at(pfd->get(), "", "system.posix_acl_default", 0);
    if (!dacl.ok() || dacl->empty()) mode &= ~(ctx.umask & 0777);
  }
  UniqueFd fd;
  {
    CredsGuard cg(ctx);
    if (fmt == S_IFDIR) {
      if (had_wh || opts_.diropq_always) {
        // Build the directory with its opaque marker under a temporary
        // name, so the name never appears non-opaque over lower entries.
        std::string tmp;
        for (int i = 0;; ++i) {
          tmp = wh::temp_name(nm, next_temp_seq());
          if (::mkdirat(pfd->get(), tmp.c_str(), mode & 07777) == 0) break;
          if (errno != EEXIST || i > 32) return last_errno();
        }
        Status s;
        {
          auto dfd = sys::open_beneath(pfd->get(), tmp, O_PATH | O_DIRECTORY);
          if (!dfd.ok()) s = Errno{dfd.err()};
          else {
            CredsGuard root(Ctx{});  // the marker is metadata, not the user's
            s = make_opaque(*bs, bw, dfd->get());
          }
        }
        if (s.ok()) s = sys::rename_at(pfd->get(), tmp, pfd->get(), nm, RENAME_NOREPLACE);
        if (!s.ok()) {
          (void)remove_dir_tree_meta(pfd->get(), tmp);
          return Errno{s.err()};
        }
      } else {
        AUFS_TRY(sys::mkdir_at(pfd->get(), nm, mode & 07777));
      }
    } else if (fmt == S_IFLNK) {
      AUFS_TRY(sys::symlink_at(*symlink_target, pfd->get(), nm));
    } else if (fh_out) {
      int f = (open_flags & kPassFlags & ~O_TRUNC) | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
      int r2 = ::openat(pfd->get(), nm.c_str(), f, mode & 07777);
      if (r2 < 0) return last_errno();
      fd.reset(r2);
    } else {
      AUFS_TRY(sys::mknod_at(pfd->get(), nm, mode, rdev));
    }
  }
  if (had_wh) {
    auto s = remove_whiteout_if_any(pfd->get(), nm, nullptr);
    if (!s.ok())
      spdlog::warn("{}: could not remove whiteout: {}", sys::join(pw->rel, nm), std::strerror(s.err()));
  }
  p->dir_gen++;
  auto st = sys::lstat_at(pfd->get(), nm);
  if (!st.ok()) return Errno{st.err()};
  // A new inode: an alias or node left for its inode number by an object
  // that had it before (its number reused by the branch) is stale.
  xino_.unalias(wb.seed, st->st_ino);
  uint64_t new_ino = ino_at(*bs, bw, pfd->get(), nm, st.value());
  if (NodePtr old = table_.by_ino(new_ino)) {
    {
      std::unique_lock<std::shared_mutex> g(tree_mu_);
      old->unlinked = true;
    }
    spdlog::debug("node {} (ino {}) retired: its branch inode now holds {}", old->id, old->ino, nm);
    table_.retire(old);
  }
  Resolution res;
  res.hits.push_back({bw, st.value(), new_ino, sys::join(pw->on(bw), nm)});
  auto e = make_entry(*bs, p, nm, res, pw->rel);
  if (!e.ok()) return e;
  if (fh_out) {
    auto fh = std::make_unique<FileHandle>();
    fh->node = node(e->id);
    fh->fd = std::make_shared<const UniqueFd>(std::move(fd));
    fh->flags = open_flags;
    fh->brid = wb.id;
    if (fh->node) {
      std::lock_guard<SmallMutex> g(fh->node->mu);
      fh->data_gen = fh->node->data_gen;
      fh->node->extra().handles.push_back(fh.get());
    }
    if (fh->node) fh->node->open_count++;
    track_open(fh->brid, (open_flags & O_ACCMODE) != O_RDONLY, 1);
    *fh_out = std::move(fh);
  }
  return e;
}

Result<Entry> Union::mknod(NodeId parent, std::string_view name, mode_t mode, dev_t rdev,
                           const Ctx& ctx) {
  mode_t fmt = mode & S_IFMT;
  if (fmt == 0) mode |= S_IFREG;
  else if (fmt != S_IFREG && fmt != S_IFIFO && fmt != S_IFCHR && fmt != S_IFBLK && fmt != S_IFSOCK)
    return Errno{EINVAL};
  return create_common(parent, name, mode, rdev, nullptr, 0, ctx, nullptr);
}

Result<Entry> Union::mkdir(NodeId parent, std::string_view name, mode_t mode, const Ctx& ctx) {
  return create_common(parent, name, (mode & 07777) | S_IFDIR, 0, nullptr, 0, ctx, nullptr);
}

Result<Entry> Union::symlink(const std::string& target, NodeId parent, std::string_view name,
                             const Ctx& ctx) {
  return create_common(parent, name, S_IFLNK | 0777, 0, &target, 0, ctx, nullptr);
}

Result<Union::Created> Union::create(NodeId parent, std::string_view name, mode_t mode, int flags,
                                     const Ctx& ctx) {
  std::unique_ptr<FileHandle> fh;
  auto e = create_common(parent, name, (mode & 07777) | S_IFREG, 0, nullptr, flags, ctx, &fh);
  if (!e.ok()) return Errno{e.err()};
  return Created{e.value(), std::move(fh)};
}

Result<Entry> Union::link(NodeId src_id, NodeId newparent, std::string_view name, const Ctx& ctx) {
  (void)ctx;
  if (auto s = check_name(name); !s.ok()) return Errno{s.err()};
  NodePtr n = node(src_id);
  NodePtr p = node(newparent);
  if (!n || !p) return Errno{ESTALE};
  if (n->is_dir()) return Errno{EPERM};
  if (!p->is_dir()) return Errno{ENOTDIR};
  auto bs = branches();
  auto pw = where(*bs, p);
  if (!pw.ok()) return Errno{pw.err()};
  auto r = resolve_child(*bs, pw.value(), name, false);
  if (!r.ok()) return Errno{r.err()};
  if (r->positive()) return Errno{EEXIST};
  // noplink-style: the source is copied up under its own name, then a real
  // hard link is made on the writable branch (it survives a remount).
  auto w = where_for_write(*bs, n, true);
  if (!w.ok()) return Errno{w.err()};
  int bw = w->layers[0];
  AUFS_TRY(ensure_dir_path(*bs, bw, p));
  const Branch& wb = (*bs)[static_cast<size_t>(bw)];
  auto [sprel, sname] = sys::split_parent(w->data_rel);
  auto spfd = sys::open_beneath(wb.root.get(), sprel, O_PATH | O_DIRECTORY);
  if (!spfd.ok()) return Errno{spfd.err()};
  auto dpfd = sys::open_beneath(wb.root.get(), pw->rel, O_PATH | O_DIRECTORY);
  if (!dpfd.ok()) return Errno{dpfd.err()};
  std::string nm(name);
  AUFS_TRY(sys::link_at(spfd->get(), sname, dpfd->get(), nm));
  p->dir_gen++;
  (void)remove_whiteout_if_any(dpfd->get(), nm, nullptr);
  auto st = sys::lstat_at(dpfd->get(), nm);
  if (!st.ok()) return Errno{st.err()};
  {
    std::unique_lock<std::shared_mutex> g(tree_mu_);
    if (n->parent != p || n->name != nm) add_other_name_locked(*n, p, nm);
  }
  table_.add_ref(n, 1);
  Entry e{n->id, present(*n, st.value())};
  e.unwatched = watcher_ && p->watch_failed.load();
  return e;
}

Status Union::unlink(NodeId parent_id, std::string_view name) {
  NameChange changing(*this);
  if (auto s = check_name(name); !s.ok()) return s;
  NodePtr p = node(parent_id);
  if (!p) return Errno{ESTALE};
  auto bs = branches();
  auto pw = where(*bs, p);
  if (!pw.ok()) return Errno{pw.err()};
  auto r = resolve_child(*bs, pw.value(), name, true);
  if (!r.ok()) return Errno{r.err()};
  if (!r->positive()) return Errno{ENOENT};
  if (S_ISDIR(r->hits[0].st.st_mode)) return Errno{EISDIR};
  if (test_hook_) test_hook_("unlink", name);
  int top = r->hits[0].branch;
  int bw;
  if ((*bs)[static_cast<size_t>(top)].writable() && !ro()) bw = top;
  else {
    auto t = pick_cpup(*bs, pw.value(), top);
    if (!t.ok()) return Errno{t.err()};
    bw = t.value();
  }
  bool need_wh = top != bw || r->lower_exists;
  if (need_wh) AUFS_TRY(ensure_dir_path(*bs, bw, p));
  auto pfd = sys::open_beneath((*bs)[static_cast<size_t>(bw)].root.get(), pw->rel, O_PATH | O_DIRECTORY);
  if (!pfd.ok()) return Errno{pfd.err()};
  std::string nm(name);
  NodePtr victim = table_.by_ino(r->hits[0].ino);
  keep_orphan(*bs, victim);
  KeepTimes keep_if_only_wh(pfd->get());
  if (need_wh) {
    if (auto s = make_whiteout(*bs, bw, pfd->get(), nm); !s.ok()) {
      drop_orphan(victim);
      return s;
    }
  }
  const NodeId fence = table_.next_id();
  if (top == bw) {
    auto s = sys::unlink_at(pfd->get(), nm, 0);
    if (!s.ok()) {
      if (need_wh) ::unlinkat(pfd->get(), wh::whiteout_of(nm).c_str(), 0);
      drop_orphan(victim);
      return s;
    }
  } else {
    // A copy-up of this very file (an open for writing, a chmod: requests
    // the kernel does not serialize with unlink) may have put it on bw since
    // it was resolved; the whiteout would not hide it. copy_up looks for
    // the whiteout after placing its copy, so one of the two sees the other.
    auto up = sys::lstat_at(pfd->get(), nm);
    if (up.ok() && !S_ISDIR(up->st_mode) &&
        ino_at(*bs, bw, pfd->get(), nm, up.value()) == r->hits[0].ino) {
      if (::unlinkat(pfd->get(), nm.c_str(), 0) == 0 && up->st_nlink <= 1)
        xino_.unalias_if((*bs)[static_cast<size_t>(bw)].seed, up->st_ino, r->hits[0].ino);
    }
  }
  p->dir_gen++;
  mark_unlinked(*bs, p, nm, r->hits[0], fence);
  if (victim && !is_unlinked(victim)) drop_orphan(victim);  // reached by another name
  return {};
}

Status Union::rmdir(NodeId parent_id, std::string_view name) {
  NameChange changing(*this);
  if (auto s = check_name(name); !s.ok()) return s;
  NodePtr p = node(parent_id);
  if (!p) return Errno{ESTALE};
  auto bs = branches();
  auto pw = where(*bs, p);
  if (!pw.ok()) return Errno{pw.err()};
  auto r = resolve_child(*bs, pw.value(), name, true);
  if (!r.ok()) return Errno{r.err()};
  if (!r->positive()) return Errno{ENOENT};
  if (!S_ISDIR(r->hits[0].st.st_mode)) return Errno{ENOTDIR};
  std::string nm(name);
  std::string rel = sys::join(pw->rel, nm);
  // Redirected lower parts count: a renamed directory is empty only when
  // its old contents are whited out too.
  auto ents = list_dir(*bs, where_of(r.value(), rel));
  if (!ents.ok()) return Errno{ents.err()};
  if (!ents->empty()) return Errno{ENOTEMPTY};
  int top = r->hits[0].branch;
  int bw;
  if ((*bs)[static_cast<size_t>(top)].writable() && !ro()) bw = top;
  else {
    auto t = pick_cpup(*bs, pw.value(), top);
    if (!t.ok()) return Errno{t.err()};
    bw = t.value();
  }
  // An opaque directory stops the scan at itself, yet a lower same-named
  // entry may exist and must stay hidden after the directory goes.
  bool need_wh = top != bw || r->lower_exists ||
                 (r->opaque_branch >= 0 && name_below(*bs, pw.value(), nm, top));
  if (need_wh) AUFS_TRY(ensure_dir_path(*bs, bw, p));
  auto pfd = sys::open_beneath((*bs)[static_cast<size_t>(bw)].root.get(), pw->rel, O_PATH | O_DIRECTORY);
  if (!pfd.ok()) return Errno{pfd.err()};
  if (need_wh) AUFS_TRY(make_whiteout(*bs, bw, pfd->get(), nm));
  auto undo_wh = [&] {
    if (need_wh) ::unlinkat(pfd->get(), wh::whiteout_of(nm).c_str(), 0);
  };
  const NodeId fence = table_.next_id();
  if (top == bw) {
    // Rename aside first (revertible), then delete the leftovers inside.
    std::string tmp;
    Status s;
    for (int i = 0;; ++i) {
      tmp = wh::temp_name(nm, next_temp_seq());
      s = sys::rename_at(pfd->get(), nm, pfd->get(), tmp, RENAME_NOREPLACE);
      if (s.ok() || s.err() != EEXIST || i > 32) break;
    }
    if (!s.ok()) {
      undo_wh();
      return s;
    }
    // Only whiteouts may be left inside (5.2 proved it logically empty);
    // anything else means a racing create: undo.
    size_t count = 0;
    {
      auto tfd = sys::open_beneath(pfd->get(), tmp, O_PATH | O_DIRECTORY);
      auto ents = tfd.ok() ? sys::read_dir(tfd->get()) : Result<std::vector<sys::RawDirent>>(Errno{tfd.err()});
      if (ents.ok()) {
        count = ents->size();
        for (auto& e : *ents)
          if (!wh::is_whiteout_name(e.name)) s = Errno{ENOTEMPTY};
      } else {
        s = Errno{ents.err()};
      }
    }
    if (s.ok() && static_cast<int>(count) > std::max(opts_.dirwh, 1)) {
      // dirwh: many whiteouts inside; delete them after replying.
      reap_later(pfd->get(), tmp);
    } else if (s.ok()) {
      s = remove_dir_tree_meta(pfd->get(), tmp);
    }
    if (!s.ok()) {
      if (sys::rename_at(pfd->get(), tmp, pfd->get(), nm, RENAME_NOREPLACE).ok()) {
        undo_wh();
        return s;
      }
      spdlog::warn("{}: removal incomplete, leftover {} is hidden", rel, tmp);
    }
  }
  p->dir_gen++;
  mark_unlinked(*bs, p, nm, r->hits[0], fence);
  return {};
}

void Union::mark_unlinked(const BranchSet& bs, const NodePtr& parent, const std::string& name,
                          const Hit& top, NodeId fence) {
  if (test_hook_) test_hook_("unlinked", name);
  NodePtr n = table_.by_ino(top.ino);
  if (n && n->id >= fence) n = nullptr;  // a new object that reused the number
  if (n) {
    std::vector<std::pair<NodePtr, std::string>> others;
    {
      std::unique_lock<std::shared_mutex> g(tree_mu_);
      Node::Extra* x = n->extra_if();
      if (x)
        std::erase_if(x->other_names, [&](auto& o) { return o.first == parent && o.second == name; });
      if (n->parent == parent && n->name == name) {
        if (!S_ISDIR(top.st.st_mode) && top.st.st_nlink > 1) {
          if (x) others = x->other_names;
        }
        else n->unlinked = true;
      }
    }
    // A hard link: the node moves to another of its names that still leads
    // to it, so requests by node keep working (the kernel holds the node
    // under its other names).
    bool moved = false;
    for (auto& [op, on] : others) {
      auto pw = where(bs, op);
      if (!pw.ok()) continue;
      auto r = resolve_child(bs, pw.value(), on, false);
      if (!r.ok() || !r->positive() || r->hits[0].ino != n->ino) continue;
      {
        std::shared_lock<std::shared_mutex> g(tree_mu_);
        if (n->parent != parent || n->name != name) break;  // moved meanwhile
      }
      set_parent(n, op, on);
      moved = true;
      break;
    }
    if (!others.empty() && !moved) {
      std::unique_lock<std::shared_mutex> g(tree_mu_);
      if (n->parent == parent && n->name == name) n->unlinked = true;
    }
  }
  // The last name of the object is gone: its number may come back for a new
  // object (the branch reuses inode numbers), which must get a new node.
  if (S_ISDIR(top.st.st_mode) || top.st.st_nlink <= 1) {
    const Branch& b = bs[static_cast<size_t>(top.branch)];
    if (b.writable()) xino_.unalias_if(b.seed, top.st.st_ino, top.ino);
    if (n) {
      spdlog::debug("node {} (ino {}) retired: last name {} gone", n->id, n->ino, name);
      table_.retire(n);
    }
  }
}

// A node for a resolved name without a kernel reference (rename may be asked
// about names the kernel has not looked up); dropped again if unused.
NodePtr Union::node_for(const BranchSet& bs, const NodePtr& parent, const std::string& name,
                        const Resolution& r, const std::string& parent_rel) {
  auto e = make_entry(bs, parent, name, r, parent_rel);
  if (!e.ok()) return nullptr;
  NodePtr n = table_.get(e->id);
  forget(e->id, 1);
  return n;
}

Status Union::rename(NodeId parent_id, std::string_view name_sv, NodeId newparent_id,
                     std::string_view newname_sv, unsigned flags) {
  NameChange changing(*this);
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return Errno{EINVAL};
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) return Errno{EINVAL};
  AUFS_TRY(check_name(name_sv));
  AUFS_TRY(check_name(newname_sv));
  NodePtr p = node(parent_id);
  NodePtr np = node(newparent_id);
  if (!p || !np) return Errno{ESTALE};
  if (!p->is_dir() || !np->is_dir()) return Errno{ENOTDIR};
  std::string name(name_sv), newname(newname_sv);
  auto bs = branches();
  auto pw = where(*bs, p);
  if (!pw.ok()) return Errno{pw.err()};
  auto npw = where(*bs, np);
  if (!npw.ok()) return Errno{npw.err()};
  auto rs = resolve_child(*bs, pw.value(), name, true);
  if (!rs.ok()) return Errno{rs.err()};
  if (!rs->positive()) return Errno{ENOENT};
  auto rd = resolve_child(*bs, npw.value(), newname, true);
  if (!rd.ok()) return Errno{rd.err()};
  bool exchange = flags & RENAME_EXCHANGE;
  if (exchange && !rd->positive()) return Errno{ENOENT};
  if ((flags & RENAME_NOREPLACE) && rd->positive()) return Errno{EEXIST};
  std::string src_rel = sys::join(pw->rel, name), dst_rel = sys::join(npw->rel, newname);
  bool src_dir = S_ISDIR(rs->hits[0].st.st_mode);
  bool dst_dir = rd->positive() && S_ISDIR(rd->hits[0].st.st_mode);
  if (rd->positive() && !exchange) {
    if (rs->hits[0].ino == rd->hits[0].ino)
      return {};  // same file: POSIX says do nothing
    if (src_dir && !dst_dir) return Errno{ENOTDIR};
    if (!src_dir && dst_dir) return Errno{EISDIR};
  }
  if (src_rel == dst_rel) return {};
  if (ro()) return Errno{EROFS};
  if (dst_dir && !exchange) {
    auto ents = list_dir(*bs, where_of(rd.value(), dst_rel));
    if (!ents.ok()) return Errno{ents.err()};
    if (!ents->empty()) return Errno{ENOTEMPTY};
  }

  // Target branch: the source's if writable, else the copy-up branch; an
  // existing target on a higher writable branch wins.
  int stop = rs->hits[0].branch;
  int btgt = -1;
  if ((*bs)[static_cast<size_t>(stop)].writable()) btgt = stop;
  else {
    auto t = pick_cpup(*bs, pw.value(), stop);
    if (!t.ok()) return Errno{t.err()};
    btgt = t.value();
  }
  if (rd->positive() && rd->hits[0].branch < btgt &&
      (*bs)[static_cast<size_t>(rd->hits[0].branch)].writable())
    btgt = rd->hits[0].branch;

  // A directory with visible entries on other branches cannot be moved
  // without copying its whole tree: AUFS answers EXDEV (mv(1) then copies).
  // `on_rw` tells whether some of them lie on another writable branch.
  auto dir_movable = [&](const Resolution& r, const std::string& rel,
                         bool* on_rw = nullptr) -> Status {
    auto ents = list_dir(*bs, where_of(r, rel));
    if (!ents.ok()) return Errno{ents.err()};
    Status st;
    for (auto& e : *ents)
      if (e.branch != btgt) {
        st = Errno{EXDEV};
        if (!on_rw) break;
        if ((*bs)[static_cast<size_t>(e.branch)].writable()) *on_rw = true;
      }
    return st;
  };
  // dirren: instead, the directory moves with a record of where its lower
  // parts stay (not for RENAME_EXCHANGE, which keeps the EXDEV rule). Only
  // read-only parts can stay behind: writes find a writable branch's copy
  // by the directory's own path, so parts there keep the EXDEV rule too.
  bool redirect = false;
  if (src_dir) {
    bool on_rw = false;
    auto m = dir_movable(rs.value(), src_rel, &on_rw);
    if (!m.ok() && m.err() == EXDEV && opts_.dirren && !exchange && !on_rw) redirect = true;
    else AUFS_TRY(m);
  }
  if (exchange && dst_dir) AUFS_TRY(dir_movable(rd.value(), dst_rel));

  NodePtr sn = node_for(*bs, p, name, rs.value(), pw->rel);
  NodePtr dn = rd->positive() ? node_for(*bs, np, newname, rd.value(), npw->rel) : nullptr;
  if (!sn || (rd->positive() && !dn)) return Errno{EIO};
  AUFS_TRY(ensure_dir_path(*bs, btgt, p));
  AUFS_TRY(ensure_dir_path(*bs, btgt, np));
  auto bring_up = [&](const NodePtr& n, bool is_dir) -> Status {
    if (is_dir) {
      int top;
      {
        std::lock_guard<SmallMutex> g(n->mu);
        top = n->layers.empty() ? -1 : n->layers[0];
      }
      return top == btgt ? Status{} : ensure_dir_path(*bs, btgt, n);
    }
    return copy_up(n, true, -1, true);  // also materialises pseudo-links
  };
  AUFS_TRY(bring_up(sn, src_dir));
  if (exchange) AUFS_TRY(bring_up(dn, dst_dir));

  const Branch& wb = (*bs)[static_cast<size_t>(btgt)];
  auto spfd = sys::open_beneath(wb.root.get(), pw->rel, O_PATH | O_DIRECTORY);
  if (!spfd.ok()) return Errno{spfd.err()};
  auto dpfd = sys::open_beneath(wb.root.get(), npw->rel, O_PATH | O_DIRECTORY);
  if (!dpfd.ok()) return Errno{dpfd.err()};
  auto dst_wh = sys::exists_at(dpfd->get(), wh::whiteout_of(newname));
  if (!dst_wh.ok()) return Errno{dst_wh.err()};

  // Something of the other name below btgt would merge into (or show
  // through) a directory moved there unless the directory is opaque.
  // An opaque directory being replaced hides lower entries of its name that
  // the new one must keep hiding.
  auto has_lower = [&](const Resolution& r, bool wh_on_tgt, const Where& parent,
                       const std::string& n) {
    return wh_on_tgt || r.lower_exists || (r.positive() && r.hits[0].branch != btgt) ||
           opts_.diropq_always ||
           (r.opaque_branch >= 0 && name_below(*bs, parent, n, r.opaque_branch));
  };
  auto is_opaque_on_tgt = [&](int pfd, const std::string& n) {
    auto o = sys::lstat_at(pfd, n + "/" + std::string(wh::kOpaque));
    return o.ok();
  };
  std::vector<std::pair<int, std::string>> made_opaque;  // (parent fd, name) to undo
  auto opaque = [&](int pfd, const std::string& n) -> Status {
    if (is_opaque_on_tgt(pfd, n)) return {};
    auto dfd = sys::open_beneath(pfd, n, O_PATH | O_DIRECTORY);
    if (!dfd.ok()) return Errno{dfd.err()};
    AUFS_TRY(make_opaque(*bs, btgt, dfd->get()));
    made_opaque.emplace_back(pfd, n);
    return {};
  };
  auto undo_opaque = [&] {
    for (auto& [fd, n] : made_opaque)
      ::unlinkat(fd, (n + "/" + std::string(wh::kOpaque)).c_str(), 0);
  };

  if (exchange) {
    if (src_dir && has_lower(rd.value(), dst_wh.value(), npw.value(), newname))
      AUFS_TRY(opaque(spfd->get(), name));
    auto src_wh = sys::exists_at(spfd->get(), wh::whiteout_of(name));
    if (dst_dir && has_lower(rs.value(), src_wh.ok() && src_wh.value(), pw.value(), name)) {
      auto s = opaque(dpfd->get(), newname);
      if (!s.ok()) { undo_opaque(); return s; }
    }
    auto s = sys::rename_at(spfd->get(), name, dpfd->get(), newname, RENAME_EXCHANGE);
    if (!s.ok()) { undo_opaque(); return s; }
    p->dir_gen++;
    np->dir_gen++;
    set_parent(sn, np, newname, false);
    set_parent(dn, p, name, false);
    for (auto [n, rel] : {std::pair{sn, dst_rel}, std::pair{dn, src_rel}}) {
      std::lock_guard<SmallMutex> g(n->mu);
      n->layers = {btgt};
      if (!n->is_dir()) n->data_rel.clear();
    }
    return {};
  }

  // dirren order (the daemon may die between any two steps; each state
  // shows either the old or the new name): 1. the rw part exists at the old
  // name (bring_up); 2. the record is written under a temporary name and
  // renamed into that directory (at the old name it lists the very parts a
  // plain merge finds); 3. the old name's whiteout (the rw directory still
  // wins there); 4. rename(2), the one switch to the new name.
  std::vector<std::pair<uint32_t, std::string>> redir;
  bool record_created = false;
  if (redirect) {
    auto sw = where(*bs, sn);
    if (!sw.ok()) return Errno{sw.err()};
    auto rr = write_redirects(*bs, btgt, sw.value(), spfd->get(), name, &record_created);
    if (!rr.ok()) return Errno{rr.err()};
    redir = std::move(rr.value());
  }
  auto undo_record = [&] {
    if (record_created)
      ::unlinkat(spfd->get(), sys::join(name, std::string(dirren::kRecordName)).c_str(), 0);
  };
  bool need_src_wh = rs->lower_exists || stop != btgt ||
                     (rs->opaque_branch >= 0 && name_below(*bs, pw.value(), name, stop));
  bool made_src_wh = false;
  if (need_src_wh) {
    auto ex = sys::exists_at(spfd->get(), wh::whiteout_of(name));
    if (!ex.ok()) { undo_record(); return Errno{ex.err()}; }
    if (!ex.value()) {
      if (auto s = make_whiteout(*bs, btgt, spfd->get(), name); !s.ok()) { undo_record(); return s; }
      made_src_wh = true;
    }
  }
  auto undo_src_wh = [&] {
    if (made_src_wh) ::unlinkat(spfd->get(), wh::whiteout_of(name).c_str(), 0);
    undo_record();
  };
  // A redirected directory needs no opaque marker: its record already
  // stops the merge of whatever lies below the new name.
  if (src_dir && !redirect && has_lower(rd.value(), dst_wh.value(), npw.value(), newname)) {
    if (auto s = opaque(spfd->get(), name); !s.ok()) { undo_src_wh(); return s; }
  }
  // A target directory on btgt may still hold whiteouts: move it aside.
  std::string aside;
  if (dst_dir && rd->hits[0].branch == btgt) {
    Status s;
    for (int i = 0;; ++i) {
      aside = wh::temp_name(newname, next_temp_seq());
      s = sys::rename_at(dpfd->get(), newname, dpfd->get(), aside, RENAME_NOREPLACE);
      if (s.ok() || s.err() != EEXIST || i > 32) break;
    }
    if (!s.ok()) { undo_opaque(); undo_src_wh(); return s; }
  }
  if (dn && !dst_dir) keep_orphan(*bs, dn);
  const NodeId fence = table_.next_id();
  auto s = sys::rename_at(spfd->get(), name, dpfd->get(), newname, 0);
  if (!s.ok()) {
    drop_orphan(dn);
    if (!aside.empty()) (void)sys::rename_at(dpfd->get(), aside, dpfd->get(), newname, RENAME_NOREPLACE);
    undo_opaque();
    undo_src_wh();
    return s;
  }
  p->dir_gen++;
  np->dir_gen++;
  if (dst_wh.value()) (void)remove_whiteout_if_any(dpfd->get(), newname, nullptr);
  if (!aside.empty()) {
    if (auto r2 = remove_dir_tree_meta(dpfd->get(), aside); !r2.ok())
      spdlog::warn("{}: leftover {} could not be removed: {}", dst_rel, aside, std::strerror(r2.err()));
  }
  if (rd->positive()) mark_unlinked(*bs, np, newname, rd->hits[0], fence);
  if (dn && !dst_dir && !is_unlinked(dn)) drop_orphan(dn);  // reached by another name
  set_parent(sn, np, newname, false, redirect ? &redir : nullptr);
  {
    std::lock_guard<SmallMutex> g(sn->mu);
    sn->layers = {btgt};
    if (!sn->is_dir()) sn->data_rel.clear();
    // Redirected: the lower parts stay merged from their old paths.
    for (auto& [id, path] : redir)
      for (size_t b = static_cast<size_t>(btgt) + 1; b < bs->size(); ++b)
        if ((*bs)[b].id == id) sn->layers.push_back(static_cast<int>(b));
    std::sort(sn->layers.begin(), sn->layers.end());
  }
  return {};
}

Result<std::vector<std::pair<uint32_t, std::string>>> Union::write_redirects(
    const BranchSet& bs, int bw, const Where& w, int dirfd, const std::string& name,
    bool* created) {
  std::vector<dirren::Entry> es;
  std::vector<std::pair<uint32_t, std::string>> out;
  for (size_t i = 0; i < w.layers.size(); ++i) {
    int b = w.layers[i];
    if (b <= bw) continue;
    const Branch& lb = bs[static_cast<size_t>(b)];
    // A writable part has no visible entries (rename checked): the old
    // name's whiteout hides it, nothing needs to follow the directory.
    if (lb.writable()) continue;
    auto st = stat_at(bs, b, w.at(i));
    if (!st.ok() || !S_ISDIR(st->st_mode)) continue;  // vanished: nothing to keep
    es.push_back({static_cast<uint64_t>(lb.dev), static_cast<uint64_t>(lb.root_ino),
                  static_cast<uint64_t>(st->st_ino), lb.spec.path, w.at(i)});
    out.emplace_back(lb.id, w.at(i));
  }
  auto dfd = sys::open_beneath(dirfd, name, O_PATH | O_DIRECTORY);
  if (!dfd.ok()) return Errno{dfd.err()};
  auto had = sys::exists_at(dfd->get(), std::string(dirren::kRecordName));
  if (!had.ok()) return Errno{had.err()};
  *created = !had.value();
  KeepTimes keep(dfd->get());
  std::string text = dirren::encode(es);
  std::string tmp;
  UniqueFd f;
  for (int i = 0;; ++i) {
    tmp = wh::temp_name(dirren::kRecordName.substr(wh::kDoublePrefix.size()), next_temp_seq());
    int r = ::openat(dfd->get(), tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
                     0444);
    if (r >= 0) {
      f.reset(r);
      break;
    }
    if (errno != EEXIST || i > 32) return last_errno();
  }
  // Complete and on disk before its name appears (a torn record would be
  // ignored, and the directory would lose its lower contents).
  Status s;
  if (::write(f.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      ::fsync(f.get()) != 0)
    s = last_errno();
  f.reset();
  if (s.ok()) s = sys::rename_at(dfd->get(), tmp, dfd->get(), std::string(dirren::kRecordName), 0);
  if (!s.ok()) {
    ::unlinkat(dfd->get(), tmp.c_str(), 0);
    return Errno{s.err()};
  }
  // The record's name on disk before the whiteout and the rename that
  // depend on it (they are in other directories: no ordering without).
  if (auto rd = sys::open_beneath(dirfd, name, O_RDONLY | O_DIRECTORY); rd.ok())
    (void)::fsync(rd->get());
  return out;
}

namespace {
bool racy(const Node::CacheStamp& s) { return recent(s.ctime); }
}  // namespace

Result<std::unique_ptr<FileHandle>> Union::open(NodeId id, int flags, const Ctx& ctx) {
  (void)ctx;
  if (id == kControlId) return Errno{EPERM};
  NodePtr n = node(id);
  if (!n) return Errno{ESTALE};
  if (n->is_dir()) return Errno{EISDIR};
  bool write = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
  auto bs = branches();
  if (write) {
    if (ro()) return Errno{EROFS};
    // Copy-up at open (as overlayfs): no data copy when truncating anyway.
    if (auto s = copy_up(n, !(flags & O_TRUNC)); !s.ok()) return open_orphan(*bs, n, flags, s.err());
  }
  if (S_ISREG(n->type) && !ro()) {
    if (auto s = copy_up_on_open(*bs, n); !s.ok()) return open_orphan(*bs, n, flags, s.err());
  }
  auto w = write ? where_for_write(*bs, n, !(flags & O_TRUNC)) : where(*bs, n);
  if (!w.ok()) return open_orphan(*bs, n, flags, w.err());
  int f = (flags & kPassFlags) | O_NOFOLLOW;
  if (!opts_.dio) f &= ~O_DIRECT;
  auto fd = sys::open_beneath((*bs)[static_cast<size_t>(w->layers[0])].root.get(), w->data_rel, f);
  if (!fd.ok()) return open_orphan(*bs, n, flags, absent(fd.err()) ? stale_errno(n) : fd.err());
  {
    // The node's name may lead to another object by now (renamed or
    // replaced since the kernel resolved it): never open that one.
    auto st = sys::fstat_fd(fd->get());
    if (!st.ok()) return Errno{st.err()};
    if (!is_node_entry(*bs, n, w->layers[0], st.value())) return open_orphan(*bs, n, flags, stale_errno(n));
  }
  return new_handle(n, std::move(fd.value()), flags, (*bs)[static_cast<size_t>(w->layers[0])].id);
}

std::unique_ptr<FileHandle> Union::new_handle(const NodePtr& n, UniqueFd fd, int flags, uint32_t brid) {
  auto fh = std::make_unique<FileHandle>();
  fh->node = n;
  fh->fd = std::make_shared<const UniqueFd>(std::move(fd));
  fh->flags = flags;
  fh->brid = brid;
  auto st = sys::fstat_fd(fh->raw_fd());
  {
    std::lock_guard<SmallMutex> g(n->mu);
    fh->data_gen = n->data_gen;
    Node::Extra& x = n->extra();
    x.handles.push_back(fh.get());
    if (st.ok() && !(flags & O_TRUNC)) {
      auto stamp = Node::CacheStamp::of(st.value());
      fh->keep_cache = x.cache_stamp == stamp;
      x.cache_stamp = racy(stamp) ? Node::CacheStamp{} : stamp;
    } else {
      x.cache_stamp = {};
    }
  }
  n->open_count++;
  track_open(fh->brid, (flags & O_ACCMODE) != O_RDONLY, 1);
  return fh;
}

namespace {
// Orphans hold descriptors until the kernel forgets their nodes; past this
// many, a removed file is unreachable by node as before (ESTALE/ENOENT).
long orphan_limit() {
  static const long limit = [] {
    struct rlimit rl {};
    long l = 4096;
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      l = std::min<long>(l, static_cast<long>(rl.rlim_cur / 8));
    return l;
  }();
  return limit;
}

int branch_index(const BranchSet& bs, uint32_t brid) {
  for (size_t i = 0; i < bs.size(); ++i)
    if (bs[i].id == brid) return static_cast<int>(i);
  return -1;
}
}  // namespace

void Union::keep_orphan(const BranchSet& bs, const NodePtr& n) {
  if (!n || !S_ISREG(n->type) || n->nlookup.load() == 0) return;
  if (Orphan::live.load(std::memory_order_relaxed) >= orphan_limit()) return;
  auto w = where(bs, n);
  if (!w.ok()) return;
  int b = w->layers[0];
  auto fd = sys::open_beneath(bs[static_cast<size_t>(b)].root.get(), w->data_rel, O_PATH | O_NOFOLLOW);
  if (!fd.ok()) return;
  auto st = sys::fstat_fd(fd->get());
  if (!st.ok() || !is_node_entry(bs, n, b, st.value())) return;
  auto o = std::make_shared<const Orphan>(std::move(fd.value()), bs[static_cast<size_t>(b)].id);
  std::lock_guard<SmallMutex> g(n->mu);
  n->extra().orphan = std::move(o);
}

bool Union::is_unlinked(const NodePtr& n) const {
  std::shared_lock<std::shared_mutex> g(tree_mu_);
  return n->unlinked;
}

// After a copy-up: an orphan kept for the node (an unlink racing the copy)
// holds the new copy, the node's data from now on. Called with n->mu held.
void Union::follow_orphan_locked(const NodePtr& n, int dirfd, const std::string& name, uint32_t brid) {
  Node::Extra* x = n->extra_if();
  if (!x || !x->orphan) return;
  int fd = ::openat(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    x->orphan.reset();
    return;
  }
  x->orphan = std::make_shared<const Orphan>(UniqueFd(fd), brid);
}

void Union::drop_orphan(const NodePtr& n) {
  if (!n) return;
  std::lock_guard<SmallMutex> g(n->mu);
  if (Node::Extra* x = n->extra_if()) x->orphan.reset();
}

Result<std::shared_ptr<const Orphan>> Union::orphan_of(const BranchSet& bs, const NodePtr& n,
                                                       bool for_change, bool with_data) {
  std::lock_guard<SmallMutex> g(n->mu);  // one copy per node at a time
  Node::Extra* x = n->extra_if();
  if (!x || !x->orphan) return std::shared_ptr<const Orphan>();
  std::shared_ptr<const Orphan> o = x->orphan;
  int b = branch_index(bs, o->brid);
  if (b < 0) return Errno{ESTALE};  // its branch was deleted
  if (!for_change) return o;
  if (ro()) return Errno{EROFS};
  if (bs[static_cast<size_t>(b)].writable()) return o;
  int bw = first_writable(bs);
  if (bw < 0) return Errno{EROFS};
  const Branch& wb = bs[static_cast<size_t>(bw)];
  auto dfd = sys::open_beneath(wb.root.get(), std::string(wh::kOrph), O_PATH | O_DIRECTORY);
  if (!dfd.ok()) return Errno{dfd.err()};
  UniqueFd out;
  int fd = ::openat(dfd->get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) {
    out.reset(fd);
  } else if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) {
    // No O_TMPFILE there: a temporary name, removed at once (as AUFS does).
    for (int i = 0;; ++i) {
      std::string tmp = wh::temp_name("orph", next_temp_seq());
      fd = ::openat(dfd->get(), tmp.c_str(), O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd >= 0) {
        out.reset(fd);
        ::unlinkat(dfd->get(), tmp.c_str(), 0);
        break;
      }
      if (errno != EEXIST || i > 32) return last_errno();
    }
  } else {
    return last_errno();
  }
  auto in = sys::reopen(o->fd.get(), O_RDONLY | O_NOATIME);
  if (!in.ok() && in.err() == EPERM) in = sys::reopen(o->fd.get(), O_RDONLY);
  if (!in.ok()) return Errno{in.err()};
  auto st = sys::fstat_fd(in->get());
  if (!st.ok()) return Errno{st.err()};
  uint64_t copied = 0;
  if (with_data) {
    auto c = sys::copy_data(in->get(), out.get(), st->st_size);
    if (!c.ok()) return Errno{c.err()};
    copied = c.value();
  }
  AUFS_TRY(copy_attrs(in->get(), "", out.get(), "", st.value(),
                      bs[static_cast<size_t>(b)].spec.icex | wb.spec.icex));
  auto copy = std::make_shared<const Orphan>(std::move(out), wb.id);
  x->orphan = copy;
  n->layers = {bw};
  n->data_rel.clear();
  n->data_gen++;
  repoint_readers(n, AT_FDCWD, sys::proc_fd_path(copy->fd.get()), wb.id);
  counters_.copyups++;
  counters_.copyup_bytes += copied;
  return copy;
}

Result<std::unique_ptr<FileHandle>> Union::open_orphan(const BranchSet& bs, const NodePtr& n,
                                                       int flags, int err) {
  // Only a node whose last name is gone: a node with a name is reached
  // through it (a failure there is not the orphan's to answer).
  if ((err != ESTALE && err != ENOENT) || !is_unlinked(n)) return Errno{err};
  bool change = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
  int f = flags & kPassFlags;  // the magic link is followed: no O_NOFOLLOW
  if (!opts_.dio) f &= ~O_DIRECT;
  for (int attempt = 0;; ++attempt) {
    auto o = orphan_of(bs, n, change, !(flags & O_TRUNC));
    if (!o.ok()) return Errno{o.err()};
    if (!o.value()) return Errno{err};
    auto fd = sys::reopen(o.value()->fd.get(), f);
    if (!fd.ok()) return Errno{fd.err()};
    auto fh = new_handle(n, std::move(fd.value()), flags, o.value()->brid);
    // A change may have copied the orphan (and moved the open readers)
    // between orphan_of and new_handle: this reader must follow too.
    bool same;
    {
      std::lock_guard<SmallMutex> g(n->mu);
      const Node::Extra* x = n->extra_if();
      same = x && x->orphan == o.value();
    }
    if (same || attempt >= 3) return fh;
    release(std::move(fh));
  }
}

Result<SharedFd> Union::io_fd(FileHandle& fh) {
  std::lock_guard<std::mutex> g(fh.mu);
  if (!fh.fd || !fh.fd->valid()) return Errno{EIO};
  return fh.fd;
}

// After a copy-up, readers that opened the lower file read the copy from
// their next call on (AUFS revalidates open files the same way). Called with
// n->mu held; takes each handle's own lock.
void Union::repoint_readers(const NodePtr& n, int dirfd, const std::string& name, uint32_t brid) {
  Node::Extra* x = n->extra_if();
  if (!x) return;
  for (FileHandle* fh : x->handles) {
    if ((fh->flags & O_ACCMODE) != O_RDONLY) continue;
    int f = (fh->flags & kPassFlags & ~O_TRUNC) | O_CLOEXEC;
    if (dirfd != AT_FDCWD) f |= O_NOFOLLOW;
    int fd = ::openat(dirfd, name.c_str(), f);
    if (fd < 0) {
      spdlog::warn("{}: an open reader keeps the old copy: {}", name, std::strerror(errno));
      continue;
    }
    std::lock_guard<std::mutex> g(fh->mu);
    fh->fd = std::make_shared<const UniqueFd>(fd);  // readers in flight keep the old one
    fh->data_gen = n->data_gen;
    track_open(fh->brid, false, -1);
    track_open(brid, false, 1);
    fh->brid = brid;
  }
}

void Union::release(std::unique_ptr<FileHandle> fh) {
  if (!fh || !fh->node) return;
  // What this writer wrote went through the kernel's page cache, so the
  // cache matches the file as it is now.
  bool writer = (fh->flags & O_ACCMODE) != O_RDONLY;
  // Taken under the handle's lock: the last request that used the handle
  // (answered before the kernel sent RELEASE) took the lock too, which
  // orders its uses before the handle is freed here.
  SharedFd fd;
  {
    std::lock_guard<std::mutex> g(fh->mu);
    fd = std::move(fh->fd);
  }
  std::optional<Node::CacheStamp> stamp;  // set: the writer's view of the file
  if (writer && fd) {
    if (auto st = sys::fstat_fd(fd->get()); st.ok()) stamp = Node::CacheStamp::of(st.value());
  }
  {
    std::lock_guard<SmallMutex> g(fh->node->mu);
    Node::Extra& x = fh->node->extra();  // made when the handle was registered
    if (writer) {
      x.cache_stamp = {};
      if (stamp && fh->data_gen == fh->node->data_gen && !racy(*stamp))
        x.cache_stamp = *stamp;
    }
    auto& hs = x.handles;
    hs.erase(std::remove(hs.begin(), hs.end(), fh.get()), hs.end());
  }
  fh->node->open_count--;
  track_open(fh->brid, (fh->flags & O_ACCMODE) != O_RDONLY, -1);
}

void Union::track_open(uint32_t brid, bool writer, int delta) {
  std::lock_guard<std::mutex> g(open_mu_);
  auto& c = open_by_branch_[brid];
  c.first += delta;
  if (writer) c.second += delta;
}

size_t Union::open_files() const {
  std::lock_guard<std::mutex> g(open_mu_);
  size_t n = 0;
  for (auto& [id, c] : open_by_branch_) n += static_cast<size_t>(std::max(0, c.first));
  return n;
}

Result<std::unique_ptr<DirHandle>> Union::opendir(NodeId id, const Ctx* ctx) {
  NodePtr n = node(id);
  if (!n) return Errno{ESTALE};
  if (!n->is_dir()) return Errno{ENOTDIR};
  if (ctx && !opts_.dirperm1 && ctx->uid != 0) {
    // nodirperm1: reading a merged directory needs read permission on every
    // branch's copy of it.
    auto bs = branches();
    auto w = where(*bs, n);
    if (!w.ok()) return Errno{w.err()};
    for (size_t i = 1; i < w->layers.size(); ++i) {
      auto st = stat_at(*bs, w->layers[i], w->at(i));
      if (st.ok() && !may_access(st.value(), R_OK, *ctx)) return Errno{EACCES};
    }
  }
  if (!ro() && n->id != kRootId) {
    auto bs = branches();
    AUFS_TRY(copy_up_on_open(*bs, n));
  }
  auto dh = std::make_unique<DirHandle>();
  dh->node = n;
  AUFS_TRY(rewinddir(*dh));
  // The kernel's copy of the listing (cache_readdir) was filled by the
  // previous open; it may be kept only if this open serves that very
  // listing, still valid by the rdcache's checks.
  {
    std::lock_guard<SmallMutex> g(n->mu);
    Node::Extra* x = dh->listing_seq ? &n->extra() : n->extra_if();  // rdcache=0: none
    if (x) {
      dh->keep_cache = dh->listing_seq != 0 && dh->listing_seq == x->served_seq;
      x->served_seq = dh->listing_seq;
    }
  }
  return dh;
}

// The merged listing of a directory is kept up to rdcache seconds and
// reused while nothing changed: no change made through the mount (dir_gen),
// no branch change, and every branch copy's mtime as recorded (so direct
// edits of a branch are seen, as udba=reval promises).
Status Union::rewinddir(DirHandle& dh) {
  auto bs = branches();
  NodePtr n = dh.node;
  auto w = where(*bs, n);
  if (!w.ok()) return Errno{w.err()};
  struct timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  if (opts_.rdcache > 0) {
    std::shared_ptr<const VDirCache> c;
    {
      std::lock_guard<SmallMutex> g(n->mu);
      if (n->extra_if()) c = n->extra_if()->vdir;
    }
    if (c && c->bgen == bs->generation && c->gen == n->dir_gen.load() &&
        now.tv_sec - c->at < opts_.rdcache && c->layers == w->layers) {
      bool same = true;
      for (size_t i = 0; same && i < w->layers.size(); ++i) {
        auto st = stat_at(*bs, w->layers[i], w->at(i));
        same = st.ok() && i < c->stamps.size() && st->st_mtim.tv_sec == c->stamps[i].tv_sec &&
               st->st_mtim.tv_nsec == c->stamps[i].tv_nsec;
      }
      if (same) {
        dh.entries = c->entries;
        dh.listing_seq = c->seq;
        return {};
      }
    }
  }
  uint64_t gen = n->dir_gen.load();
  std::vector<struct timespec> stamps;
  auto ents = list_dir(*bs, w.value(), &stamps);
  if (!ents.ok()) return Errno{ents.err()};
  dh.entries = Listing(std::move(ents.value()));
  dh.listing_seq = 0;
  if (opts_.rdcache > 0 && stamps.size() == w->layers.size()) {
    auto c = std::make_shared<VDirCache>();
    c->entries = dh.entries;
    c->stamps = std::move(stamps);
    c->layers = w->layers;
    c->bgen = bs->generation;
    c->gen = gen;
    c->at = now.tv_sec;
    c->live = vdir_live_;
    vdir_live_->entries.fetch_add(c->entries.size());
    vdir_live_->caches.fetch_add(1);
    c->seq = vdir_seq_.fetch_add(1);
    uint64_t mine = c->seq;
    dh.listing_seq = mine;
    std::shared_ptr<const VDirCache> old;  // freed outside the node lock
    {
      std::lock_guard<SmallMutex> g(n->mu);
      old = std::exchange(n->extra().vdir, std::move(c));
    }
    keep_listing(n, mine);
  }
  return {};
}

// The rdcache is bounded in entries, not only in time: a walk of a million
// directories must not keep a million listings. The newest always stays.
void Union::keep_listing(const NodePtr& n, uint64_t seq) {
  std::vector<std::shared_ptr<const VDirCache>> drop;  // freed after the locks
  std::lock_guard<std::mutex> g(vdir_mu_);
  vdir_fifo_.emplace_back(n, seq);
  // Records of caches already replaced or freed are dropped as they reach
  // the front; the length check keeps them from piling up.
  size_t entries = vdir_live_->entries.load(), caches = vdir_live_->caches.load();
  while (vdir_fifo_.size() > 1 && (entries > listing_budget_ || vdir_fifo_.size() > 2 * caches + 16)) {
    auto [wn, s] = vdir_fifo_.front();
    vdir_fifo_.pop_front();
    NodePtr old = wn.lock();
    if (!old) continue;
    std::lock_guard<SmallMutex> ng(old->mu);
    Node::Extra* x = old->extra_if();
    if (x && x->vdir && x->vdir->seq == s) {
      entries -= std::min(entries, x->vdir->entries.size());
      caches -= std::min<size_t>(caches, 1);
      drop.push_back(std::move(x->vdir));
    }
  }
}

uint64_t Union::entry_ino(const VEntry& e) const { return e.ino; }

std::vector<Result<Entry>> Union::lookup_entries(DirHandle& dh, const VEntry* const* es, size_t n) {
  std::vector<Result<Entry>> out;
  out.reserve(n);
  const NodePtr& p = dh.node;
  auto bs = branches();
  auto pw = where(*bs, p);
  if (!pw.ok()) {
    out.assign(n, Errno{pw.err()});
    return out;
  }
  OpenedParent opened = open_parent(*bs, pw.value());
  for (size_t i = 0; i < n; ++i) {
    const std::string& name = es[i]->name;
    if (auto s = check_name(name, true); !s.ok()) {
      out.push_back(Errno{s.err()});
      continue;
    }
    NameChanges seen = name_changes();
    auto r = resolve_child(*bs, pw.value(), name, false, nullptr, &opened);
    if (!r.ok()) out.push_back(Errno{r.err()});
    else if (!r->positive()) out.push_back(Errno{ENOENT});
    else out.push_back(make_entry(*bs, p, name, r.value(), pw->rel, &seen));
  }
  return out;
}

void Union::releasedir(std::unique_ptr<DirHandle> dh) { (void)dh; }

namespace {
// Owner and group of a setattr request, for chown(2) (-1: unchanged).
std::pair<uid_t, gid_t> setattr_owner(const SetAttrIn& in) {
  return {(in.valid & SetAttrIn::kUid) ? in.uid : static_cast<uid_t>(-1),
          (in.valid & SetAttrIn::kGid) ? in.gid : static_cast<gid_t>(-1)};
}

// The times of a setattr request, for utimensat(2); false: none asked for.
bool setattr_times(const SetAttrIn& in, struct timespec ts[2]) {
  ts[0].tv_nsec = UTIME_OMIT;
  ts[1].tv_nsec = UTIME_OMIT;
  if (in.valid & SetAttrIn::kAtimeNow) ts[0].tv_nsec = UTIME_NOW;
  else if (in.valid & SetAttrIn::kAtime) ts[0] = in.atime;
  if (in.valid & SetAttrIn::kMtimeNow) ts[1].tv_nsec = UTIME_NOW;
  else if (in.valid & SetAttrIn::kMtime) ts[1] = in.mtime;
  return in.valid & (SetAttrIn::kAtime | SetAttrIn::kMtime | SetAttrIn::kAtimeNow | SetAttrIn::kMtimeNow);
}
}  // namespace

Result<struct stat> Union::setattr(NodeId id, const SetAttrIn& in, FileHandle* fh, const Ctx& ctx) {
  (void)ctx;
  if (id == kControlId) return Errno{EPERM};
  NodePtr n = node(id);
  if (!n) return Errno{ESTALE};
  if (ro() && (in.valid & ~SetAttrIn::kCtime)) return Errno{EROFS};
  bool only_trunc = (in.valid & SetAttrIn::kSize) && !(in.valid & ~(SetAttrIn::kSize | SetAttrIn::kCtime));
  // ftruncate on a writable handle: the handle is on the upper copy already.
  if (fh && only_trunc && (fh->flags & O_ACCMODE) != O_RDONLY) {
    std::lock_guard<std::mutex> g(fh->mu);
    if (::ftruncate(fh->raw_fd(), in.size) < 0) return last_errno();
    auto st = sys::fstat_fd(fh->raw_fd());
    if (!st.ok()) return Errno{st.err()};
    return present(*n, st.value());
  }
  if ((in.valid & SetAttrIn::kSize) && n->is_dir()) return Errno{EISDIR};
  auto bs = branches();
  Result<Where> w = Errno{EIO};
  if (in.valid & SetAttrIn::kSize) w = where_for_write(*bs, n, in.size > 0, in.size);
  else if (in.valid & ~SetAttrIn::kCtime) w = where_for_write(*bs, n, true);
  else w = where(*bs, n);
  if (!w.ok()) return setattr_orphan(*bs, n, in, w.err());
  const Branch& b = (*bs)[static_cast<size_t>(w->layers[0])];
  auto [prel, leaf] = sys::split_parent(w->data_rel);
  auto pfd = sys::open_beneath(b.root.get(), prel, O_PATH | O_DIRECTORY);
  if (!pfd.ok()) return Errno{pfd.err()};
  std::string name = leaf.empty() ? std::string(".") : leaf;
  if (in.valid & (SetAttrIn::kUid | SetAttrIn::kGid)) {
    auto [u, g] = setattr_owner(in);
    if (::fchownat(pfd->get(), name.c_str(), u, g, AT_SYMLINK_NOFOLLOW) < 0) return last_errno();
  }
  if (in.valid & SetAttrIn::kMode) {
    if (S_ISLNK(n->type)) return Errno{EOPNOTSUPP};
    auto ofd = sys::open_beneath(b.root.get(), w->data_rel, O_PATH | O_NOFOLLOW);
    if (!ofd.ok()) return Errno{ofd.err()};
    AUFS_TRY(sys::chmod_path_fd(ofd->get(), in.mode & 07777));
  }
  if (in.valid & SetAttrIn::kSize) {
    auto tfd = sys::open_beneath(b.root.get(), w->data_rel, O_WRONLY | O_NOFOLLOW);
    if (!tfd.ok()) return Errno{tfd.err()};
    if (::ftruncate(tfd->get(), in.size) < 0) return last_errno();
  }
  if (struct timespec ts[2]; setattr_times(in, ts)) {
    if (::utimensat(pfd->get(), name.c_str(), ts, AT_SYMLINK_NOFOLLOW) < 0) return last_errno();
  }
  return getattr(id, nullptr);
}

// fchmod(2), fchown(2), futimens(2) of an open file whose name is gone come
// by node, without a handle: they change the orphan (its copy if it lies on
// a read-only branch).
Result<struct stat> Union::setattr_orphan(const BranchSet& bs, const NodePtr& n, const SetAttrIn& in,
                                          int err) {
  if ((err != ESTALE && err != ENOENT) || !is_unlinked(n)) return Errno{err};
  bool change = in.valid & ~SetAttrIn::kCtime;
  bool keep_data = !(in.valid & SetAttrIn::kSize) || in.size > 0;
  auto o = orphan_of(bs, n, change, keep_data);
  if (!o.ok()) return Errno{o.err()};
  if (!o.value()) return Errno{err};
  int fd = o.value()->fd.get();
  if (in.valid & (SetAttrIn::kUid | SetAttrIn::kGid)) {
    auto [u, g] = setattr_owner(in);
    AUFS_TRY(sys::fchownat_nofollow(fd, "", u, g));
  }
  if (in.valid & SetAttrIn::kMode) AUFS_TRY(sys::chmod_path_fd(fd, in.mode & 07777));
  if (in.valid & SetAttrIn::kSize) {
    auto tfd = sys::reopen(fd, O_WRONLY);
    if (!tfd.ok()) return Errno{tfd.err()};
    if (::ftruncate(tfd->get(), in.size) < 0) return last_errno();
  }
  if (struct timespec ts[2]; setattr_times(in, ts)) AUFS_TRY(sys::utimens_at(fd, "", ts));
  auto st = sys::fstat_fd(fd);
  if (!st.ok()) return Errno{st.err()};
  return present(*n, st.value());
}

Result<struct statvfs> Union::statfs() {
  auto bs = branches();
  struct statvfs out {};
  if (::fstatvfs((*bs)[0].root.get(), &out) < 0) return last_errno();
  if (opts_.sum) {
    // Sum distinct filesystems, scaled to the first one's block size.
    std::vector<dev_t> seen{(*bs)[0].dev};
    for (size_t i = 1; i < bs->size(); ++i) {
      if (std::find(seen.begin(), seen.end(), (*bs)[i].dev) != seen.end()) continue;
      seen.push_back((*bs)[i].dev);
      struct statvfs v;
      if (::fstatvfs((*bs)[i].root.get(), &v) < 0) continue;
      double f = static_cast<double>(v.f_frsize) / static_cast<double>(out.f_frsize ? out.f_frsize : 1);
      out.f_blocks += static_cast<fsblkcnt_t>(static_cast<double>(v.f_blocks) * f);
      out.f_bfree += static_cast<fsblkcnt_t>(static_cast<double>(v.f_bfree) * f);
      out.f_bavail += static_cast<fsblkcnt_t>(static_cast<double>(v.f_bavail) * f);
      out.f_files += v.f_files;
      out.f_ffree += v.f_ffree;
      out.f_favail += v.f_favail;
    }
  }
  out.f_namemax = wh::kMaxNameLen;
  return out;
}

Result<std::vector<char>> Union::xattr_value(const std::string& v, size_t size) const {
  if (size == 0) return std::vector<char>(v.size());
  if (v.size() > size) return Errno{ERANGE};
  return std::vector<char>(v.begin(), v.end());
}

Result<std::vector<char>> Union::getxattr(NodeId id, const char* key, size_t size) {
  std::string_view k(key);
  if (id == kControlId) {
    if (k == kXattrInfo) return xattr_value(info_json(), size);
    return Errno{ENODATA};
  }
  if (k.starts_with(kXattrWhichPrefix)) {
    auto j = which_json(id, k.substr(kXattrWhichPrefix.size()));
    if (!j.ok()) return Errno{j.err()};
    return xattr_value(j.value(), size);
  }
  if (is_internal_xattr(k)) return Errno{ENODATA};
  NodePtr n = node(id);
  if (!n) return Errno{ESTALE};
  auto bs = branches();
  auto w = where(*bs, n);
  if (!w.ok()) return Errno{w.err()};
  auto [prel, leaf] = sys::split_parent(w->data_rel);
  auto pfd = sys::open_beneath((*bs)[static_cast<size_t>(w->layers[0])].root.get(), prel, O_PATH | O_DIRECTORY);
  if (!pfd.ok()) return Errno{pfd.err()};
  return sys::getxattr_at(pfd->get(), leaf, key, size);
}

Result<std::vector<char>> Union::listxattr(NodeId id, size_t size) {
  if (id == kControlId) {
    std::string names = std::string(kXattrInfo) + '\0' + std::string(kXattrRemount) + '\0';
    return xattr_value(names, size);
  }
  NodePtr n = node(id);
  if (!n) return Errno{ESTALE};
  auto bs = branches();
  auto w = where(*bs, n);
  if (!w.ok()) return Errno{w.err()};
  auto [prel, leaf] = sys::split_parent(w->data_rel);
  auto pfd = sys::open_beneath((*bs)[static_cast<size_t>(w->layers[0])].root.get(), prel, O_PATH | O_DIRECTORY);
  if (!pfd.ok()) return Errno{pfd.err()};
  // Our own bookkeeping attribute is not the user's: leave it out.
  auto all = sys::listxattr_at(pfd->get(), leaf, 65536);
  if (!all.ok()) return Errno{all.err()};
  std::string out;
  for (const char* p = all->data(); p < all->data() + all->size(); p += std::strlen(p) + 1)
    if (!is_internal_xattr(p)) out.append(p, std::strlen(p) + 1);
  return xattr_value(out, size);
}

Status Union::setxattr(NodeId id, const char* key, const void* val, size_t size, int flags,
                       const Ctx& ctx) {
  if (id == kControlId) {
    if (std::string_view(key) != kXattrRemount) return Errno{ENOTSUP};
    // Only root or the user who mounted may change branches.
    if (ctx.uid != 0 && ctx.uid != owner_) return Errno{EPERM};
    std::vector<BranchOp> ops;
    std::string spec(static_cast<const char*>(val), size);
    while (!spec.empty() && (spec.back() == '\n' || spec.back() == '\0')) spec.pop_back();
    std::string e = parse_branch_ops(spec, ro(), ops);
    if (!e.empty()) {
      spdlog::warn("branch change refused: {}", e);
      return Errno{EINVAL};
    }
    std::string msg;
    auto st = change_branches(ops, &msg);
    if (!st.ok()) spdlog::warn("branch change refused: {}", msg);
    return st;
  }
  if (std::string_view(key).starts_with(kXattrWhichPrefix) || is_internal_xattr(key))
    return Errno{EPERM};
  NodePtr n = node(id);
  if (!n) return Errno{ESTALE};
  if (ro()) return Errno{EROFS};
  auto bs = branches();
  auto w = where_for_write(*bs, n, true);
  if (!w.ok()) return Errno{w.err()};
  auto [prel, leaf] = sys::split_parent(w->data_rel);
  auto pfd = sys::open_beneath((*bs)[static_cast<size_t>(w->layers[0])].root.get(), prel, O_PATH | O_DIRECTORY);
  if (!pfd.ok()) return Errno{pfd.err()};
  return sys::setxattr_at(pfd->get(), leaf, key, val, size, flags);
}

Status Union::removexattr(NodeId id, const char* key) {
  if (id == kControlId || is_internal_xattr(key)) return Errno{EPERM};
  NodePtr n = node(id);
  if (!n) return Errno{ESTALE};
  if (ro()) return Errno{EROFS};
  // Nothing to copy up if the attribute does not exist at all.
  {
    auto cur = getxattr(id, key, 0);
    if (!cur.ok()) return Errno{cur.err()};
  }
  auto bs = branches();
  auto w = where_for_write(*bs, n, true);
  if (!w.ok()) return Errno{w.err()};
  auto [prel, leaf] = sys::split_parent(w->data_rel);
  auto pfd = sys::open_beneath((*bs)[static_cast<size_t>(w->layers[0])].root.get(), prel, O_PATH | O_DIRECTORY);
  if (!pfd.ok()) return Errno{pfd.err()};
  auto rs = sys::removexattr_at(pfd->get(), leaf, key);
  // It existed in the union view (checked above) but copy-up did not carry
  // it (security.capability): it is gone, which is what was asked. The
  // kernel's chown relies on this to drop file capabilities.
  if (!rs.ok() && rs.err() == ENODATA) return {};
  return rs;
}

}  // namespace aufs

namespace aufs {

Status Union::fsyncdir(NodeId id, bool datasync) {
  NodePtr n = node(id);
  if (!n) return Errno{ESTALE};
  auto bs = branches();
  auto w = where(*bs, n);
  if (!w.ok()) return Errno{w.err()};
  auto fd = sys::open_beneath((*bs)[static_cast<size_t>(w->layers[0])].root.get(), w->data_rel,
                              O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) return Errno{fd.err()};
  if ((datasync ? ::fdatasync(fd->get()) : ::fsync(fd->get())) < 0) return last_errno();
  return {};
}

Status Union::access(NodeId id, int mask, const Ctx& ctx) {
  auto st = getattr(id, nullptr);
  if (!st.ok()) return Errno{st.err()};
  if (mask == F_OK) return {};
  if ((mask & W_OK) && ro()) return Errno{EROFS};
  mode_t m = st->st_mode;
  if (ctx.uid == 0) {
    // root: read/write always; execute if any x bit is set, or a directory.
    if ((mask & X_OK) && !S_ISDIR(m) && !(m & 0111)) return Errno{EACCES};
    return {};
  }
  mode_t bits;
  bool in_group = st->st_gid == ctx.gid ||
                  std::find(ctx.groups.begin(), ctx.groups.end(), st->st_gid) != ctx.groups.end();
  if (st->st_uid == ctx.uid) bits = (m >> 6) & 7;
  else if (in_group) bits = (m >> 3) & 7;
  else bits = m & 7;
  if ((mask & R_OK) && !(bits & 4)) return Errno{EACCES};
  if ((mask & W_OK) && !(bits & 2)) return Errno{EACCES};
  if ((mask & X_OK) && !(bits & 1)) return Errno{EACCES};
  return {};
}

}  // namespace aufs

namespace aufs {

uint64_t Union::ino_of_node(NodeId id) const {
  if (id == kRootId) return kRootIno;
  NodePtr n = node(id);
  return n ? n->ino : 0;
}

uint64_t Union::parent_ino(NodeId id) const {
  NodePtr n = node(id);
  if (!n || id == kRootId) return kRootIno;
  std::shared_lock<std::shared_mutex> g(tree_mu_);
  if (!n->parent || n->parent->id == kRootId) return kRootIno;
  return n->parent->ino;
}

}  // namespace aufs

namespace aufs {

Result<Entry> Union::control_entry() const {
  Entry e;
  e.id = kControlId;
  e.attr.st_ino = kControlId;
  e.attr.st_mode = S_IFREG | 0644;
  e.attr.st_nlink = 1;
  e.attr.st_uid = owner_;
  e.attr.st_gid = ::getegid();
  e.attr.st_atim = e.attr.st_mtim = e.attr.st_ctim = started_;
  e.attr.st_blksize = 4096;
  return e;
}

namespace {

bool is_under_path(const std::string& child, const std::string& parent) {
  if (parent == "/") return child != "/";
  return child.size() > parent.size() && child.compare(0, parent.size(), parent) == 0 &&
         child[parent.size()] == '/';
}

}  // namespace

Status Union::change_branches(const std::vector<BranchOp>& ops, std::string* msg) {
  std::lock_guard<std::mutex> change(change_mu_);
  auto fail = [&](int e, const std::string& why) -> Status {
    if (msg) *msg = why;
    return Errno{e};
  };
  // Phase 1 plans the new list and checks everything without touching any
  // branch; phase 2 writes the rw metadata. A refused change leaves the
  // disk as it was.
  BranchSetPtr cur = branches();
  std::vector<std::shared_ptr<Branch>> br(cur->br.begin(), cur->br.end());
  uint32_t next_id = next_brid_;
  bool new_ro = ro();
  auto find = [&](const std::string& p) -> long {
    for (size_t i = 0; i < br.size(); ++i)
      if (br[i]->spec.path == p) return static_cast<long>(i);
    return -1;
  };
  auto busy = [&](uint32_t id, bool writers_only) {
    std::lock_guard<std::mutex> g(open_mu_);
    auto it = open_by_branch_.find(id);
    if (it == open_by_branch_.end()) return false;
    return (writers_only ? it->second.second : it->second.first) > 0;
  };
  auto absolute = [&](const std::string& p) { return !p.empty() && p[0] == '/'; };
  for (const BranchOp& op : ops) {
    if (op.kind == BranchOp::Kind::SetRo || op.kind == BranchOp::Kind::SetRw) {
      new_ro = op.kind == BranchOp::Kind::SetRo;
      continue;
    }
    if (!absolute(op.spec.path))
      return fail(EINVAL, "branch '" + op.spec.path + "': path must be absolute");
    char buf[PATH_MAX];
    std::string real = ::realpath(op.spec.path.c_str(), buf) ? std::string(buf) : op.spec.path;
    if (op.kind == BranchOp::Kind::Add) {
      long idx = op.index == -1 ? static_cast<long>(br.size()) : op.index;
      if (idx < 0 || idx > static_cast<long>(br.size()))
        return fail(EDOM, "branch index " + std::to_string(op.index) + " out of range 0.." +
                              std::to_string(br.size()));
      BranchSpec spec = op.spec;
      if (!::realpath(spec.path.c_str(), buf))
        return fail(errno, "branch '" + spec.path + "': " + std::strerror(errno));
      spec.path = buf;
      struct stat st;
      if (::stat(spec.path.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
        return fail(ENOTDIR, "branch '" + spec.path + "': not a directory");
      bool dup = false;
      for (auto& b : br) {
        if (b->spec.path == spec.path || (b->dev == st.st_dev && b->root_ino == st.st_ino)) dup = true;
        else if (is_under_path(spec.path, b->spec.path) || is_under_path(b->spec.path, spec.path))
          return fail(EINVAL, "branch '" + spec.path + "' overlaps '" + b->spec.path + "'");
      }
      if (dup) continue;  // AUFS ignores a duplicated branch at remount
      const std::string& mnt = opts_.mountpoint;
      if (!mnt.empty() && (spec.path == mnt || is_under_path(spec.path, mnt) || is_under_path(mnt, spec.path)))
        return fail(EINVAL, "branch '" + spec.path + "' must be outside the mount point");
      if (br.size() >= 127) return fail(ENOSPC, "too many branches (127 at most)");
      if (!spec.perm_given) spec.perm = (idx == 0 && !new_ro) ? Perm::RW : Perm::RO;
      if (spec.writable() && ::access(spec.path.c_str(), W_OK) < 0)
        return fail(EINVAL, "branch '" + spec.path + "': rw requested but not writable");
      auto nb = open_branch(spec, next_id++);
      if (!nb.ok()) return fail(nb.err(), "branch '" + spec.path + "': " + std::strerror(nb.err()));
      br.insert(br.begin() + idx, nb.value());
    } else if (op.kind == BranchOp::Kind::Del) {
      long i = find(real);
      if (i < 0) continue;  // AUFS ignores an unknown path at remount
      if (br.size() == 1) return fail(EBUSY, "cannot delete the last branch");
      if (busy(br[static_cast<size_t>(i)]->id, false))
        return fail(EBUSY, "branch '" + br[static_cast<size_t>(i)]->spec.path + "' has open files");
      br.erase(br.begin() + i);
    } else {
      long i = find(real);
      if (i < 0) return fail(ENOENT, "no branch '" + op.spec.path + "'");
      auto& old = br[static_cast<size_t>(i)];
      if (old->writable() && !op.spec.writable() && busy(old->id, true))
        return fail(EBUSY, "branch '" + old->spec.path + "' has files open for writing");
      BranchSpec spec = old->spec;
      spec.perm = op.spec.perm;
      spec.wh = op.spec.wh;
      spec.nolwh = op.spec.nolwh;
      spec.coo = op.spec.coo;
      spec.icex = op.spec.icex;
      if (spec.writable() && ::access(spec.path.c_str(), W_OK) < 0)
        return fail(EINVAL, "branch '" + spec.path + "': rw requested but not writable");
      // Same id, new permission: a fresh object (snapshots are immutable).
      auto nb = open_branch(spec, old->id);
      if (!nb.ok()) return fail(nb.err(), "branch '" + spec.path + "': " + std::strerror(nb.err()));
      old = nb.value();
    }
  }
  // Phase 2.
  bool changed = new_ro != ro() || br.size() != cur->size();
  for (size_t i = 0; !changed && i < br.size(); ++i)
    changed = br[i]->id != (*cur)[i].id || format_perm(br[i]->spec) != format_perm((*cur)[i].spec);
  if (!changed) return {};
  for (auto& b : br) {
    const Branch* was = nullptr;
    for (auto& c : cur->br)
      if (c->id == b->id) was = c.get();
    bool was_rw = was && was->writable() && !ro();
    bool now_rw = b->writable() && !new_ro;
    if (now_rw) {
      if (auto st = finish_rw(*b); !st.ok())
        return fail(st.err(), "branch '" + b->spec.path + "': cannot prepare: " + std::strerror(st.err()));
    } else if (was_rw && !b->writable()) {
      // rw -> ro: the whiteout base and empty plnk/orph go, as in AUFS.
      ::unlinkat(b->root.get(), std::string(wh::kBase).c_str(), 0);
      ::unlinkat(b->root.get(), std::string(wh::kPlink).c_str(), AT_REMOVEDIR);
      ::unlinkat(b->root.get(), std::string(wh::kOrph).c_str(), AT_REMOVEDIR);
    }
  }
  auto ns = std::make_shared<BranchSet>();
  ns->generation = cur->generation + 1;
  ns->br = std::move(br);
  {
    std::lock_guard<std::mutex> g(branches_mu_);
    branches_ = ns;
  }
  ro_.store(new_ro);
  next_brid_ = next_id;
  counters_.branch_changes++;
  std::string desc;
  for (size_t i = 0; i < ns->size(); ++i)
    desc += (i ? ":" : "") + (*ns)[i].spec.path + "=" + format_perm((*ns)[i].spec);
  spdlog::info("branches now {}{}", desc, new_ro ? " (read-only)" : "");
  return {};
}

std::string Union::info_json() const {
  auto bs = branches();
  std::string j = "{\"mountpoint\":" + json_str(opts_.mountpoint) + ",\"branches\":[";
  for (size_t i = 0; i < bs->size(); ++i) {
    const Branch& b = (*bs)[i];
    j += (i ? "," : "") + std::string("{\"index\":") + std::to_string(i) + ",\"id\":" +
         std::to_string(b.id) + ",\"path\":" + json_str(b.spec.path) + ",\"perm\":" +
         json_str(format_perm(b.spec)) + "}";
  }
  std::string xino = opts_.noxino ? "off" : "in memory";
  std::string o = "udba=";
  o += opts_.udba == Udba::None ? "none"
       : (opts_.udba == Udba::Reval || !watcher_) ? "reval" : "notify";
  o += opts_.diropq_always ? ",diropq=a" : ",diropq=w";
  o += opts_.sum ? ",sum" : ",nosum";
  o += opts_.plink ? ",plink" : ",noplink";
  o += opts_.check ? ",chk" : ",nochk";
  o += opts_.dirperm1 ? ",dirperm1" : ",nodirperm1";
  if (opts_.shwh) o += ",shwh";
  if (opts_.acl) o += ",acl";
  if (opts_.cpup_caps) o += ",cpup_caps";
  if (opts_.ociwh) o += ",ociwh";
  if (opts_.dirren) o += ",dirren";
  o += ",dirwh=" + std::to_string(opts_.dirwh) + ",rdcache=" + std::to_string(opts_.rdcache);
  o += "," + format_policies(opts_.policy);
  if (ro()) o += ",ro";
  if (!opts_.xino_path.empty()) o += ",xino=" + opts_.xino_path;
  j += "],\"generation\":" + std::to_string(bs->generation) + ",\"xino\":" + json_str(xino) +
       ",\"options\":" + json_str(o) + ",\"counters\":{\"inodes\":" + std::to_string(table_.size()) +
       ",\"open_files\":" + std::to_string(open_files()) +
       ",\"copyups\":" + std::to_string(counters_.copyups.load()) +
       ",\"copyup_bytes\":" + std::to_string(counters_.copyup_bytes.load()) +
       ",\"whiteouts\":" + std::to_string(counters_.whiteouts.load()) +
       ",\"branch_changes\":" + std::to_string(counters_.branch_changes.load()) +
       ",\"xino_aliases\":" + std::to_string(xino_.alias_count()) +
       ",\"listing_cache_entries\":" + std::to_string(vdir_live_->entries.load()) + "}}";
  return j;
}

Result<std::string> Union::which_json(NodeId dir, std::string_view name) {
  if (auto s = check_name(name); !s.ok()) return Errno{s.err()};
  NodePtr p = node(dir);
  if (!p) return Errno{ESTALE};
  if (!p->is_dir()) return Errno{ENOTDIR};
  auto bs = branches();
  auto pw = where(*bs, p);
  if (!pw.ok()) return Errno{pw.err()};
  auto r = resolve_child(*bs, pw.value(), name, true);
  if (!r.ok()) return Errno{r.err()};
  std::string j = "{\"name\":" + json_str(sys::join(pw->rel, name)) +
                  ",\"visible\":" + (r->positive() ? "true" : "false");
  if (r->positive()) {
    const Hit& top = r->hits[0];
    const Branch& b = (*bs)[static_cast<size_t>(top.branch)];
    mode_t m = top.st.st_mode & S_IFMT;
    const char* type = m == S_IFDIR ? "dir" : m == S_IFREG ? "file" : m == S_IFLNK ? "symlink"
                     : m == S_IFIFO ? "fifo" : m == S_IFSOCK ? "socket" : "device";
    bool copied_up = b.writable() && r->lower_exists;
    j += ",\"type\":" + json_str(type) + ",\"branch\":" + std::to_string(top.branch) +
         ",\"brid\":" + std::to_string(b.id) + ",\"branch_path\":" + json_str(b.spec.path) +
         ",\"copied_up\":" + (copied_up ? "true" : "false") +
         ",\"lower_exists\":" + (r->lower_exists ? "true" : "false") + ",\"layers\":[";
    for (size_t i = 0; i < r->hits.size(); ++i) j += (i ? "," : "") + std::to_string(r->hits[i].branch);
    j += "]";
    if (r->opaque_branch >= 0) j += ",\"opaque_branch\":" + std::to_string(r->opaque_branch);
  }
  if (r->whiteout) j += ",\"whiteout_branch\":" + std::to_string(r->whiteout_branch);
  return j + "}";
}

std::vector<std::tuple<NodeId, NodeId, std::string>> Union::cached_names() const {
  std::vector<std::tuple<NodeId, NodeId, std::string>> out;
  std::vector<NodePtr> nodes = table_.all();
  std::shared_lock<std::shared_mutex> g(tree_mu_);
  for (auto& n : nodes) {
    if (n->id == kRootId || !n->parent || n->unlinked) continue;
    out.emplace_back(n->id, n->parent->id, n->name);
  }
  return out;
}

}  // namespace aufs

namespace aufs {

void Union::watch_dir(const BranchSet& bs, const NodePtr& n, const std::string& rel) {
  std::vector<int> layers;
  {
    std::lock_guard<SmallMutex> g(n->mu);
    Node::Extra& x = n->extra();
    if (x.watched == n->layers) return;
    layers = n->layers;
    x.watched = layers;
  }
  std::vector<UniqueFd> fds;
  std::vector<int> raw;
  bool all = true;
  for (int b : layers) {
    // rr: natively read-only, nothing can change there (AUFS skips it too).
    if (bs[static_cast<size_t>(b)].spec.perm == Perm::RR) continue;
    // dirren: a renamed directory's lower parts are watched at their paths.
    std::string path = rel;
    if (opts_.dirren) {
      std::shared_lock<std::shared_mutex> g(tree_mu_);
      path = path_on_locked(*n, bs[static_cast<size_t>(b)].id);
    }
    auto fd = sys::open_beneath(bs[static_cast<size_t>(b)].root.get(), path, O_PATH | O_DIRECTORY);
    if (!fd.ok()) {
      all = false;
      continue;
    }
    raw.push_back(fd->get());
    fds.push_back(std::move(fd.value()));
  }
  bool ok = watcher_->watch(n->id, raw) && all;
  n->watch_failed.store(!ok);
  if (!ok) {
    // Try again at the next lookup.
    std::lock_guard<SmallMutex> g(n->mu);
    n->extra().watched.clear();
  }
}

bool Union::unwatched_dir(NodeId dir) const {
  if (!watcher_) return false;
  NodePtr n = node(dir);
  return n && n->watch_failed.load();
}

bool Union::unwatched_node(NodeId id) const {
  if (!watcher_) return false;
  NodePtr n = node(id);
  if (!n) return false;
  if (n->is_dir() && n->watch_failed.load()) return true;
  std::shared_lock<std::shared_mutex> g(tree_mu_);
  return n->parent && n->parent->watch_failed.load();
}

bool Union::start_notify(std::function<void(NodeId, const std::string&)> inval) {
  if (opts_.udba != Udba::Notify) return false;
  watcher_ = std::make_unique<BranchWatcher>();
  if (!watcher_->ok()) {
    watcher_.reset();
    return false;
  }
  watcher_->start([this, inval](NodeId dir, const std::string& name) {
    if (NodePtr d = node(dir)) d->dir_gen++;
    if (dir == kRootId || name.empty() || dir == 0) {
      // A branch directory itself went away, or events were lost: refresh
      // the directory's layers on its next use.
      if (NodePtr d = node(dir)) {
        std::lock_guard<SmallMutex> g(d->mu);
        d->bgen = 0;
      }
    }
    inval(dir, name);
  });
  auto bs = branches();
  watch_dir(*bs, root_, "");
  return true;
}

void Union::stop_notify() {
  if (watcher_) watcher_->stop();
}

NodeId Union::cached_child(NodeId dir, const std::string& name) {
  NodePtr p = node(dir);
  if (!p || !p->is_dir() || wh::check_user_name(name)) return 0;
  auto bs = branches();
  auto pw = where(*bs, p);
  if (!pw.ok()) return 0;
  auto r = resolve_child(*bs, pw.value(), name, false);
  if (!r.ok() || !r->positive()) return 0;
  NodePtr c = table_.by_ino(r->hits[0].ino);
  return c ? c->id : 0;
}

}  // namespace aufs

namespace aufs {

// coo_reg / coo_all / moo branch attributes: an open copies (or moves) the
// entry to the nearest writable branch above its own, whatever the cpup
// policy says.
Status Union::copy_up_on_open(const BranchSet& bs, const NodePtr& n) {
  auto w = where(bs, n);
  if (!w.ok()) return {};
  int top = w->layers[0];
  std::string src_rel = w->data_rel;
  const BranchSpec& sp = bs[static_cast<size_t>(top)].spec;
  bool wanted = sp.coo == BranchSpec::Coo::All ||
                (!n->is_dir() && (sp.coo == BranchSpec::Coo::Reg || sp.coo == BranchSpec::Coo::Move));
  if (!wanted) return {};
  int bw = -1;
  for (int b = top - 1; b >= 0; --b)
    if (bs[static_cast<size_t>(b)].writable()) {
      bw = b;
      break;
    }
  if (bw < 0) return {};  // nothing above to copy to
  if (n->is_dir()) return ensure_dir_path(bs, bw, n);
  AUFS_TRY(copy_up(n, true, -1, false, bw));
  if (sp.coo == BranchSpec::Coo::Move && sp.writable()) {
    // moo: the source goes; nothing below needs hiding that was not hidden.
    auto [prel, leaf] = sys::split_parent(src_rel);
    auto pfd = sys::open_beneath(bs[static_cast<size_t>(top)].root.get(), prel, O_PATH | O_DIRECTORY);
    if (pfd.ok() && ::unlinkat(pfd->get(), leaf.c_str(), 0) < 0)
      spdlog::warn("{}: moved up, but the source stays: {}", src_rel, std::strerror(errno));
  }
  return {};
}

}  // namespace aufs

namespace aufs {

// Is `name` present (not whited out) in a branch of the parent below `top`?
bool Union::name_below(const BranchSet& bs, const Where& parent, const std::string& name,
                       int top) const {
  std::string whname = wh::whiteout_of(name);
  for (size_t li = 0; li < parent.layers.size(); ++li) {
    int b = parent.layers[li];
    if (b <= top) continue;
    const Branch& br = bs[static_cast<size_t>(b)];
    auto pfd = sys::open_beneath(br.root.get(), parent.at(li), O_PATH | O_DIRECTORY);
    if (!pfd.ok()) continue;
    if (br.wh_able()) {
      auto w = sys::exists_at(pfd->get(), whname);
      if (w.ok() && w.value()) return false;  // hidden from here down anyway
    }
    auto e = sys::exists_at(pfd->get(), name);
    if (e.ok() && e.value()) return true;
  }
  return false;
}

}  // namespace aufs
