// SPDX-License-Identifier: GPL-2.0-or-later
// The Union facade: each call forwards to the module that owns it.
#include "aufs_fuse/union_fs.hpp"

#include <fcntl.h>

#include "core/attr.hpp"
#include "core/branches.hpp"
#include "core/control.hpp"
#include "core/dir.hpp"
#include "core/entry.hpp"
#include "core/file.hpp"
#include "core/readdir.hpp"
#include "core/rename.hpp"
#include "core/udba.hpp"
#include "core/xattr.hpp"

namespace aufs {

Union::Union(std::unique_ptr<core::Mount> m) : m_(std::move(m)) {}
Union::~Union() = default;

Result<std::unique_ptr<Union>> Union::mount(const MountOptions& opts, std::string* why,
                                            bool prepare_now) {
  AUFS_ASSIGN_OR_RETURN(auto m, core::open_mount(opts, why, prepare_now));
  return std::unique_ptr<Union>(new Union(std::move(m)));
}

Status Union::prepare_branches(std::string* why) { return core::prepare_branches(*m_, why); }
void Union::release_branches(bool only_if_was_clean) {
  core::release_branches(*m_, only_if_was_clean);
}

Result<Entry> Union::lookup(NodeId parent, std::string_view name, const Ctx* ctx) {
  return core::lookup(*m_, parent, name, ctx);
}

void Union::forget(NodeId id, uint64_t n) {
  if (id != kControlId) m_->tree.forget(id, n);
}

Result<struct stat> Union::getattr(NodeId id, FileHandle* fh) { return core::getattr(*m_, id, fh); }

Result<struct stat> Union::setattr(NodeId id, const SetAttrIn& in, FileHandle* fh, const Ctx&) {
  auto t = m_->writes.ticket();
  core::OwnChanges own(*m_);
  own.node(id);
  return core::setattr(*m_, id, in, fh);
}

Result<std::string> Union::readlink(NodeId id) { return core::readlink(*m_, id); }

Status Union::access(NodeId id, int mask, const Ctx& ctx) { return core::access(*m_, id, mask, ctx); }

Result<struct statvfs> Union::statfs() { return core::statfs(*m_); }

Status Union::fsyncdir(NodeId id, bool datasync) { return core::fsyncdir(*m_, id, datasync); }

Result<Entry> Union::mknod(NodeId parent, std::string_view name, mode_t mode, dev_t rdev,
                           const Ctx& ctx) {
  auto t = m_->writes.ticket();
  core::OwnChanges own(*m_, parent, name);
  return core::mknod(*m_, parent, name, mode, rdev, ctx);
}

Result<Entry> Union::mkdir(NodeId parent, std::string_view name, mode_t mode, const Ctx& ctx) {
  auto t = m_->writes.ticket();
  core::OwnChanges own(*m_, parent, name);
  return core::mkdir(*m_, parent, name, mode, ctx);
}

Result<Entry> Union::symlink(const std::string& target, NodeId parent, std::string_view name,
                             const Ctx& ctx) {
  auto t = m_->writes.ticket();
  core::OwnChanges own(*m_, parent, name);
  return core::symlink(*m_, target, parent, name, ctx);
}

Result<Entry> Union::link(NodeId src, NodeId newparent, std::string_view name, const Ctx&) {
  auto t = m_->writes.ticket();
  core::OwnChanges own(*m_);
  own.node(src).entry(newparent, name);
  return core::link(*m_, src, newparent, name);
}

Status Union::unlink(NodeId parent, std::string_view name) {
  auto t = m_->writes.ticket();
  core::OwnChanges own(*m_, parent, name);
  return core::unlink(*m_, parent, name);
}

Status Union::rmdir(NodeId parent, std::string_view name) {
  auto t = m_->writes.ticket();
  core::OwnChanges own(*m_, parent, name);
  return core::rmdir(*m_, parent, name);
}

Status Union::rename(NodeId parent, std::string_view name, NodeId newparent,
                     std::string_view newname, unsigned flags) {
  auto t = m_->writes.ticket();
  core::OwnChanges own(*m_);
  own.entry(parent, name).entry(newparent, newname);
  return core::rename(*m_, parent, name, newparent, newname, flags);
}

Result<std::unique_ptr<FileHandle>> Union::open(NodeId id, int flags, const Ctx&) {
  // Opens that may copy up or truncate are modifications.
  bool writes = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
  WriteGate::Ticket t(writes ? &m_->writes : nullptr);
  core::OwnChanges own(*m_);
  if (writes) own.node(id);
  return core::open(*m_, id, flags);
}

Result<Union::Created> Union::create(NodeId parent, std::string_view name, mode_t mode, int flags,
                                     const Ctx& ctx) {
  auto t = m_->writes.ticket();
  core::OwnChanges own(*m_, parent, name);
  return core::create(*m_, parent, name, mode, flags, ctx);
}

Result<SharedFd> Union::io_fd(FileHandle& fh) { return core::io_fd(fh); }

WriteGate::Ticket Union::write_ticket() { return m_->writes.ticket(); }

WriteGate& Union::write_gate() { return m_->writes; }

void Union::release(std::unique_ptr<FileHandle> fh) {
  // Closing a written branch file reports IN_CLOSE_WRITE.
  core::OwnChanges own(*m_);
  if (fh && (fh->flags & O_ACCMODE) != O_RDONLY && fh->node) own.node(fh->node->id);
  m_->files.release(std::move(fh));
}

size_t Union::open_files() const { return m_->files.count(); }

Result<std::unique_ptr<DirHandle>> Union::opendir(NodeId id, const Ctx* ctx) {
  return core::opendir(*m_, id, ctx);
}

Status Union::rewinddir(DirHandle& dh) { return core::rewinddir(*m_, dh); }
Status Union::before_read(DirHandle& dh, bool first) { return core::before_read(*m_, dh, first); }

std::vector<Result<Entry>> Union::lookup_entries(DirHandle& dh, const VEntry* const* es, size_t n) {
  return core::lookup_entries(*m_, dh, es, n);
}

Result<std::vector<char>> Union::getxattr(NodeId id, const char* key, size_t size) {
  if (core::is_control_xattr(id, key)) return core::control_getxattr(*m_, id, key, size);
  return core::getxattr(*m_, id, key, size);
}

Result<std::vector<char>> Union::listxattr(NodeId id, size_t size) {
  if (id == kControlId) return core::control_listxattr(size);
  return core::listxattr(*m_, id, size);
}

Status Union::setxattr(NodeId id, const char* key, const void* val, size_t size, int flags,
                       const Ctx& ctx) {
  if (id == kControlId) return core::control_setxattr(*m_, key, val, size, ctx);
  auto t = m_->writes.ticket();
  core::OwnChanges own(*m_);
  own.node(id);
  return core::setxattr(*m_, id, key, val, size, flags);
}

Status Union::removexattr(NodeId id, const char* key) {
  auto t = m_->writes.ticket();
  core::OwnChanges own(*m_);
  own.node(id);
  return core::removexattr(*m_, id, key);
}

const std::string& Union::ino_xattr() const { return m_->ino_key; }

Status Union::change_branches(const std::vector<BranchOp>& ops, std::string* msg) {
  return core::change_branches(*m_, ops, msg);
}

std::string Union::info_json() const { return core::info_json(*m_); }

Result<std::string> Union::which_json(NodeId dir, std::string_view name) {
  return core::which_json(*m_, dir, name);
}

void Union::set_request_stats(StatsSource s) { m_->request_stats = std::move(s); }
BranchSetPtr Union::branches() const { return m_->branches(); }
const MountOptions& Union::options() const { return m_->opts; }
bool Union::read_only() const { return m_->ro(); }
void Union::set_frontend_info(std::function<std::string()> f) { m_->frontend_info = std::move(f); }
void Union::refuse_pauses(std::string why) { m_->writes.refuse_pauses(std::move(why)); }
const Counters& Union::counters() const { return m_->counters; }
size_t Union::reap_pending() const { return m_->reaper.pending(); }

bool Union::start_notify(std::function<void(NodeId, const std::string&)> inval) {
  return core::start_notify(*m_, std::move(inval));
}
std::string Union::udba_fallback() const { return m_->udba_fallback; }

void Union::stop_notify() { core::stop_notify(*m_); }

NodeId Union::cached_child(NodeId dir, const std::string& name) {
  return core::cached_child(*m_, dir, name);
}

bool Union::unwatched_dir(NodeId dir) const { return core::unwatched_dir(*m_, dir); }
bool Union::unwatched_node(NodeId id) const { return core::unwatched_node(*m_, id); }

std::vector<std::tuple<NodeId, NodeId, std::string>> Union::cached_names() const {
  return m_->tree.cached_names();
}

size_t Union::node_count() const { return m_->tree.table.size(); }

uint64_t Union::ino_of_node(NodeId id) const {
  if (id == kRootId) return kRootIno;
  NodePtr n = m_->tree.node(id);
  return n ? n->ino : 0;
}

uint64_t Union::parent_ino(NodeId id) const {
  NodePtr n = m_->tree.node(id);
  if (!n || id == kRootId) return kRootIno;
  return m_->tree.parent_ino(*n);
}

void Union::set_test_hook(TestHook h) { m_->test_hook = std::move(h); }
void Union::set_listing_budget(size_t entries) { m_->listings.set_budget(entries); }

}  // namespace aufs
