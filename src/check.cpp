// SPDX-License-Identifier: GPL-2.0-or-later
#include "aufs_fuse/check.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <string_view>
#include <unordered_set>

#include "aufs_fuse/sys.hpp"
#include "aufs_fuse/whiteout.hpp"

namespace aufs {
namespace {

// ".wh..wh.NAME.XXXX" with four hex digits.
bool looks_like_temp(std::string_view n) {
  if (!wh::is_temp_name(n) || n.size() < wh::kDoublePrefix.size() + 6) return false;
  std::string_view tail = n.substr(n.size() - 5);
  if (tail[0] != '.') return false;
  for (char c : tail.substr(1))
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

Status remove_tree_at(int dirfd, const std::string& name) {
  auto gone = sys::unlink_at(dirfd, name, 0);
  if (gone.ok() || gone.err() == ENOENT) return {};
  if (gone.err() != EISDIR && gone.err() != EPERM) return gone;
  auto sub = sys::open_beneath(dirfd, name, O_PATH | O_DIRECTORY);
  if (!sub.ok()) return Errno{sub.err()};
  auto ents = sys::read_dir(sub->get());
  if (!ents.ok()) return Errno{ents.err()};
  for (auto& e : *ents) AUFS_TRY(remove_tree_at(sub->get(), e.name));
  return sys::unlink_at(dirfd, name, AT_REMOVEDIR);
}

void add(CheckReport& r, CheckIssue::Kind k, const std::string& path, bool fixed) {
  r.issues.push_back({k, path, fixed});
}

}  // namespace

const char* kind_name(CheckIssue::Kind k) {
  switch (k) {
    case CheckIssue::Kind::TempLeftover: return "temporary-leftover";
    case CheckIssue::Kind::NameAndWhiteout: return "name-and-whiteout";
    case CheckIssue::Kind::BadWhiteout: return "bad-whiteout";
    case CheckIssue::Kind::BadOpaque: return "bad-opaque";
    case CheckIssue::Kind::StalePlink: return "stale-pseudo-link";
    case CheckIssue::Kind::Orphan: return "orphan";
  }
  return "?";
}

Result<CheckReport> check_branch(const std::string& root_path, bool fix, bool fix_plinks,
                                 bool walk) {
  AUFS_ASSIGN_OR_RETURN(UniqueFd root, sys::open_at(AT_FDCWD, root_path, O_PATH | O_DIRECTORY));
  CheckReport rep;
  for (auto meta : {wh::kPlink, wh::kOrph}) {
    auto d = sys::open_beneath(root.get(), std::string(meta), O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (!d.ok()) continue;
    auto ents = sys::read_dir(d->get());
    if (!ents.ok()) continue;
    for (auto& e : *ents) {
      if (meta == wh::kPlink) {
        // aufs-fuse's own records are named by the union inode number and
        // persist by design. Kernel AUFS's "INO.BRINO" entries are unflushed
        // pseudo-links: dropped only on request, since lower names may
        // still depend on them.
        bool ours = !e.name.empty() &&
                    e.name.find_first_not_of("0123456789") == std::string::npos;
        if (ours) continue;
        bool fixed = fix_plinks && remove_tree_at(d->get(), e.name).ok();
        add(rep, CheckIssue::Kind::StalePlink, std::string(meta) + "/" + e.name, fixed);
      } else {
        // A temporary name: a directory rmdir left for dirwh's background
        // removal; any other: a removed file that was kept open.
        bool fixed = fix && remove_tree_at(d->get(), e.name).ok();
        add(rep, wh::is_temp_name(e.name) ? CheckIssue::Kind::TempLeftover : CheckIssue::Kind::Orphan,
            std::string(meta) + "/" + e.name, fixed);
      }
    }
  }
  std::vector<std::string> stack;
  if (walk) stack.emplace_back();
  while (!stack.empty()) {
    std::string rel = std::move(stack.back());
    stack.pop_back();
    auto dfd = sys::open_beneath(root.get(), rel, O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (!dfd.ok()) continue;  // vanished or replaced meanwhile
    auto ents = sys::read_dir(dfd->get());
    if (!ents.ok()) return Errno{ents.err()};
    rep.dirs++;
    // The names are indexed only for a directory with whiteouts, and a
    // path is made only for a finding: mounting a fresh branch walks it.
    std::unordered_set<std::string_view> names;
    for (auto& e : *ents) {
      rep.entries++;
      auto path = [&] { return sys::join(rel, e.name); };
      if (rel.empty() && (e.name == wh::kPlink || e.name == wh::kOrph || e.name == wh::kBase))
        continue;
      if (looks_like_temp(e.name)) {
        bool fixed = fix && remove_tree_at(dfd->get(), e.name).ok();
        add(rep, CheckIssue::Kind::TempLeftover, path(), fixed);
        continue;
      }
      if (e.name == wh::kOpaque) {
        auto st = sys::lstat_at(dfd->get(), e.name);
        if (st.ok() && !S_ISREG(st->st_mode)) add(rep, CheckIssue::Kind::BadOpaque, path(), false);
        continue;
      }
      if (wh::is_whiteout_name(e.name)) {
        auto target = wh::whiteout_target(e.name);
        if (target.empty()) continue;  // other .wh..wh.* metadata (dirren, ...)
        auto st = sys::lstat_at(dfd->get(), e.name);
        if (st.ok() && (!S_ISREG(st->st_mode) || st->st_size != 0)) {
          add(rep, CheckIssue::Kind::BadWhiteout, path(), false);
          continue;
        }
        if (names.empty())
          for (auto& o : *ents) names.insert(o.name);
        if (names.count(target)) {
          bool fixed = fix && sys::unlink_at(dfd->get(), e.name, 0).ok();
          add(rep, CheckIssue::Kind::NameAndWhiteout, path(), fixed);
        }
        continue;
      }
      unsigned char t = e.type;
      if (t == DT_UNKNOWN) {
        auto st = sys::lstat_at(dfd->get(), e.name);
        if (st.ok() && S_ISDIR(st->st_mode)) t = DT_DIR;
      }
      if (t == DT_DIR) stack.push_back(path());
    }
  }
  return rep;
}

}  // namespace aufs
