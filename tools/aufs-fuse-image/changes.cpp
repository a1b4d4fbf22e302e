// SPDX-License-Identifier: GPL-2.0-or-later
// Turns a writable branch into OCI layer entries. The branch is read as
// it is (as Docker's aufs driver did), with what AUFS can express and OCI
// cannot converted:
//   - a directory renamed through a dirren record: the rename's whiteout
//     of the old name stays, and the new name gets an opaque marker and
//     the directory's full merged content;
//   - a pseudo-linked file (.wh..wh.plnk/INO): names of the file still on a
//     lower layer, which the union shows as the copy, become hard links of
//     the copy in the layer;
//   - NAME and .wh.NAME both on the branch (an interrupted operation): the
//     entry wins, as aufs-fuse-check --fix decides.
// Internal names (.wh..wh.*) never reach the layer.
#include "changes.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>

#include "aufs_fuse/dirren.hpp"
#include "aufs_fuse/whiteout.hpp"
#include "aufs_fuse/xino.hpp"
#include "image.hpp"

namespace aufs_image {
namespace {

namespace wh = aufs::wh;

// A directory as the lower layers supply it: (layer index, its part there)
// for each layer that contributes, top first.
using Live = std::vector<std::pair<int, std::string>>;

struct Found {
  bool exists = false;
  int layer = -1;
  std::string path;  // the top-most entry
  struct stat st {};
  Live dirs;  // a directory: the parts that merge
};

std::string join(const std::string& rel, const std::string& name) {
  return rel.empty() ? name : rel + "/" + name;
}

bool lstat_ok(const std::string& p, struct stat& st) { return ::lstat(p.c_str(), &st) == 0; }

bool is_opaque(const std::string& dir) {
  struct stat st;
  return lstat_ok(dir + "/" + std::string(wh::kOpaque), st);
}

std::vector<std::string> read_names(const std::string& dir) {
  auto names = list_names(dir);
  if (!names) throw Error("cannot read " + dir + ": " + std::strerror(errno));
  return std::move(*names);
}

class Collector {
 public:
  explicit Collector(const BranchSet& b) : b_(b) {
    for (size_t i = 0; i < b_.layers.size(); ++i) {
      root_.push_back({static_cast<int>(i), b_.layers[i]});
      if (is_opaque(b_.layers[i])) break;
    }
    load_plinks();
  }

  Changes run() {
    walk_branch("", b_.rw, root_);
    add_pseudo_linked_names();
    finish();
    return std::move(out_);
  }

 private:
  // The lower entry `name` of a directory, by the rules of an ro+wh
  // branch: whiteouts and opaque markers end the search downwards; with
  // ociwh a whiteout does not hide its own layer's entry, and a file ends
  // a directory above it.
  Found lower_child(const Live& live, const std::string& name) const {
    Found f;
    for (auto& [li, dir] : live) {
      std::string p = dir + "/" + name;
      struct stat st, wst;
      bool has = lstat_ok(p, st);
      bool white = lstat_ok(dir + "/" + wh::whiteout_of(name), wst);
      if (white && !b_.ociwh) break;
      if (has) {
        if (!f.exists) {
          f.exists = true;
          f.layer = li;
          f.path = p;
          f.st = st;
        } else if (!S_ISDIR(st.st_mode)) {
          if (b_.ociwh) break;
          continue;
        }
        if (!S_ISDIR(f.st.st_mode)) break;
        f.dirs.push_back({li, p});
        if (is_opaque(p)) break;
      }
      if (white) break;
    }
    return f;
  }

  // The lower image's entry at `rel` (what a name meant before the branch).
  Found lower_at(const std::string& rel) const {
    Found f;
    f.exists = true;
    f.dirs = root_;
    size_t pos = 0;
    while (pos < rel.size()) {
      size_t c = rel.find('/', pos);
      if (c == std::string::npos) c = rel.size();
      if (!f.exists || f.dirs.empty()) return {};
      f = lower_child(f.dirs, rel.substr(pos, c - pos));
      pos = c + 1;
    }
    return f;
  }

  // The lower parts of a directory renamed with dirren, from its record
  // (matched as the daemon matches it); nullopt without a usable record.
  std::optional<Live> read_dirren(const std::string& dir) const {
    std::ifstream in(dir + "/" + std::string(aufs::dirren::kRecordName), std::ios::binary);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    auto entries = aufs::dirren::decode(ss.str());
    if (!entries.ok()) {
      note("ignoring the unreadable dirren record in " + dir);
      return std::nullopt;
    }
    Live live;
    for (size_t i = 0; i < b_.layers.size(); ++i) {
      struct stat root, st;
      if (!lstat_ok(b_.layers[i], root)) continue;
      const auto* e = aufs::dirren::match(*entries, root.st_dev, root.st_ino, b_.layers[i]);
      if (!e || !aufs::dirren::relative_path_ok(e->rel)) continue;
      std::string p = b_.layers[i] + "/" + e->rel;
      if (!lstat_ok(p, st) || !S_ISDIR(st.st_mode)) continue;
      if (root.st_ino == e->root_ino && st.st_ino != e->dir_ino) continue;
      live.push_back({static_cast<int>(i), p});
    }
    return live;
  }

  void load_plinks() {
    std::string dir = b_.rw + "/" + std::string(wh::kPlink);
    struct stat st;
    if (!lstat_ok(dir, st) || !S_ISDIR(st.st_mode)) return;
    for (auto& n : read_names(dir)) {
      // aufs-fuse's records are named by the union inode number.
      if (n.find_first_not_of("0123456789") != std::string::npos) continue;
      plinks_[std::stoull(n)] = dir + "/" + n;
    }
  }

  // A lower regular file that was copied up under another of its names
  // is shown as the copy: read the copy (the pseudo-link record).
  void substitute_plink(int layer, std::string& src, struct stat& st) const {
    if (plinks_.empty() || !S_ISREG(st.st_mode) || st.st_nlink < 2) return;
    uint64_t ino = aufs::hash_ino(aufs::branch_seed(b_.layers[layer].c_str()), st.st_ino);
    auto it = plinks_.find(ino);
    if (it == plinks_.end() || !lstat_ok(it->second, st)) return;
    src = it->second;
  }

  void add_node(const std::string& path, const std::string& src, const struct stat& st,
                char change) {
    LayerEntry e;
    e.path = path;
    e.source = src;
    e.st = st;
    e.change = change;
    e.change_path = path;
    out_.entries.push_back(std::move(e));
  }

  void add_marker(LayerEntry::Kind kind, const std::string& path, char change = 0,
                  const std::string& change_path = "") {
    LayerEntry e;
    e.kind = kind;
    e.path = path;
    e.change = change;
    e.change_path = change_path;
    out_.entries.push_back(std::move(e));
  }

  void check_marker(const std::string& p) const {
    struct stat st;
    if (lstat_ok(p, st) && !S_ISREG(st.st_mode))
      throw Error(p + " is not a regular file: not a whiteout OCI can express "
                  "(see aufs-fuse-check(8))");
  }

  // A directory of the branch, by its own content: whiteouts and opaque
  // markers as they are, entries as they are.
  void walk_branch(const std::string& rel, const std::string& dir, const Live& lower) {
    auto names = read_names(dir);
    std::set<std::string> present(names.begin(), names.end());
    bool opaque = present.count(std::string(wh::kOpaque)) > 0;
    if (opaque) {
      check_marker(dir + "/" + std::string(wh::kOpaque));
      add_marker(LayerEntry::Kind::Opaque, join(rel, std::string(wh::kOpaque)));
    }
    const Live none;
    const Live& below = opaque ? none : lower;
    for (auto& name : names) {
      if (wh::is_meta_name(name)) continue;  // base, plnk, orph, temporaries, records
      std::string src = dir + "/" + name;
      if (wh::is_whiteout_name(name)) {
        std::string target(wh::whiteout_target(name));
        if (target.empty()) continue;
        check_marker(src);
        if (present.count(target)) {
          ++out_.conflicts;  // checker rule: the entry wins
          continue;
        }
        bool was = lower_child(below, target).exists;
        add_marker(LayerEntry::Kind::Whiteout, join(rel, name), was ? 'D' : 0, join(rel, target));
        continue;
      }
      struct stat st;
      if (!lstat_ok(src, st)) continue;  // gone meanwhile
      std::string path = join(rel, name);
      Found f = lower_child(below, name);
      add_node(path, src, st, f.exists ? 'C' : 'A');
      if (!S_ISDIR(st.st_mode)) continue;
      if (auto moved = read_dirren(src)) {
        ++out_.renamed_dirs;
        add_marker(LayerEntry::Kind::Opaque, join(path, std::string(wh::kOpaque)));
        walk_full(path, src, *moved);
      } else {
        walk_branch(path, src, f.exists && S_ISDIR(f.st.st_mode) ? f.dirs : none);
      }
    }
  }

  // A directory whose whole merged content goes into the layer (below a
  // renamed directory): the branch part `dir` (may be "") over `lower`.
  void walk_full(const std::string& rel, const std::string& dir, const Live& lower) {
    std::vector<std::string> names;
    std::set<std::string> mine, hidden;
    bool opaque = false;
    if (!dir.empty()) {
      for (auto& n : read_names(dir)) {
        if (n == wh::kOpaque) opaque = true;
        if (wh::is_meta_name(n)) continue;
        if (wh::is_whiteout_name(n)) {
          hidden.insert(std::string(wh::whiteout_target(n)));
          continue;
        }
        mine.insert(n);
      }
    }
    const Live none;
    const Live& below = opaque ? none : lower;
    std::set<std::string> all(mine);
    for (auto& [li, d] : below)
      for (auto& n : read_names(d))
        if (!wh::is_whiteout_name(n) && !hidden.count(n)) all.insert(n);
    for (auto& name : all) {
      std::string path = join(rel, name);
      char change = lower_at(path).exists ? 'C' : 'A';
      if (mine.count(name)) {
        std::string src = dir + "/" + name;
        struct stat st;
        if (!lstat_ok(src, st)) continue;
        add_node(path, src, st, change);
        if (!S_ISDIR(st.st_mode)) continue;
        auto moved = read_dirren(src);
        Found f = lower_child(below, name);
        walk_full(path, src,
                  moved ? *moved : (f.exists && S_ISDIR(f.st.st_mode) ? f.dirs : none));
        continue;
      }
      Found f = lower_child(below, name);
      if (!f.exists) continue;
      std::string src = f.path;
      struct stat st = f.st;
      substitute_plink(f.layer, src, st);
      add_node(path, src, st, change);
      if (S_ISDIR(st.st_mode)) walk_full(path, "", f.dirs);
    }
  }

  // Names of pseudo-linked files still on a lower layer, visible through
  // the union (nothing of the branch at or above them hides them).
  void add_pseudo_linked_names() {
    if (plinks_.empty()) return;
    std::set<std::string> taken, dir_nodes, opaque_dirs;
    for (auto& e : out_.entries) {
      if (e.kind == LayerEntry::Kind::Node) {
        taken.insert(e.path);
        if (S_ISDIR(e.st.st_mode)) dir_nodes.insert(e.path);
      } else if (e.kind == LayerEntry::Kind::Whiteout) {
        taken.insert(e.change_path);
      } else {
        auto slash = e.path.rfind('/');
        opaque_dirs.insert(slash == std::string::npos ? "" : e.path.substr(0, slash));
      }
    }
    auto hidden = [&](const std::string& p) {
      for (size_t pos = 0;;) {
        size_t c = p.find('/', pos);
        std::string prefix = p.substr(0, c);
        std::string parent = pos == 0 ? "" : p.substr(0, pos - 1);
        if (opaque_dirs.count(parent)) return true;
        if (c == std::string::npos) return taken.count(prefix) > 0;
        if (taken.count(prefix) && !dir_nodes.count(prefix)) return true;
        pos = c + 1;
      }
    };
    std::vector<std::pair<std::string, std::string>> found;  // path, record
    for (size_t i = 0; i < b_.layers.size(); ++i) {
      uint64_t seed = aufs::branch_seed(b_.layers[i].c_str());
      std::vector<std::string> stack{""};
      while (!stack.empty()) {
        std::string rel = stack.back();
        stack.pop_back();
        std::string dir = rel.empty() ? b_.layers[i] : b_.layers[i] + "/" + rel;
        for (auto& n : read_names(dir)) {
          if (wh::is_whiteout_name(n)) continue;
          struct stat st;
          std::string p = join(rel, n);
          if (!lstat_ok(dir + "/" + n, st)) continue;
          if (S_ISDIR(st.st_mode)) stack.push_back(p);
          if (!S_ISREG(st.st_mode) || st.st_nlink < 2) continue;
          auto it = plinks_.find(aufs::hash_ino(seed, st.st_ino));
          if (it == plinks_.end() || hidden(p)) continue;
          Found f = lower_at(p);
          if (f.exists && f.layer == static_cast<int>(i) && f.st.st_ino == st.st_ino)
            found.push_back({p, it->second});
        }
      }
    }
    for (auto& [p, record] : found) {
      struct stat st;
      if (!lstat_ok(record, st)) continue;
      add_node(p, record, st, 'C');
      ++out_.pseudo_links;
    }
  }

  // Sorted entries (parents before children: "a" < "a/b"), the first name
  // of an inode carries its data, the others are hard links to it.
  void finish() {
    auto& es = out_.entries;
    std::sort(es.begin(), es.end(),
              [](const LayerEntry& a, const LayerEntry& b) { return a.path < b.path; });
    std::map<std::pair<dev_t, ino_t>, std::string> first;
    for (auto& e : es) {
      if (e.kind != LayerEntry::Kind::Node || S_ISDIR(e.st.st_mode)) continue;
      if (e.st.st_nlink > 1) {
        auto [it, fresh] = first.try_emplace({e.st.st_dev, e.st.st_ino}, e.path);
        if (!fresh) {
          e.link = it->second;
          continue;
        }
      }
      if (S_ISREG(e.st.st_mode)) out_.data_bytes += e.st.st_size;
    }
  }

  const BranchSet& b_;
  Live root_;
  std::unordered_map<uint64_t, std::string> plinks_;  // union ino -> record
  Changes out_;
};

}  // namespace

Changes collect_changes(const BranchSet& b) { return Collector(b).run(); }

}  // namespace aufs_image
