// SPDX-License-Identifier: GPL-2.0-or-later
// Directory handles (overlayfs's readdir.c): opendir, the merged listing in
// readdir and readdirplus replies, releasedir.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "fuse/request.hpp"

namespace aufs::fuse_ops {

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  log_req(req, "opendir", ino);
  guard(req, "opendir", [&] {
    Ctx c = make_ctx(req, false);
    auto r = fs_of(req).opendir(ino, &c);
    if (!r.ok()) return (void)fuse_reply_err(req, r.err());
    // The kernel keeps the listing it read (cache_readdir); opendir says
    // whether what it kept is still the listing (keep_cache).
    fi->cache_readdir = ctx_of(req).cfg.cache_readdir;
    fi->keep_cache = r.value()->keep_cache;
    fi->fh = reinterpret_cast<uint64_t>(r.value().release());
    Union& fs = fs_of(req);
    if (fuse_reply_open(req, fi) == -ENOENT) fs.releasedir(std::unique_ptr<DirHandle>(dh_of(fi)));
  });
}

// Offsets are cookies: entry index + 1 into the snapshot, with "." and ".."
// as indices 0 and 1. They stay valid until releasedir (seekdir works).
void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  DirHandle& dh = *dh_of(fi);
  Union& fs = fs_of(req);
  // Released before any reply: once the kernel has the answer, the caller
  // may close the directory, and releasedir (another worker) frees dh.
  std::unique_lock<std::mutex> g(dh.mu);
  auto& cfg = ctx_of(req).cfg;
  Status st;
  if (off == 0 && dh.started) st = fs.rewinddir(dh);  // AUFS refreshes the merged listing
  else if (cfg.cache_readdir) st = fs.before_read(dh, off == 0);
  if (!st.ok()) {
    g.unlock();
    return (void)fuse_reply_err(req, st.err());
  }
  dh.started = true;
  std::vector<char> buf(size);
  size_t used = 0;
  size_t total = dh.entries.size() + 2;
  auto name_of = [&](size_t i) { return i < 2 ? (i == 0 ? "." : "..") : dh.entries[i - 2].name.c_str(); };
  auto dirent_of = [&](size_t i) {
    struct stat st {};
    if (i < 2) {
      st.st_mode = S_IFDIR;
      // d_ino 0 makes libc skip the entry, so ".." always gets a number.
      st.st_ino = i == 0 ? fs.ino_of_node(ino) : fs.parent_ino(ino);
    } else {
      const VEntry& e = dh.entries[i - 2];
      st.st_mode = static_cast<mode_t>(DTTOIF(e.type));
      st.st_ino = fs.entry_ino(e);
    }
    return st;
  };
  size_t start = static_cast<size_t>(off);
  pid_t tid = fuse_req_ctx(req)->pid;
  // Names only, in readdirplus's format: no lookup reference, so the kernel
  // makes no dentry and a later stat asks (plus_demand.hpp).
  bool names_only = plus && !ctx_of(req).plus.wants_attrs(tid);
  if (!plus || names_only) {
    size_t nondirs = 0;
    for (size_t i = start; i < total; ++i) {
      fuse_entry_param p{};
      p.attr = dirent_of(i);
      size_t rem = size - used;
      off_t next = static_cast<off_t>(i + 1);
      size_t n = plus ? fuse_add_direntry_plus(req, buf.data() + used, rem, name_of(i), &p, next)
                      : fuse_add_direntry(req, buf.data() + used, rem, name_of(i), &p.attr, next);
      if (n > rem) break;
      used += n;
      if (!S_ISDIR(p.attr.st_mode)) ++nondirs;
    }
    if (plus) ctx_of(req).plus.sent_names(tid, nondirs);
  } else {
    // The entries that fit first (a NULL buffer gives an entry's size), then
    // their lookups in one batch, so each reply opens the directory once per
    // branch instead of once per entry.
    size_t end = start;
    for (size_t need = 0; end < total; ++end) {
      need += fuse_add_direntry_plus(req, nullptr, 0, name_of(end), nullptr, 0);
      if (need > size) break;
    }
    size_t first = std::max<size_t>(start, 2);
    std::vector<const VEntry*> batch;
    for (size_t i = first; i < end; ++i) batch.push_back(&dh.entries[i - 2]);
    auto found = fs.lookup_entries(dh, batch.data(), batch.size());
    for (size_t i = start; i < end; ++i) {
      fuse_entry_param p{};
      const Result<Entry>* r = i >= first ? &found[i - first] : nullptr;
      if (r && r->ok()) {
        p = entry_param(cfg, r->value());
      } else {
        // Gone since the listing, or "." and "..": a plain entry, no
        // lookup reference.
        p.attr = dirent_of(i);
      }
      size_t rem = size - used;
      size_t n = fuse_add_direntry_plus(req, buf.data() + used, rem, name_of(i), &p, static_cast<off_t>(i + 1));
      if (n > rem) {
        // Not sent: the kernel will not forget these references.
        for (size_t k = std::max(i, first); k < end; ++k)
          if (found[k - first].ok()) fs.forget(found[k - first]->id, 1);
        break;
      }
      used += n;
    }
  }
  g.unlock();
  fuse_reply_buf(req, buf.data(), used);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  guard(req, "readdir", [&] { do_readdir(req, ino, size, off, fi, false); });
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  guard(req, "readdirplus", [&] { do_readdir(req, ino, size, off, fi, true); });
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  (void)ino;
  guard(req, "releasedir", [&] {
    fs_of(req).releasedir(std::unique_ptr<DirHandle>(dh_of(fi)));
    fuse_reply_err(req, 0);
  });
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  (void)fi;
  guard(req, "fsyncdir", [&] { fuse_reply_err(req, fs_of(req).fsyncdir(ino, datasync != 0).err()); });
}

}  // namespace aufs::fuse_ops
