// SPDX-License-Identifier: GPL-2.0-or-later
// Branches of a mount (overlayfs's super.c): opening them at mount time,
// preparing writable ones, and live branch changes (remount).
#include "core/branches.hpp"

#include <algorithm>
#include <fcntl.h>
#include <sys/vfs.h>
#include <limits.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "aufs_fuse/check.hpp"
#include "aufs_fuse/creds.hpp"
#include "aufs_fuse/sys.hpp"
#include "core/namei.hpp"
#include "core/util.hpp"

namespace aufs::core {
namespace {

// File systems whose changes inotify does not fully report: network and
// cluster file systems (other hosts' changes), FUSE (changes not made
// through this kernel) and overlayfs (changes to its layers).
const char* unwatchable_fs(int fd) {
  struct statfs sf {};
  if (::fstatfs(fd, &sf) != 0) return nullptr;
  switch (static_cast<uint32_t>(sf.f_type)) {
    case 0x6969: return "nfs";
    case 0xFF534D42: case 0xFE534D42: case 0x517B: return "smb/cifs";
    case 0x01021997: return "9p";
    case 0x65735546: return "fuse";
    case 0x00C36400: return "ceph";
    case 0x5346414F: return "afs";
    case 0x73757245: return "coda";
    case 0x01161970: return "gfs2";
    case 0x7461636F: return "ocfs2";
    case 0x0BD00BD0: return "lustre";
    case 0x794C7630: return "overlay";
    default: return nullptr;
  }
}

// Opens a branch root (no writes); finish_rw() then prepares an rw branch.
// `same` (a branch's open root) is reopened instead of the path, which may
// lead to the union itself when it is mounted over the branch.
Result<std::shared_ptr<Branch>> open_branch(const BranchSpec& spec, uint32_t id,
                                            const Branch* same = nullptr) {
  auto b = std::make_shared<Branch>();
  b->id = id;
  b->spec = spec;
  auto fd = same ? sys::open_at(same->root.get(), ".", O_PATH | O_DIRECTORY)
                 : sys::open_at(AT_FDCWD, spec.path, O_PATH | O_DIRECTORY);
  if (!fd.ok()) {
    spdlog::error("branch {}: {}", spec.path, std::strerror(fd.err()));
    return Errno{fd.err()};
  }
  b->root = std::move(fd.value());
  AUFS_ASSIGN_OR_RETURN(auto st, sys::fstat_fd(b->root.get()));
  b->dev = st.st_dev;
  b->root_ino = st.st_ino;
  b->seed = branch_seed(spec.path.c_str());
  b->unwatchable = unwatchable_fs(b->root.get());
  return b;
}

// Whiteout base, plnk and orph directories of a writable branch; the names
// it creates are added to *made.
Status prepare_rw_branch(const Branch& b, std::vector<std::string>* made) {
  int root = b.root.get();
  auto base = sys::lstat_at(root, std::string(wh::kBase));
  if (b.spec.nolwh) {
    if (base.ok() && S_ISREG(base->st_mode))
      (void)sys::unlink_at(root, std::string(wh::kBase), 0);
  } else if (!base.ok()) {
    auto st = create_readonly_file(root, std::string(wh::kBase));
    if (!st.ok() && st.err() != EEXIST) return st;
    if (st.ok() && made) made->emplace_back(wh::kBase);
  } else if (!S_ISREG(base->st_mode)) {
    // Whiteouts are hard links to the base: a planted symlink or device
    // there would turn every whiteout into one. Replace it.
    if (S_ISDIR(base->st_mode) || !sys::unlink_at(root, std::string(wh::kBase), 0).ok()) {
      spdlog::warn("branch {}: {} is not a regular file; whiteouts will be plain files",
                   b.spec.path, wh::kBase);
    } else {
      spdlog::warn("branch {}: replaced {} (was not a regular file)", b.spec.path, wh::kBase);
      (void)create_readonly_file(root, std::string(wh::kBase));
    }
  }
  for (auto d : {wh::kPlink, wh::kOrph}) {
    auto s = sys::mkdir_at(root, std::string(d), 0700);
    if (!s.ok() && s.err() != EEXIST) return s;
    if (s.ok() && made) made->emplace_back(d);
  }
  return {};
}

// Removes what prepare_rw_branch made: the base only while no whiteout
// links to it, the directories only while empty.
void unmake(const Branch& b, const std::vector<std::string>& names) {
  int root = b.root.get();
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    if (*it != wh::kBase) {
      (void)sys::unlink_at(root, *it, AT_REMOVEDIR);
      continue;
    }
    auto st = sys::lstat_at(root, *it);
    if (st.ok() && S_ISREG(st->st_mode) && st->st_nlink == 1) (void)sys::unlink_at(root, *it, 0);
  }
}

Status finish_rw(Branch& b, std::vector<std::string>* made = nullptr) {
  if (auto s = prepare_rw_branch(b, made); !s.ok()) {
    spdlog::error("branch {}: cannot prepare rw branch: {}", b.spec.path, std::strerror(s.err()));
    return s;
  }
  auto base = sys::lstat_at(b.root.get(), std::string(wh::kBase));
  b.base_ok = base.ok() && S_ISREG(base->st_mode);
  return {};
}

// Budgets of the directory-part cache: a quarter of the descriptors the
// daemon may hold (open files, orphans and copy-ups need the rest), and
// 32 MiB of name sets. Unchecked reuse lasts one entry timeout under reval.
void configure_parts(Mount& m) {
  auto fds = static_cast<size_t>(fd_limit(4096) / 4);
  double window = m.opts.udba == Udba::None ? -1.0
                  : m.opts.entry_timeout >= 0 ? std::min(m.opts.entry_timeout, 1.0) : 1.0;
  m.parts.configure(std::min<size_t>(fds, 16384), 32u << 20,
                    window < 0 ? -1 : static_cast<int64_t>(window * 1e9));
}

// Before a branch is first written (see BranchLock::begin_writing).
void begin_writing(const BranchLockPtr& l, const std::string& path) {
  if (l && !l->begin_writing())
    spdlog::warn("branch {}: cannot take its clean mark off: {}; after a crash, run "
                 "aufs-fuse-check --fix on it", path, std::strerror(errno));
}

}  // namespace

Status prepare_branches(Mount& m, std::string* why) {
  std::vector<std::pair<Branch*, std::vector<std::string>>> made;
  for (auto& b : m.branches()->br) {
    if (!b->writable() || m.ro()) continue;
    begin_writing(b->lock, b->spec.path);
    made.emplace_back(b.get(), std::vector<std::string>{});
    if (auto st = finish_rw(*b, &made.back().second); !st.ok()) {
      for (auto& [br, names] : made) unmake(*br, names);
      if (why) *why = "branch '" + b->spec.path + "': cannot prepare: " + std::strerror(st.err());
      return st;
    }
  }
  return {};
}

Result<std::unique_ptr<Mount>> open_mount(const MountOptions& opts, std::string* why,
                                          bool prepare) {
  auto m = std::make_unique<Mount>(opts);
  auto bs = std::make_shared<BranchSet>();
  bs->generation = 1;
  m->owner = ::geteuid();
  m->persist_ino = !opts.noxino;
  m->ino_key = daemon_is_root() ? "trusted.aufs-fuse.ino" : "user.aufs-fuse.ino";
  m->nlink_key = daemon_is_root() ? "trusted.aufs-fuse.nlink" : "user.aufs-fuse.nlink";
  ::clock_gettime(CLOCK_REALTIME, &m->started);
  configure_parts(*m);
  for (const auto& spec : opts.branches) {
    // Locked before anything reads or repairs it: no other mount writes it.
    BranchLockPtr lock;
    if (spec.writable() && !opts.read_only) {
      std::string e;
      if (lock = lock_branch(spec.path, e, -1, spec.shared); !lock) {
        if (why) *why = e;
        return Errno{EBUSY};
      }
    }
    // A shared branch another mount writes: its live temporaries are no
    // leftovers, so no repair.
    if (spec.writable() && !opts.read_only && opts.check && (!lock->shared || lock->alone)) {
      // Leftovers of an interrupted run (daemon killed mid-operation): the
      // whole branch, unless the last writer released it cleanly.
      auto rep = check_branch(spec.path, true, false, !lock->was_clean);
      lock->checked = rep.ok();
      if (!rep.ok()) {
        spdlog::warn("branch {}: check failed: {}", spec.path, std::strerror(rep.err()));
      } else {
        for (auto& is : rep->issues)
          spdlog::warn("branch {}: {} {}{}", spec.path, kind_name(is.kind), is.path,
                       is.fixed ? ": repaired" : ": left as is");
      }
    }
    if (lock) lock->share();
    AUFS_ASSIGN_OR_RETURN(auto b, open_branch(spec, m->next_brid++));
    b->lock = std::move(lock);
    bs->br.push_back(std::move(b));
  }
  m->set_branches(bs);
  if (prepare) AUFS_TRY(prepare_branches(*m, why));
  AUFS_ASSIGN_OR_RETURN(std::vector<int> rl, root_layers(*bs));
  Node& root = *m->tree.root;
  std::lock_guard<SmallMutex> g(root.mu);
  root.layers = rl;
  int last = rl.back();
  auto o = sys::lstat_at((*bs)[static_cast<size_t>(last)].root.get(), std::string(wh::kOpaque));
  if ((*bs)[static_cast<size_t>(last)].wh_able() && o.ok() && S_ISREG(o->st_mode)) root.opaque = last;
  root.bgen = bs->generation;
  std::random_device rd;
  m->seed_temp_names(rd());
  return m;
}

void release_branches(Mount& m, bool only_if_was_clean) {
  if (!m.reaper.drain()) return;  // a hidden leftover stays: checked next time
  for (const auto& b : m.branches()->br) {
    if (!b->lock || !b->writable()) continue;
    if (only_if_was_clean && !b->lock->was_clean) continue;
    if (!b->lock->mark_clean(!m.opts.volatile_mode))
      spdlog::debug("branch {}: not marked clean", b->spec.path);
  }
}

namespace {

// A branch change checked against the current branches, nothing written yet.
struct BranchPlan {
  BranchSetPtr cur;
  std::vector<std::shared_ptr<Branch>> br;  // the new list, top first
  uint32_t next_id = 0;
  bool ro = false;
  // Locks of branches that become writable, given to them when applied.
  std::vector<std::pair<std::shared_ptr<Branch>, BranchLockPtr>> locks;
  std::string why;  // set with an errno when refused
  // Requests that changed nothing (a branch already there, ...), for the
  // user: a remount is not silent about what it skipped.
  std::vector<std::string> notes;
};

Status refuse(BranchPlan& p, int e, std::string why) {
  p.why = std::move(why);
  return Errno{e};
}

// Phase 1: the new list, every op checked, no branch touched.
Status plan_branches(Mount& m, const std::vector<BranchOp>& ops, BranchPlan& p) {
  p.cur = m.branches();
  p.br.assign(p.cur->br.begin(), p.cur->br.end());
  p.next_id = m.next_brid;
  p.ro = m.ro();
  auto& br = p.br;
  auto find = [&](const std::string& path) -> long {
    for (size_t i = 0; i < br.size(); ++i)
      if (br[i]->spec.path == path) return static_cast<long>(i);
    return -1;
  };
  auto busy = [&](uint32_t id, bool writers_only) { return m.files.busy(id, writers_only); };
  for (const BranchOp& op : ops) {
    if (op.kind == BranchOp::Kind::SetRo || op.kind == BranchOp::Kind::SetRw) {
      // No note when it is so already: mount(8) passes rw or ro with every
      // remount.
      p.ro = op.kind == BranchOp::Kind::SetRo;
      continue;
    }
    if (op.spec.path.empty() || op.spec.path[0] != '/')
      return refuse(p, EINVAL, "branch '" + op.spec.path + "': path must be absolute");
    char buf[PATH_MAX];
    std::string real = ::realpath(op.spec.path.c_str(), buf) ? std::string(buf) : op.spec.path;
    if (op.kind == BranchOp::Kind::Add) {
      long idx = op.index == -1 ? static_cast<long>(br.size()) : op.index;
      if (idx < 0 || idx > static_cast<long>(br.size()))
        return refuse(p, EDOM, "branch index " + std::to_string(op.index) + " out of range 0.." +
                                   std::to_string(br.size()));
      std::vector<BranchDir> dirs;
      for (auto& b : br) dirs.push_back({b->spec.path, b->dev, b->root_ino});
      BranchDirCheck c = check_branch_dir(op.spec.path, dirs, m.opts.mountpoint);
      if (!c.error.empty()) return refuse(p, c.errnum, c.error);
      if (c.duplicate_of >= 0) {  // AUFS ignores a duplicated branch at remount
        p.notes.push_back("branch '" + op.spec.path + "' is branch " + std::to_string(c.duplicate_of) +
                          " already: not added again");
        continue;
      }
      if (br.size() >= 127) return refuse(p, ENOSPC, "too many branches (127 at most)");
      BranchSpec spec = op.spec;
      spec.path = c.dir.path;
      if (!spec.perm_given) spec.perm = (idx == 0 && !p.ro) ? Perm::RW : Perm::RO;
      if (spec.writable()) {
        if (auto e = check_writable_dir(spec.path); !e.empty())
          return refuse(p, EINVAL, "branch '" + spec.path + "': " + e);
      }
      auto nb = open_branch(spec, p.next_id++);
      if (!nb.ok())
        return refuse(p, nb.err(), "branch '" + spec.path + "': " + std::strerror(nb.err()));
      br.insert(br.begin() + idx, nb.value());
    } else if (op.kind == BranchOp::Kind::Del) {
      long i = find(real);
      if (i < 0) {  // AUFS ignores an unknown path at remount
        p.notes.push_back("no branch '" + op.spec.path + "': nothing deleted");
        continue;
      }
      if (br.size() == 1) return refuse(p, EBUSY, "cannot delete the last branch");
      if (busy(br[static_cast<size_t>(i)]->id, false))
        return refuse(p, EBUSY, "branch '" + br[static_cast<size_t>(i)]->spec.path + "' has open files");
      br.erase(br.begin() + i);
    } else {
      long i = find(real);
      if (i < 0) return refuse(p, ENOENT, "no branch '" + op.spec.path + "'");
      auto& old = br[static_cast<size_t>(i)];
      if (old->writable() && !op.spec.writable() && busy(old->id, true))
        return refuse(p, EBUSY, "branch '" + old->spec.path + "' has files open for writing");
      BranchSpec spec = old->spec;
      spec.perm = op.spec.perm;
      spec.wh = op.spec.wh;
      spec.nolwh = op.spec.nolwh;
      spec.coo = op.spec.coo;
      spec.icex = op.spec.icex;
      spec.shared = op.spec.shared;
      if (format_perm(spec) == format_perm(old->spec)) {
        p.notes.push_back("branch '" + old->spec.path + "' is " + format_perm(spec) + " already");
        continue;
      }
      if (spec.writable()) {
        if (auto e = check_writable_dir(sys::proc_fd_path(old->root.get())); !e.empty())
          return refuse(p, EINVAL, "branch '" + spec.path + "': " + e);
      }
      // Same id, new permission: a fresh object (snapshots are immutable).
      auto nb = open_branch(spec, old->id, old.get());
      if (!nb.ok())
        return refuse(p, nb.err(), "branch '" + spec.path + "': " + std::strerror(nb.err()));
      old = nb.value();
    }
  }
  // Last, when nothing else refuses: branches that become writable are
  // locked (those writable already keep their lock, from the same id).
  for (auto& b : br) {
    if (!b->writable() || p.ro) continue;
    BranchLockPtr have = b->lock;
    for (auto& c : p.cur->br)
      if (!have && c->id == b->id && c->lock) have = c->lock;
    if (!have) {
      std::string e;
      if (have = lock_branch(b->spec.path, e, b->root.get(), b->spec.shared); !have)
        return refuse(p, EBUSY, e);
      have->share();
    } else if (have->shared != b->spec.shared) {
      // The lock of a branch written now cannot change its kind without a
      // moment unlocked.
      return refuse(p, EINVAL, "branch '" + b->spec.path + "': 'shared' cannot change while it is "
                               "writable (mod: it to ro first)");
    }
    p.locks.emplace_back(b, std::move(have));
  }
  return {};
}

bool changes_anything(const Mount& m, const BranchPlan& p) {
  if (p.ro != m.ro() || p.br.size() != p.cur->size()) return true;
  for (size_t i = 0; i < p.br.size(); ++i)
    if (p.br[i]->id != (*p.cur)[i].id || format_perm(p.br[i]->spec) != format_perm((*p.cur)[i].spec))
      return true;
  return false;
}

// Phase 2: the rw metadata of branches becoming writable (or no longer),
// then the new snapshot.
Status apply_branches(Mount& m, BranchPlan& p) {
  for (auto& b : p.br) {
    const Branch* was = nullptr;
    for (auto& c : p.cur->br)
      if (c->id == b->id) was = c.get();
    bool was_rw = was && was->writable() && !m.ro();
    bool now_rw = b->writable() && !p.ro;
    if (now_rw) {
      for (auto& [lb, l] : p.locks)
        if (lb == b) begin_writing(l, b->spec.path);
      if (auto st = finish_rw(*b); !st.ok())
        return refuse(p, st.err(), "branch '" + b->spec.path + "': cannot prepare: " + std::strerror(st.err()));
    } else if (was_rw && !b->writable()) {
      // rw -> ro: the whiteout base and empty plnk/orph go, as in AUFS.
      (void)sys::unlink_at(b->root.get(), std::string(wh::kBase), 0);
      (void)sys::unlink_at(b->root.get(), std::string(wh::kPlink), AT_REMOVEDIR);
      (void)sys::unlink_at(b->root.get(), std::string(wh::kOrph), AT_REMOVEDIR);
    }
  }
  // Change_mu serializes every use of a branch's lock.
  for (auto& b : p.br) b->lock.reset();
  for (auto& [b, l] : p.locks) b->lock = std::move(l);
  auto ns = std::make_shared<BranchSet>();
  ns->generation = p.cur->generation + 1;
  ns->br = std::move(p.br);
  m.set_branches(ns);
  m.set_ro(p.ro);
  m.next_brid = p.next_id;
  m.counters.branch_changes++;
  std::string desc;
  for (size_t i = 0; i < ns->size(); ++i)
    desc += (i ? ":" : "") + (*ns)[i].spec.path + "=" + format_perm((*ns)[i].spec);
  spdlog::info("branches now {}{}", desc, p.ro ? " (read-only)" : "");
  return {};
}

}  // namespace

namespace {

bool has_writable(const std::vector<std::shared_ptr<Branch>>& br) {
  return std::any_of(br.begin(), br.end(), [](auto& b) { return b->writable(); });
}

// One line for the user about a change that went through: what it
// skipped, and a union that lost its last writable branch.
std::string change_note(const Mount& m, const BranchPlan& p, bool changed) {
  std::string note;
  for (auto& n : p.notes) note += (note.empty() ? "" : "; ") + n;
  if (!changed)
    return "nothing changed: " + (note.empty() ? "the mount has these branches and options already" : note);
  if (!p.ro && !has_writable(p.br) && (m.ro() || has_writable(p.cur->br)))
    note += std::string(note.empty() ? "" : "; ") +
            "no writable branch is left: writes fail (EROFS) until one is added";
  return note;
}

}  // namespace

Status change_branches(Mount& m, const std::vector<BranchOp>& ops, std::string* msg) {
  std::lock_guard<std::mutex> change(m.change_mu);
  BranchPlan plan;
  Status s = plan_branches(m, ops, plan);
  bool changed = s.ok() && changes_anything(m, plan);
  // The note is taken before apply_branches() moves the new list away.
  std::string note = s.ok() ? change_note(m, plan, changed) : "";
  if (changed) s = apply_branches(m, plan);
  if (msg) *msg = s.ok() ? note : plan.why;
  return s;
}

}  // namespace aufs::core
