// SPDX-License-Identifier: GPL-2.0-or-later
// The core tier's fixture: branches in a temporary directory, a Union over
// them (no FUSE), and shell-like helpers (walk, ls, cat, mkdir, rename...).
#pragma once
#include <dirent.h>
#include <fcntl.h>
#include <cstring>
#include <functional>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "aufs_fuse/check.hpp"
#include "aufs_fuse/sys.hpp"
#include "aufs_fuse/union_fs.hpp"
#include "aufs_fuse/whiteout.hpp"
#include "support/tempdir.hpp"

namespace aufs::test {

using namespace aufs;

class UnionTest : public ::testing::Test {
 protected:
  // Branch specs: "rw", "ro", "ro+wh", ... one per branch, top first.
  void SetUp() override { mkdirs(tmp / "mnt"); }
  void make_branches(std::vector<std::string> perms) {
    perms_ = std::move(perms);
    for (size_t i = 0; i < perms_.size(); ++i) mkdirs(br(i));
  }
  std::string br(size_t i) const { return tmp / ("b" + std::to_string(i)); }
  void mount(std::string extra = "") {
    std::string list;
    for (size_t i = 0; i < perms_.size(); ++i) {
      if (i) list += ":";
      list += br(i) + "=" + perms_[i];
    }
    auto r = parse_command_line({"-o", "br=" + list + (extra.empty() ? "" : "," + extra), tmp / "mnt"});
    ASSERT_TRUE(r.ok()) << r.error;
    opts_ = r.opts;
    ASSERT_EQ(validate_options(opts_), "");
    auto u = Union::mount(opts_);
    ASSERT_TRUE(u.ok()) << u.err();
    fs = std::move(u.value());
  }
  // Walks a union path; every component is looked up (one reference each).
  Result<Entry> walk(const std::string& path) {
    NodeId cur = kRootId;
    Entry e{kRootId, {}};
    size_t pos = 0;
    while (pos < path.size()) {
      size_t slash = path.find('/', pos);
      if (slash == std::string::npos) slash = path.size();
      auto r = fs->lookup(cur, path.substr(pos, slash - pos));
      if (!r.ok()) return r;
      e = r.value();
      cur = e.id;
      pos = slash + 1;
    }
    if (path.empty()) {
      auto st = fs->getattr(kRootId);
      if (!st.ok()) return Errno{st.err()};
      e.attr = st.value();
    }
    return e;
  }
  NodeId dir(const std::string& path) {
    auto e = walk(path);
    EXPECT_TRUE(e.ok()) << path << ": " << e.err();
    return e.ok() ? e->id : 0;
  }
  std::vector<std::string> ls(const std::string& path) {
    auto dh = fs->opendir(dir(path));
    EXPECT_TRUE(dh.ok());
    std::vector<std::string> out;
    if (!dh.ok()) return out;
    for (auto& e : dh.value()->entries) out.push_back(e.name);
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string cat(const std::string& path) {
    auto e = walk(path);
    if (!e.ok()) return "<" + std::to_string(e.err()) + ">";
    auto fh = fs->open(e->id, O_RDONLY, Ctx{});
    if (!fh.ok()) return "<open " + std::to_string(fh.err()) + ">";
    auto fd = fs->io_fd(*fh.value());
    std::string out(1 << 16, '\0');
    ssize_t n = ::pread(fd.value()->get(), out.data(), out.size(), 0);
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    fs->release(std::move(fh.value()));
    return out;
  }
  void append(const std::string& path, const std::string& data) {
    auto e = walk(path);
    ASSERT_TRUE(e.ok()) << path;
    auto fh = fs->open(e->id, O_WRONLY | O_APPEND, Ctx{});
    ASSERT_TRUE(fh.ok()) << fh.err();
    auto fd = fs->io_fd(*fh.value());
    ASSERT_EQ(::write(fd.value()->get(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
    fs->release(std::move(fh.value()));
  }
  std::pair<NodeId, std::string> split(const std::string& path) {
    auto pos = path.rfind('/');
    if (pos == std::string::npos) return {kRootId, path};
    return {dir(path.substr(0, pos)), path.substr(pos + 1)};
  }
  int unlink(const std::string& path) {
    auto [p, n] = split(path);
    return fs->unlink(p, n).err();
  }
  int rmdir(const std::string& path) {
    auto [p, n] = split(path);
    return fs->rmdir(p, n).err();
  }
  int mkdir(const std::string& path, mode_t mode = 0755) {
    auto [p, n] = split(path);
    auto r = fs->mkdir(p, n, mode, Ctx{});
    return r.ok() ? 0 : r.err();
  }
  int rename(const std::string& a, const std::string& b, unsigned flags = 0) {
    auto [p, n] = split(a);
    auto [q, m] = split(b);
    return fs->rename(p, n, q, m, flags).err();
  }
  int create(const std::string& path, const std::string& data = "", const Ctx& ctx = Ctx{},
             mode_t mode = 0644) {
    auto [p, n] = split(path);
    auto r = fs->create(p, n, mode, O_WRONLY, ctx);
    if (!r.ok()) return r.err();
    auto fd = fs->io_fd(*r->fh);
    if (!data.empty()) {
      EXPECT_EQ(::write(fd.value()->get(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
    }
    fs->release(std::move(r->fh));
    return 0;
  }
  std::string read_node(NodeId id) {
    auto fh = fs->open(id, O_RDONLY, Ctx{});
    if (!fh.ok()) return "<open " + std::to_string(fh.err()) + ">";
    std::string out(64, '\0');
    ssize_t n = ::pread(fs->io_fd(*fh.value()).value()->get(), out.data(), out.size(), 0);
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    fs->release(std::move(fh.value()));
    return out;
  }
  void write_node(NodeId id, const std::string& data) {
    auto fh = fs->open(id, O_WRONLY, Ctx{});
    ASSERT_TRUE(fh.ok()) << fh.err();
    EXPECT_EQ(::pwrite(fs->io_fd(*fh.value()).value()->get(), data.data(), data.size(), 0),
              static_cast<ssize_t>(data.size()));
    fs->release(std::move(fh.value()));
  }
  bool no_temps(const std::string& d) {
    for (auto& n : list(d))
      if (wh::is_temp_name(n)) return false;
    return true;
  }

  TempDir tmp;
  std::vector<std::string> perms_;
  MountOptions opts_;
  std::unique_ptr<Union> fs;
};

}  // namespace aufs::test
