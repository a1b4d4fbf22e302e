// SPDX-License-Identifier: GPL-2.0-or-later
// Name resolution (see namei.hpp).
#include "core/namei.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "aufs_fuse/dirren.hpp"
#include "aufs_fuse/sys.hpp"
#include "core/ino.hpp"
#include "core/util.hpp"

namespace aufs::core {

namespace {
thread_local bool t_quiet_mid_operation = false;
}  // namespace

QuietMidOperation::QuietMidOperation() : was_(t_quiet_mid_operation) { t_quiet_mid_operation = true; }
QuietMidOperation::~QuietMidOperation() { t_quiet_mid_operation = was_; }

bool ovl_whiteout(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == 0; }

bool ovl_opaque(int dirfd, const std::string& name) {
  // Kernel overlayfs writes the trusted. one (as root), rootless tools the
  // user. one.
  for (const char* key : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
    auto v = sys::getxattr_at(dirfd, name, key, 8);
    if (v.ok() && v->size() == 1 && (*v)[0] == 'y') return true;
  }
  return false;
}

namespace {
bool add_redirects(const Mount& m, const BranchSet& bs, int top, int dirfd, const std::string& name,
                   Resolution& r);
Status refresh(Mount& m, const BranchSet& bs, const NodePtr& n);
}  // namespace

Result<NameInDir> resolve_in(Mount& m, NodeId parent, std::string_view name, bool full) {
  AUFS_TRY(check_name(m, name));
  NameInDir d;
  d.parent = m.tree.node(parent);
  if (!d.parent) return Errno{ESTALE};
  if (!d.parent->is_dir()) return Errno{ENOTDIR};
  d.bs = m.branches();
  AUFS_ASSIGN_OR_RETURN(d.pw, where(m, *d.bs, d.parent));
  OpenedParent opened = parent_parts(m, *d.bs, d.parent, d.pw);
  AUFS_ASSIGN_OR_RETURN(d.r, resolve_child(m, *d.bs, d.pw, name, full, nullptr, &opened));
  return d;
}

Result<std::vector<int>> root_layers(const BranchSet& bs) {
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

Result<Resolution> resolve_child(Mount& m, const BranchSet& bs, const Where& parent,
                                               std::string_view name_sv, bool full,
                                               const Ctx* perm, const OpenedParent* opened) {
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
    const NameSet* names = nullptr;  // set: a name it lacks is absent
    if (opened) {
      if (int e = opened->errs[li]) {
        if (absent(e)) continue;
        return Errno{e};
      }
      pfd = opened->fds[li]->get();
      names = opened->names[li].get();
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
    // On a writable branch a non-directory wins over a whiteout beside it
    // (an interrupted create or unlink, below), so the first one found
    // needs no probe for a whiteout: one system call for most lookups of
    // the union's own files.
    std::optional<Result<struct stat>> early;
    if (!full && r.hits.empty() && br.writable() && !br.spec.ovl && !names) {
      early = sys::lstat_at(pfd, name);
      if (early->ok() && !S_ISDIR((*early)->st_mode)) {
        r.hits.push_back({b, early->value(), ino_at(m, bs, b, pfd, name, early->value()),
                          m.opts.dirren ? sys::join(parent_rel, name) : std::string()});
        break;
      }
    }
    bool whiteout = false;
    if (br.wh_able() && (!names || names->may_have(whname))) {
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
    Result<struct stat> st = Errno{ENOENT};
    if (early) st = std::move(*early);
    else if (!names || names->may_have(name)) st = sys::lstat_at(pfd, name);
    if (names) m.parts.counts()->set_answers++;
    if (!st.ok() && !absent(st.err())) return Errno{st.err()};
    if (st.ok() && br.spec.ovl && ovl_whiteout(st.value())) {
      whiteout = true;  // overlayfs's whiteout is the name itself
      st = Errno{ENOENT};
    }
    if (whiteout) {
      if (st.ok() && (br.writable() || m.opts.ociwh) && r.hits.empty()) {
        // rw branch: an interrupted create/unlink left both; the real entry
        // wins. ociwh: OCI layers' whiteouts hide only lower layers.
        if (br.writable() && !t_quiet_mid_operation)
          spdlog::warn("{}/{} and its whiteout both exist on branch {}; using the entry",
                       parent_rel, name, br.spec.path);
        r.hits.push_back({b, st.value(), ino_at(m, bs, b, pfd, name, st.value()),
                          m.opts.dirren ? sys::join(parent_rel, name) : std::string()});
        // An interrupted dirren rename (its whiteout made, the directory not
        // moved yet) keeps the old name whole.
        if (m.opts.dirren && br.writable() && S_ISDIR(st->st_mode))
          add_redirects(m, bs, b, pfd, name, r);
      }
      if (st.ok() && !br.writable() && !m.opts.ociwh && first && m.opts.udba != Udba::None) {
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
      bool top_dir = S_ISDIR(r.hits[0].st.st_mode);
      if (!top_dir || !S_ISDIR(st->st_mode)) {
        // Non-dirs do not merge; a lower entry of another type under a
        // directory is skipped and the merge goes on below it (AUFS). The
        // OCI rule (ociwh) lets it end the directory, as overlayfs does.
        r.lower_exists = true;
        if (m.opts.ociwh && top_dir) break;
        if (!full && !top_dir) break;
        continue;
      }
      r.lower_exists = true;
    }
    r.hits.push_back({b, st.value(), ino_at(m, bs, b, pfd, name, st.value()),
                      m.opts.dirren ? sys::join(parent_rel, name) : std::string()});
    if (!S_ISDIR(st->st_mode)) {
      if (!full) break;
      continue;
    }
    if (br.wh_able()) {
      auto o = sys::lstat_at(pfd, name + "/" + std::string(wh::kOpaque));
      if ((o.ok() && S_ISREG(o->st_mode)) || (br.spec.ovl && ovl_opaque(pfd, name))) {
        r.opaque_branch = b;
        break;
      }
    }
    // dirren: a directory renamed with its lower parts left in place; its
    // record replaces the search below (like an opaque directory that lists
    // its lower parts). Only the top copy can carry one.
    if (m.opts.dirren && r.hits.size() == 1 && br.writable() &&
        add_redirects(m, bs, b, pfd, name, r))
      break;
  }
  return r;
}

namespace {
// dirren: reads the redirect record inside directory `name` of dirfd and
// adds the lower parts it lists (branches below `top`) to r.
bool add_redirects(const Mount& m, const BranchSet& bs, int top, int dirfd, const std::string& name,
                          Resolution& r) {
  // A cached directory remembers that it had no record at a given ctime;
  // adding one (a new entry in it) changes the ctime.
  const struct stat& dst = r.hits[0].st;
  int64_t ctime_ns = dst.st_ctim.tv_sec * 1000000000LL + dst.st_ctim.tv_nsec;
  NodePtr cached = m.tree.table.by_ino(r.hits[0].ino);
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
  auto text = sys::read_all(fd->get(), 1u << 20);
  if (!text.ok()) {
    spdlog::warn("{}: dirren record unreadable: {}", name, std::strerror(text.err()));
    return false;
  }
  auto es = dirren::decode(text.value());
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
                      ino_at(m, bs, static_cast<int>(b), pfd->get(), leaf, st.value()), e->rel, true});
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
}  // namespace

Where where_of(const Mount& m, const Resolution& r, const std::string& rel) {
  Where w;
  w.rel = rel;
  for (auto& h : r.hits) w.layers.push_back(h.branch);
  w.opaque = r.opaque_branch;
  if (m.opts.dirren)
    for (auto& h : r.hits) w.paths.push_back(h.path);
  w.data_rel = w.paths.empty() ? rel : w.paths[0];
  return w;
}

void set_redirects(Mount& m, const BranchSet& bs, const NodePtr& n, const Resolution& r) {
  Redirects redir;
  for (auto& h : r.hits)
    if (h.redirected) redir.emplace_back(bs[static_cast<size_t>(h.branch)].id, h.path);
  m.tree.set_redirects(n, std::move(redir));
}

bool is_node_entry(const Mount& m, const BranchSet& bs, const NodePtr& n, int b, const struct stat& st) {
  if ((st.st_mode & S_IFMT) != n->type) return false;
  // noplink: a hard-linked file copied up became a separate inode with a
  // number of its own, still served by the node; only the type can tell.
  if (!m.opts.plink && S_ISREG(n->type)) return true;
  return n->id == kRootId || ino_of(m, bs, b, st) == n->ino;
}

Result<Where> where(Mount& m, const BranchSet& bs, const NodePtr& n) {
  bool stale;
  {
    std::lock_guard<SmallMutex> g(n->mu);
    stale = n->bgen != bs.generation;
  }
  if (stale) AUFS_TRY(refresh(m, bs, n));
  Where w;
  auto rel = m.tree.live_path(*n);
  if (!rel) return Errno{stale_errno(m, n)};
  w.rel = std::move(*rel);
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
  if (m.opts.dirren) {
    std::vector<uint32_t> ids;
    for (int b : w.layers) ids.push_back(bs[static_cast<size_t>(b)].id);
    w.paths = m.tree.paths_on(*n, ids);
    if (own_data) w.data_rel = w.paths[0];
  }
  return w;
}

Result<Where> parent_where(Mount& m, const BranchSet& bs, const NodePtr& n) {
  NodePtr parent = m.tree.live_parent(*n);
  if (!parent) return Errno{ESTALE};
  return where(m, bs, parent);
}

namespace {
// After a branch change: resolve the node's path again from the root with
// the new branch set (AUFS refreshes its objects lazily the same way).
Status refresh(Mount& m, const BranchSet& bs, const NodePtr& n) {
  auto chain = m.tree.chain(n);
  if (!chain) return Errno{ESTALE};
  AUFS_ASSIGN_OR_RETURN(auto rl, root_layers(bs));
  Where cur;
  cur.layers = rl;
  if (m.opts.dirren) cur.paths.assign(cur.layers.size(), std::string());
  {
    std::lock_guard<SmallMutex> g(m.tree.root->mu);
    m.tree.root->layers = cur.layers;
    m.tree.root->bgen = bs.generation;
  }
  for (auto& c : *chain) {
    std::string name = m.tree.naming(*c).name;
    AUFS_ASSIGN_OR_RETURN(auto r, resolve_child(m, bs, cur, name, false));
    if (!r.positive() || (r.hits[0].st.st_mode & S_IFMT) != c->type) return Errno{ESTALE};
    cur = where_of(m, r, sys::join(cur.rel, name));
    adopt_resolution(m, bs, c, r, cur);
  }
  return {};
}
}  // namespace

void adopt_resolution(Mount& m, const BranchSet& bs, const NodePtr& c, const Resolution& r,
                      const Where& w) {
  const std::vector<int>& layers = w.layers;
  if (m.opts.dirren && c->is_dir()) set_redirects(m, bs, c, r);
  std::lock_guard<SmallMutex> g(c->mu);
  if (c->is_dir()) {
    c->layers = layers;
    c->opaque = r.opaque_branch;
  } else {
    if (c->layers.empty() || c->layers[0] != layers[0] || !c->data_rel.empty()) c->data_gen++;
    c->layers = {layers[0]};
    c->data_rel.clear();
  }
  c->bgen = bs.generation;
}

// Is `name` present (not whited out) in a branch of the parent below `top`?
bool name_below(const BranchSet& bs, const Where& parent, const std::string& name,
                       int top) {
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
    if (br.spec.ovl) {
      auto st = sys::lstat_at(pfd->get(), name);
      if (st.ok() && ovl_whiteout(st.value())) return false;  // overlayfs's whiteout
      if (st.ok()) return true;
      continue;
    }
    auto e = sys::exists_at(pfd->get(), name);
    if (e.ok() && e.value()) return true;
  }
  return false;
}

}  // namespace aufs::core
