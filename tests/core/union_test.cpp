// Core tier: the union operations on real temporary directories, no FUSE.
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

using namespace aufs;
using namespace aufs::test;

namespace {

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

}  // namespace

TEST_F(UnionTest, RwBranchGetsAufsMetadata) {
  make_branches({"rw", "ro"});
  mount();
  struct stat st;
  ASSERT_EQ(::lstat((br(0) + "/.wh..wh.aufs").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  ASSERT_EQ(::lstat((br(0) + "/.wh..wh.plnk").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(exists(br(0) + "/.wh..wh.orph"));
  EXPECT_FALSE(exists(br(1) + "/.wh..wh.aufs"));
  EXPECT_EQ(ls(""), std::vector<std::string>{});
}

TEST_F(UnionTest, LookupTopMostWinsAndDirsMerge) {
  make_branches({"rw", "ro", "ro"});
  write_file(br(0) + "/f", "top");
  write_file(br(1) + "/f", "mid");
  mkdirs(br(1) + "/d");
  mkdirs(br(2) + "/d");
  write_file(br(1) + "/d/x", "x");
  write_file(br(2) + "/d/y", "y");
  write_file(br(2) + "/d/x", "lower x");
  mount();
  EXPECT_EQ(cat("f"), "top");
  EXPECT_EQ(ls("d"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(cat("d/x"), "x");
  EXPECT_EQ(cat("d/y"), "y");
}

TEST_F(UnionTest, WhiteoutsAndOpaqueOnlyOnWhAbleBranches) {
  make_branches({"rw", "ro+wh", "ro", "ro"});
  write_file(br(1) + "/.wh.a", "", 0444);
  write_file(br(2) + "/.wh.b", "", 0444);  // plain ro: ignored for hiding
  write_file(br(3) + "/a", "a");
  write_file(br(3) + "/b", "b");
  mkdirs(br(1) + "/o");
  write_file(br(1) + "/o/.wh..wh..opq", "", 0444);
  write_file(br(1) + "/o/mine", "m");
  mkdirs(br(3) + "/o");
  write_file(br(3) + "/o/hidden", "h");
  mkdirs(br(2) + "/p");
  write_file(br(2) + "/p/.wh..wh..opq", "", 0444);  // ignored on plain ro
  mkdirs(br(3) + "/p");
  write_file(br(3) + "/p/shown", "s");
  mount();
  EXPECT_EQ(walk("a").err(), ENOENT);
  EXPECT_EQ(cat("b"), "b");
  EXPECT_EQ(ls(""), (std::vector<std::string>{"b", "o", "p"}));
  EXPECT_EQ(ls("o"), std::vector<std::string>{"mine"});
  EXPECT_EQ(walk("o/hidden").err(), ENOENT);
  EXPECT_EQ(ls("p"), std::vector<std::string>{"shown"});
}

TEST_F(UnionTest, FileOverDirAndDirOverFile) {
  make_branches({"rw", "ro", "ro", "ro"});
  write_file(br(1) + "/x", "file");
  mkdirs(br(2) + "/x");
  write_file(br(2) + "/x/in", "i");
  mkdirs(br(1) + "/y");
  write_file(br(2) + "/y", "file");
  // Mismatching lower types are skipped: dir, file, dir merges the dirs.
  mkdirs(br(1) + "/z");
  write_file(br(1) + "/z/one", "1");
  write_file(br(2) + "/z", "file");
  mkdirs(br(3) + "/z");
  write_file(br(3) + "/z/three", "3");
  mount();
  auto x = walk("x");
  ASSERT_TRUE(x.ok());
  EXPECT_TRUE(S_ISREG(x->attr.st_mode));
  EXPECT_EQ(walk("x/in").err(), ENOTDIR);
  auto y = walk("y");
  ASSERT_TRUE(y.ok());
  EXPECT_TRUE(S_ISDIR(y->attr.st_mode));
  EXPECT_EQ(ls("z"), (std::vector<std::string>{"one", "three"}));
}

TEST_F(UnionTest, ReservedAndLongNames) {
  make_branches({"rw"});
  mount();
  EXPECT_EQ(walk(".wh.x").err(), EPERM);
  EXPECT_EQ(create(".wh.x"), EPERM);
  EXPECT_EQ(mkdir(".wh..wh.plnk"), EPERM);
  EXPECT_EQ(create(std::string(243, 'n')), ENAMETOOLONG);
  EXPECT_EQ(create(std::string(242, 'n')), 0);
  auto sf = fs->statfs();
  ASSERT_TRUE(sf.ok());
  EXPECT_EQ(sf->f_namemax, 242u);
}

TEST_F(UnionTest, CopyUpOnWriteKeepsDataModeTimesXattrsAndLowerIntact) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/a/b");
  ::chmod((br(1) + "/a").c_str(), 0751);
  write_file(br(1) + "/a/b/f", "hello", 0640);
  bool xattrs = ::setxattr((br(1) + "/a/b/f").c_str(), "user.k", "v", 1, 0) == 0;
  struct timespec old[2] = {{1000000, 0}, {2000000, 0}};
  ::utimensat(AT_FDCWD, (br(1) + "/a/b/f").c_str(), old, 0);
  mount();
  auto before = walk("a/b/f");
  ASSERT_TRUE(before.ok());
  append("a/b/f", " world");
  EXPECT_EQ(read_file(br(0) + "/a/b/f"), "hello world");
  EXPECT_EQ(read_file(br(1) + "/a/b/f"), "hello");
  EXPECT_EQ(cat("a/b/f"), "hello world");
  struct stat st;
  ASSERT_EQ(::stat((br(0) + "/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0751u);
  ASSERT_EQ(::stat((br(0) + "/a/b/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  if (xattrs) {
    char v[8] = {};
    EXPECT_EQ(::getxattr((br(0) + "/a/b/f").c_str(), "user.k", v, sizeof v), 1);
    EXPECT_EQ(v[0], 'v');
  }
  auto after = walk("a/b/f");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->attr.st_ino, before->attr.st_ino);
  EXPECT_TRUE(no_temps(br(0) + "/a/b"));
  EXPECT_EQ(fs->counters().copyups.load(), 3u);  // a, a/b, a/b/f
}

TEST_F(UnionTest, MetadataCopyUpPreservesTimesOfUntouchedFields) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "data", 0644);
  struct timespec old[2] = {{1000000, 0}, {2000000, 0}};
  ::utimensat(AT_FDCWD, (br(1) + "/f").c_str(), old, 0);
  mount();
  auto e = walk("f");
  ASSERT_TRUE(e.ok());
  SetAttrIn in;
  in.valid = SetAttrIn::kMode;
  in.mode = 0600;
  auto st = fs->setattr(e->id, in, nullptr, Ctx{});
  ASSERT_TRUE(st.ok()) << st.err();
  EXPECT_EQ(st->st_mode & 07777, 0600u);
  EXPECT_EQ(st->st_mtim.tv_sec, 2000000);
  EXPECT_EQ(read_file(br(0) + "/f"), "data");
  struct stat lower;
  ::stat((br(1) + "/f").c_str(), &lower);
  EXPECT_EQ(lower.st_mode & 07777, 0644u);
}

TEST_F(UnionTest, TruncateCopiesOnlyWhatIsKept) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "0123456789");
  mount();
  auto e = walk("f");
  SetAttrIn in;
  in.valid = SetAttrIn::kSize;
  in.size = 4;
  ASSERT_TRUE(fs->setattr(e->id, in, nullptr, Ctx{}).ok());
  EXPECT_EQ(read_file(br(0) + "/f"), "0123");
  EXPECT_EQ(read_file(br(1) + "/f"), "0123456789");
  auto fh = fs->open(walk("f")->id, O_WRONLY | O_TRUNC, Ctx{});
  ASSERT_TRUE(fh.ok());
  fs->release(std::move(fh.value()));
}

TEST_F(UnionTest, SparseFilesStaySparse) {
  make_branches({"rw", "ro"});
  int fd = ::open((br(1) + "/sparse").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 64 << 20), 0);
  ASSERT_EQ(::pwrite(fd, "x", 1, 32 << 20), 1);
  ::close(fd);
  mount();
  append("sparse", "y");
  struct stat st;
  ASSERT_EQ(::stat((br(0) + "/sparse").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, (64 << 20) + 1);
  EXPECT_LT(st.st_blocks * 512, 4 << 20) << "copy-up filled holes";
}

TEST_F(UnionTest, SymlinkFifoCopyUp) {
  make_branches({"rw", "ro"});
  ASSERT_EQ(::symlink("target/x", (br(1) + "/l").c_str()), 0);
  ASSERT_EQ(::mkfifo((br(1) + "/p").c_str(), 0640), 0);
  mount();
  for (const char* n : {"l", "p"}) {
    auto e = walk(n);
    ASSERT_TRUE(e.ok());
    SetAttrIn in;
    in.valid = SetAttrIn::kUid | SetAttrIn::kGid;
    in.uid = 1234;
    in.gid = 1234;
    ASSERT_TRUE(fs->setattr(e->id, in, nullptr, Ctx{}).ok()) << n;
    struct stat st;
    ASSERT_EQ(::lstat((br(0) + "/" + n).c_str(), &st), 0) << n;
    EXPECT_EQ(st.st_uid, 1234u);
  }
  char buf[64] = {};
  ASSERT_GT(::readlink((br(0) + "/l").c_str(), buf, sizeof buf), 0);
  EXPECT_STREQ(buf, "target/x");
  auto rl = fs->readlink(walk("l")->id);
  ASSERT_TRUE(rl.ok());
  EXPECT_EQ(rl.value(), "target/x");
  struct stat st;
  ::lstat((br(0) + "/p").c_str(), &st);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(UnionTest, ReaderFollowsCopyUp) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "old");
  mount();
  auto e = walk("f");
  auto reader = fs->open(e->id, O_RDONLY, Ctx{});
  ASSERT_TRUE(reader.ok());
  auto writer = fs->open(e->id, O_WRONLY | O_TRUNC, Ctx{});
  ASSERT_TRUE(writer.ok());
  ASSERT_EQ(::write(fs->io_fd(*writer.value()).value()->get(), "new!", 4), 4);
  char buf[8] = {};
  ASSERT_EQ(::pread(fs->io_fd(*reader.value()).value()->get(), buf, sizeof buf, 0), 4);
  EXPECT_STREQ(buf, "new!");
  fs->release(std::move(reader.value()));
  fs->release(std::move(writer.value()));
}

// A read in flight while a copy-up re-points its handle keeps using the fd
// it started with: closing it there and then let the number be reused by
// another open, so the read could return another file's data.
TEST_F(UnionTest, ReadInFlightKeepsItsFdAcrossCopyUp) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "old");
  write_file(br(1) + "/g", "other");
  mount();
  auto e = walk("f");
  auto reader = fs->open(e->id, O_RDONLY, Ctx{});
  ASSERT_TRUE(reader.ok());
  auto in_flight = fs->io_fd(*reader.value());  // a read has started
  ASSERT_TRUE(in_flight.ok());
  const int fd = in_flight.value()->get();
  auto writer = fs->open(e->id, O_WRONLY | O_TRUNC, Ctx{});  // copy-up, re-points the reader
  ASSERT_TRUE(writer.ok());
  ASSERT_NE(fs->io_fd(*reader.value()).value()->get(), fd);
  auto g = fs->open(walk("g")->id, O_RDONLY, Ctx{});  // would take a freed number
  ASSERT_TRUE(g.ok());
  char buf[8] = {};
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), 3) << std::strerror(errno);
  EXPECT_STREQ(buf, "old");
  in_flight = Errno{EIO};  // the read ends: now the old fd may close
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  fs->release(std::move(g.value()));
  fs->release(std::move(reader.value()));
  fs->release(std::move(writer.value()));
}

TEST_F(UnionTest, UnlinkWritesWhiteoutOnlyWhenNeeded) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/lower", "l");
  write_file(br(0) + "/both", "u");
  write_file(br(1) + "/both", "l");
  write_file(br(0) + "/upper", "u");
  mount();
  EXPECT_EQ(unlink("lower"), 0);
  EXPECT_EQ(unlink("both"), 0);
  EXPECT_EQ(unlink("upper"), 0);
  EXPECT_EQ(unlink("nothing"), ENOENT);
  EXPECT_EQ(walk("lower").err(), ENOENT);
  EXPECT_EQ(walk("both").err(), ENOENT);
  EXPECT_EQ(list(br(0)), (std::vector<std::string>{".wh..wh.aufs", ".wh..wh.orph", ".wh..wh.plnk",
                                                   ".wh.both", ".wh.lower"}));
  struct stat a, w;
  ::stat((br(0) + "/.wh..wh.aufs").c_str(), &a);
  ::stat((br(0) + "/.wh.lower").c_str(), &w);
  EXPECT_EQ(a.st_ino, w.st_ino) << "whiteouts are hard links to the base";
  EXPECT_EQ(read_file(br(1) + "/lower"), "l");
  EXPECT_EQ(ls(""), std::vector<std::string>{});
  // Re-creating the name removes the whiteout.
  EXPECT_EQ(create("lower", "again"), 0);
  EXPECT_FALSE(exists(br(0) + "/.wh.lower"));
  EXPECT_EQ(cat("lower"), "again");
}

TEST_F(UnionTest, NolwhMakesPlainWhiteouts) {
  make_branches({"rw+nolwh", "ro"});
  write_file(br(1) + "/f", "l");
  mount();
  EXPECT_FALSE(exists(br(0) + "/.wh..wh.aufs"));
  EXPECT_EQ(unlink("f"), 0);
  struct stat st;
  ASSERT_EQ(::lstat((br(0) + "/.wh.f").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
}

TEST_F(UnionTest, RmdirEmptinessWhiteoutAndOpaqueRecreate) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/d");
  write_file(br(1) + "/d/f", "f");
  mount();
  EXPECT_EQ(rmdir("d"), ENOTEMPTY);
  EXPECT_EQ(unlink("d/f"), 0);
  EXPECT_EQ(ls("d"), std::vector<std::string>{});
  EXPECT_EQ(rmdir("d"), 0);
  EXPECT_TRUE(exists(br(0) + "/.wh.d"));
  EXPECT_FALSE(exists(br(0) + "/d")) << "upper copy removed with its whiteouts";
  EXPECT_TRUE(no_temps(br(0)));
  EXPECT_EQ(walk("d").err(), ENOENT);
  EXPECT_EQ(mkdir("d"), 0);
  EXPECT_TRUE(exists(br(0) + "/d/.wh..wh..opq"));
  EXPECT_FALSE(exists(br(0) + "/.wh.d"));
  EXPECT_EQ(ls("d"), std::vector<std::string>{});
  EXPECT_EQ(walk("d/f").err(), ENOENT);
  EXPECT_EQ(read_file(br(1) + "/d/f"), "f");
  EXPECT_TRUE(no_temps(br(0)));
}

TEST_F(UnionTest, DiropqAlwaysMakesEveryMkdirOpaque) {
  make_branches({"rw", "ro"});
  mount("diropq=a");
  EXPECT_EQ(mkdir("n"), 0);
  EXPECT_TRUE(exists(br(0) + "/n/.wh..wh..opq"));
}

TEST_F(UnionTest, RenameFileFromLowerLeavesWhiteout) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/d");
  write_file(br(1) + "/d/f", "data");
  mount();
  auto before = walk("d/f");
  EXPECT_EQ(rename("d/f", "g"), 0);
  EXPECT_EQ(walk("d/f").err(), ENOENT);
  EXPECT_EQ(cat("g"), "data");
  EXPECT_TRUE(exists(br(0) + "/d/.wh.f"));
  EXPECT_EQ(read_file(br(0) + "/g"), "data");
  EXPECT_EQ(read_file(br(1) + "/d/f"), "data");
  EXPECT_EQ(walk("g")->attr.st_ino, before->attr.st_ino);
}

TEST_F(UnionTest, RenameOverWhiteoutAndExisting) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "a");
  write_file(br(1) + "/b", "b");
  write_file(br(0) + "/c", "c");
  mount();
  EXPECT_EQ(unlink("b"), 0);
  EXPECT_EQ(rename("c", "b"), 0);
  EXPECT_FALSE(exists(br(0) + "/.wh.b"));
  EXPECT_FALSE(exists(br(0) + "/.wh.c")) << "c existed only on the rw branch";
  EXPECT_EQ(cat("b"), "c");
  EXPECT_EQ(rename("b", "a"), 0);
  EXPECT_EQ(cat("a"), "c");
  EXPECT_TRUE(exists(br(0) + "/.wh.b"));
  EXPECT_EQ(ls(""), std::vector<std::string>{"a"});
}

TEST_F(UnionTest, RenameFlags) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "A");
  write_file(br(0) + "/b", "B");
  mount();
  EXPECT_EQ(rename("a", "b", RENAME_NOREPLACE), EEXIST);
  EXPECT_EQ(rename("a", "zz", RENAME_EXCHANGE), ENOENT);
  EXPECT_EQ(rename("a", "b", RENAME_EXCHANGE), 0);
  EXPECT_EQ(cat("a"), "B");
  EXPECT_EQ(cat("b"), "A");
  EXPECT_EQ(rename("a", "c", RENAME_NOREPLACE), 0);
  EXPECT_EQ(cat("c"), "B");
  EXPECT_EQ(rename("a", "c", RENAME_NOREPLACE | RENAME_EXCHANGE), EINVAL);
}

TEST_F(UnionTest, RenameDirectoriesExdevRule) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/full");
  write_file(br(1) + "/full/f", "f");
  mkdirs(br(1) + "/empty");
  mount();
  EXPECT_EQ(rename("full", "moved"), EXDEV);
  EXPECT_EQ(rename("empty", "moved"), 0);
  EXPECT_TRUE(exists(br(0) + "/.wh.empty"));
  EXPECT_EQ(mkdir("mine"), 0);
  EXPECT_EQ(create("mine/x", "x"), 0);
  EXPECT_EQ(rename("mine", "mine2"), 0);
  EXPECT_EQ(cat("mine2/x"), "x");
  EXPECT_FALSE(exists(br(0) + "/.wh.mine"));
  // Moving a directory onto a name that still has lower entries below makes
  // it opaque, so nothing merges in.
  EXPECT_EQ(unlink("full/f"), 0);
  EXPECT_EQ(rmdir("full"), 0);
  EXPECT_EQ(rename("mine2", "full"), 0);
  EXPECT_EQ(ls("full"), std::vector<std::string>{"x"});
  EXPECT_TRUE(exists(br(0) + "/full/.wh..wh..opq"));
}

TEST_F(UnionTest, RenameOntoNonEmptyDir) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/t");
  write_file(br(1) + "/t/f", "f");
  mount();
  EXPECT_EQ(mkdir("s"), 0);
  EXPECT_EQ(rename("s", "t"), ENOTEMPTY);
  EXPECT_EQ(create("file"), 0);
  EXPECT_EQ(rename("file", "t"), EISDIR);
  EXPECT_EQ(rename("s", "file"), ENOTDIR);
}

TEST_F(UnionTest, HardLinksShareInodeAndSurviveOnDisk) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "shared");
  ASSERT_EQ(::link((br(1) + "/a").c_str(), (br(1) + "/b").c_str()), 0);
  mount();
  auto a = walk("a");
  auto b = walk("b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->attr.st_ino, b->attr.st_ino);
  auto l = fs->link(a->id, kRootId, "c", Ctx{});
  ASSERT_TRUE(l.ok()) << l.err();
  EXPECT_EQ(l->attr.st_ino, a->attr.st_ino);
  // a and b are one union inode; link() copies that inode up under the name
  // the node carries (the last one looked up) and links it on the rw branch.
  struct stat sx, sc;
  ASSERT_EQ(::stat((br(0) + "/c").c_str(), &sc), 0);
  bool up_a = ::stat((br(0) + "/a").c_str(), &sx) == 0;
  if (!up_a) {
    ASSERT_EQ(::stat((br(0) + "/b").c_str(), &sx), 0);
  }
  EXPECT_EQ(sx.st_ino, sc.st_ino);
  // The copy-up of a hard-linked file is recorded in the plnk store.
  struct stat sp;
  ASSERT_EQ(::stat((br(0) + "/.wh..wh.plnk/" + std::to_string(a->attr.st_ino)).c_str(), &sp), 0);
  EXPECT_EQ(sp.st_ino, sc.st_ino);
  EXPECT_EQ(sc.st_nlink, 3u);
  // The other lower name still shows the same inode and, while the node is
  // cached, the copied-up data (in-memory pseudo-link).
  append("c", "+");
  EXPECT_EQ(cat("a"), "shared+");
  EXPECT_EQ(cat("b"), "shared+");
}

TEST_F(UnionTest, InodeNumbersAndReaddirAgree) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "f");
  mkdirs(br(1) + "/d");
  mount();
  auto dh = fs->opendir(kRootId);
  ASSERT_TRUE(dh.ok());
  for (auto& e : dh.value()->entries) {
    auto w = walk(e.name);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(fs->entry_ino(e), w->attr.st_ino) << e.name;
  }
  auto d = walk("d");
  EXPECT_EQ(create("d/new"), 0);  // copies d up
  EXPECT_TRUE(exists(br(0) + "/d"));
  EXPECT_EQ(walk("d")->attr.st_ino, d->attr.st_ino);
  EXPECT_EQ(walk("")->attr.st_ino, 2u);
}

TEST_F(UnionTest, CrashLeftoverNameAndWhiteoutRealEntryWins) {
  make_branches({"rw", "ro"});
  write_file(br(0) + "/f", "upper");
  write_file(br(0) + "/.wh.f", "", 0444);
  write_file(br(1) + "/f", "lower");
  mount();
  EXPECT_EQ(cat("f"), "upper");
  EXPECT_EQ(ls(""), std::vector<std::string>{"f"});
}

TEST_F(UnionTest, InvalidWhiteoutIsEio) {
  make_branches({"rw", "ro+wh", "ro"});
  mkdirs(br(1) + "/.wh.bad");
  write_file(br(2) + "/bad", "x");
  mount();
  EXPECT_EQ(walk("bad").err(), EIO);
}

TEST_F(UnionTest, SymlinksInBranchesAreNeverFollowed) {
  make_branches({"rw", "ro"});
  TempDir outside;
  write_file(outside / "secret", "s");
  ASSERT_EQ(::symlink(outside.path().c_str(), (br(1) + "/d").c_str()), 0);
  ASSERT_EQ(::symlink("../../..", (br(1) + "/up").c_str()), 0);
  mount();
  auto d = walk("d");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(S_ISLNK(d->attr.st_mode));
  EXPECT_EQ(walk("d/secret").err(), ENOTDIR);
  EXPECT_EQ(unlink("d"), 0);
  EXPECT_TRUE(exists(outside / "secret"));
  EXPECT_TRUE(exists(br(1) + "/d"));
  // The beneath-resolver refuses to leave a branch.
  auto r = sys::open_beneath(fs->branches()->br[1]->root.get(), "up/etc/passwd", O_RDONLY);
  EXPECT_FALSE(r.ok());
  auto r2 = sys::open_beneath(fs->branches()->br[1]->root.get(), "../b0", O_PATH);
  EXPECT_EQ(r2.err(), EXDEV);
}

TEST_F(UnionTest, CreatedAsCallingUser) {
  if (!daemon_is_root()) GTEST_SKIP() << "needs root to act as another user";
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/pub");
  ::chmod((br(1) + "/pub").c_str(), 01777);
  mount();
  Ctx u;
  u.uid = 4321;
  u.gid = 4321;
  u.have_groups = true;
  EXPECT_EQ(create("pub/mine", "m", u), 0);
  struct stat st;
  ASSERT_EQ(::stat((br(0) + "/pub/mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 4321u);
  EXPECT_EQ(st.st_gid, 4321u);
  ASSERT_EQ(::stat((br(0) + "/pub").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u) << "copied-up parent keeps its owner";
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  // The caller's own permissions apply on the branch too.
  EXPECT_EQ(create("denied", "", u), EACCES);
}

TEST_F(UnionTest, ForgetReleasesNodes) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/a/b/c");
  write_file(br(1) + "/a/b/c/f", "x");
  mount();
  size_t base = fs->node_count();
  std::vector<NodeId> ids;
  for (const char* p : {"a", "a/b", "a/b/c", "a/b/c/f"}) ids.push_back(walk(p)->id);
  // walk() looked each prefix up again: a 4, b 3, c 2, f 1 references.
  EXPECT_EQ(fs->node_count(), base + 4);
  fs->forget(ids[0], 4);
  EXPECT_EQ(fs->node_count(), base + 4) << "children keep the parent alive";
  fs->forget(ids[3], 1);
  fs->forget(ids[2], 2);
  fs->forget(ids[1], 3);
  EXPECT_EQ(fs->node_count(), base);
}

TEST_F(UnionTest, ReadOnlyMountRefusesWrites) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "f");
  mount("ro");
  EXPECT_EQ(create("n"), EROFS);
  EXPECT_EQ(unlink("f"), EROFS);
  EXPECT_EQ(fs->open(walk("f")->id, O_RDWR, Ctx{}).err(), EROFS);
  EXPECT_FALSE(exists(br(0) + "/.wh..wh.aufs"));
}

TEST_F(UnionTest, HardLinksStayOneInodeAcrossRemount) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "v1");
  ASSERT_EQ(::link((br(1) + "/a").c_str(), (br(1) + "/b").c_str()), 0);
  mount();
  uint64_t ino = walk("a")->attr.st_ino;
  append("a", "+v2");
  EXPECT_EQ(cat("b"), "v1+v2");
  fs.reset();  // unmount
  mount();
  // b is looked up first after the remount: it must still see the copy.
  auto b = walk("b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->attr.st_ino, ino);
  EXPECT_EQ(cat("b"), "v1+v2");
  EXPECT_EQ(walk("a")->attr.st_ino, ino);
  EXPECT_EQ(cat("a"), "v1+v2");
  append("b", "+v3");
  EXPECT_EQ(cat("a"), "v1+v2+v3");
  EXPECT_EQ(read_file(br(1) + "/a"), "v1");
  // rename of b needs b's own name on the rw branch: linked from plnk.
  EXPECT_EQ(rename("b", "c"), 0);
  EXPECT_EQ(cat("c"), "v1+v2+v3");
  struct stat sa, sc;
  ASSERT_EQ(::stat((br(0) + "/a").c_str(), &sa), 0);
  ASSERT_EQ(::stat((br(0) + "/c").c_str(), &sc), 0);
  EXPECT_EQ(sa.st_ino, sc.st_ino);
}

TEST_F(UnionTest, NoplinkBreaksHardLinksLikeAufs) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "v1");
  ASSERT_EQ(::link((br(1) + "/a").c_str(), (br(1) + "/b").c_str()), 0);
  mount("noplink");
  append("a", "+v2");
  fs.reset();
  mount("noplink");
  EXPECT_EQ(cat("b"), "v1");
  EXPECT_EQ(cat("a"), "v1+v2");
  EXPECT_NE(walk("a")->attr.st_ino, walk("b")->attr.st_ino);
  EXPECT_FALSE(exists(br(0) + "/.wh..wh.plnk/" + std::to_string(walk("b")->attr.st_ino)));
}

TEST_F(UnionTest, InodeNumbersSurviveRemountAfterCopyUp) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/d/e");
  write_file(br(1) + "/d/e/f", "x");
  mount();
  uint64_t f = walk("d/e/f")->attr.st_ino;
  uint64_t d = walk("d")->attr.st_ino;
  uint64_t e = walk("d/e")->attr.st_ino;
  append("d/e/f", "y");  // copies d, d/e and d/e/f up
  EXPECT_EQ(rename("d/e/f", "d/e/g"), 0);
  fs.reset();
  mount();
  EXPECT_EQ(walk("d/e/g")->attr.st_ino, f);
  EXPECT_EQ(walk("d")->attr.st_ino, d);
  EXPECT_EQ(walk("d/e")->attr.st_ino, e);
  auto dh = fs->opendir(walk("d/e")->id);
  ASSERT_TRUE(dh.ok());
  ASSERT_EQ(dh.value()->entries.size(), 1u);
  EXPECT_EQ(fs->entry_ino(dh.value()->entries[0]), f);
  // The bookkeeping attribute is invisible through the union.
  auto l = fs->listxattr(walk("d/e/g")->id, 4096);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(std::string(l->begin(), l->end()).find("aufs-fuse"), std::string::npos);
  EXPECT_EQ(fs->getxattr(walk("d/e/g")->id, fs->ino_xattr().c_str(), 64).err(), ENODATA);
  EXPECT_EQ(fs->setxattr(walk("d/e/g")->id, fs->ino_xattr().c_str(), "x", 1, 0).err(), EPERM);
}

TEST_F(UnionTest, SeveralWritableBranchesTdp) {
  make_branches({"rw", "rw", "ro"});
  mkdirs(br(1) + "/only1");
  write_file(br(1) + "/only1/f", "in place");
  mkdirs(br(2) + "/low");
  write_file(br(2) + "/low/g", "g");
  mount();
  // tdp: the parent's top branch (rw 1) takes the new entry.
  EXPECT_EQ(create("only1/new", "n"), 0);
  EXPECT_TRUE(exists(br(1) + "/only1/new"));
  EXPECT_FALSE(exists(br(0) + "/only1"));
  // A file on a lower writable branch is modified in place.
  append("only1/f", "+");
  EXPECT_EQ(read_file(br(1) + "/only1/f"), "in place+");
  EXPECT_FALSE(exists(br(0) + "/only1/f"));
  // Removing it needs no whiteout (nothing below).
  EXPECT_EQ(unlink("only1/f"), 0);
  EXPECT_FALSE(exists(br(1) + "/only1/.wh.f"));
  // Copy-up from the ro branch: tdp takes the nearest writable branch
  // above the parent's top (AUFS scans upward from there).
  append("low/g", "+");
  EXPECT_EQ(read_file(br(1) + "/low/g"), "g+");
  EXPECT_FALSE(exists(br(0) + "/low"));
}

TEST_F(UnionTest, CreateRoundRobin) {
  make_branches({"rw", "rw", "ro"});
  mount("create=rr");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(create("f" + std::to_string(i)), 0);
  EXPECT_TRUE(exists(br(0) + "/f0"));
  EXPECT_TRUE(exists(br(1) + "/f1"));
  EXPECT_TRUE(exists(br(0) + "/f2"));
  EXPECT_TRUE(exists(br(1) + "/f3"));
  EXPECT_EQ(ls(""), (std::vector<std::string>{"f0", "f1", "f2", "f3"}));
}

TEST_F(UnionTest, CreateRoundRobinRespectsWhiteouts) {
  make_branches({"rw", "rw", "ro"});
  write_file(br(2) + "/x", "lower");
  mount("create=rr");
  EXPECT_EQ(create("a"), 0);        // rr -> branch 0; next would be 1
  EXPECT_EQ(unlink("x"), 0);        // whiteout on branch 0
  EXPECT_TRUE(exists(br(0) + "/.wh.x"));
  EXPECT_EQ(create("x", "new"), 0);  // must land on 0, above the whiteout
  EXPECT_TRUE(exists(br(0) + "/x"));
  EXPECT_EQ(cat("x"), "new");
}

TEST_F(UnionTest, CopyUpBottomUp) {
  make_branches({"rw", "rw", "ro"});
  mkdirs(br(2) + "/d");
  write_file(br(2) + "/d/f", "f");
  mount("cpup=bu");
  append("d/f", "+");
  EXPECT_EQ(read_file(br(1) + "/d/f"), "f+") << "bu: nearest writable above the source";
  EXPECT_FALSE(exists(br(0) + "/d/f"));
}

TEST_F(UnionTest, CreateMostFreeSpace) {
  if (!daemon_is_root()) GTEST_SKIP() << "needs root to mount tmpfs branches";
  make_branches({"rw", "rw", "ro"});
  ASSERT_EQ(::system(("mount -t tmpfs -o size=2m t " + br(0) + " && mount -t tmpfs -o size=8m t " + br(1)).c_str()), 0);
  struct Umount {
    std::string a, b;
    ~Umount() { (void)!::system(("umount " + a + " " + b).c_str()); }
  } um{br(0), br(1)};
  mount("create=mfs:0");
  EXPECT_EQ(create("big"), 0);
  EXPECT_TRUE(exists(br(1) + "/big")) << "branch 1 has the most free space";
  fs.reset();
  mount("create=tdmfs:1048576:0");
  EXPECT_EQ(create("td"), 0);
  EXPECT_TRUE(exists(br(0) + "/td")) << "top-most branch with more than 1 MiB free";
  fs.reset();
  mount("create=tdmfs:4194304:0");
  EXPECT_EQ(create("td2"), 0);
  EXPECT_TRUE(exists(br(1) + "/td2")) << "branch 0 has less than 4 MiB free";
  fs.reset();
}

namespace {
std::string branch_list(Union& u) {
  std::string s;
  auto bs = u.branches();
  for (size_t i = 0; i < bs->size(); ++i)
    s += (i ? ":" : "") + std::to_string((*bs)[i].id) + "=" + format_perm((*bs)[i].spec);
  return s;
}
Status change(Union& u, const std::string& spec, std::string* msg = nullptr) {
  std::vector<BranchOp> ops;
  EXPECT_EQ(parse_branch_ops(spec, false, ops), "");
  return u.change_branches(ops, msg);
}
}  // namespace

TEST_F(UnionTest, LiveBranchChanges) {
  make_branches({"rw", "ro"});
  mkdirs(tmp / "extra");
  write_file(tmp / "extra/e", "extra");
  write_file(br(1) + "/f", "lower");
  mount();
  EXPECT_EQ(walk("e").err(), ENOENT);
  ASSERT_TRUE(change(*fs, "append:" + (tmp / "extra") + "=ro+wh").ok());
  EXPECT_EQ(cat("e"), "extra");
  EXPECT_EQ(branch_list(*fs), "0=rw:1=ro:2=ro+wh");
  // prepend: a new top branch shadows; ids stay with their branches.
  mkdirs(tmp / "top");
  write_file(tmp / "top/f", "top");
  ASSERT_TRUE(change(*fs, "prepend:" + (tmp / "top") + "=ro").ok());
  EXPECT_EQ(branch_list(*fs), "3=ro:0=rw:1=ro:2=ro+wh");
  EXPECT_EQ(cat("f"), "top");
  // del with an open file: EBUSY, nothing changed.
  auto fh = fs->open(walk("e")->id, O_RDONLY, Ctx{});
  ASSERT_TRUE(fh.ok());
  std::string msg;
  EXPECT_EQ(change(*fs, "del:" + (tmp / "extra"), &msg).err(), EBUSY);
  EXPECT_NE(msg.find("open files"), std::string::npos);
  fs->release(std::move(fh.value()));
  ASSERT_TRUE(change(*fs, "del:" + (tmp / "extra")).ok());
  EXPECT_EQ(walk("e").err(), ENOENT);
  // Bad index, relative path.
  EXPECT_EQ(change(*fs, "add:9:" + (tmp / "extra")).err(), EDOM);
  EXPECT_EQ(change(*fs, "append:relative/dir").err(), EINVAL);
  // A no-op change (unknown del path) changes nothing, not even counters.
  uint64_t n = fs->counters().branch_changes.load();
  EXPECT_TRUE(change(*fs, "del:/nonexistent/branch").ok());
  EXPECT_EQ(fs->counters().branch_changes.load(), n);
}

TEST_F(UnionTest, RefusedBranchChangeLeavesDiskUntouched) {
  make_branches({"rw", "ro"});
  mkdirs(tmp / "t");
  mount();
  EXPECT_TRUE(exists(br(0) + "/.wh..wh.aufs"));
  // mod rw->ro would remove the base, prepend rw would create metadata, but
  // the last op fails: all or nothing.
  auto st = change(*fs, "mod:" + br(0) + "=ro,prepend:" + (tmp / "t") + "=rw,add:99:" + br(1));
  EXPECT_EQ(st.err(), EDOM);
  EXPECT_TRUE(exists(br(0) + "/.wh..wh.aufs"));
  EXPECT_FALSE(exists(tmp / "t/.wh..wh.aufs"));
  EXPECT_EQ(branch_list(*fs), "0=rw:1=ro");
}

TEST_F(UnionTest, ModRwRoAndReadOnlyRemount) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "f");
  mount();
  auto w = fs->open(walk("f")->id, O_WRONLY, Ctx{});
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(change(*fs, "mod:" + br(0) + "=ro").err(), EBUSY);
  fs->release(std::move(w.value()));
  ASSERT_TRUE(change(*fs, "mod:" + br(0) + "=ro").ok());
  EXPECT_FALSE(exists(br(0) + "/.wh..wh.aufs"));
  EXPECT_EQ(create("n"), EROFS);
  ASSERT_TRUE(change(*fs, "mod:" + br(0) + "=rw").ok());
  EXPECT_TRUE(exists(br(0) + "/.wh..wh.aufs"));
  EXPECT_EQ(create("n"), 0);
  ASSERT_TRUE(change(*fs, "ro").ok());
  EXPECT_EQ(create("m"), EROFS);
  ASSERT_TRUE(change(*fs, "rw").ok());
  EXPECT_EQ(create("m"), 0);
}

TEST_F(UnionTest, CopyUpOnOpenAndMoveUp) {
  make_branches({"rw", "rw+moo", "ro+coo_reg"});
  write_file(br(2) + "/c", "c");
  write_file(br(1) + "/m", "m");
  mount();
  EXPECT_EQ(cat("c"), "c");  // a read-only open is enough
  EXPECT_EQ(read_file(br(1) + "/c"), "c") << "coo: nearest writable branch above";
  EXPECT_EQ(read_file(br(2) + "/c"), "c");
  EXPECT_EQ(cat("m"), "m");
  EXPECT_EQ(read_file(br(0) + "/m"), "m") << "moo: moved to the branch above";
  EXPECT_FALSE(exists(br(1) + "/m")) << "moo: the source goes";
}

TEST_F(UnionTest, SecurityCapabilityNotCopiedUnlessAsked) {
  if (!daemon_is_root()) GTEST_SKIP() << "needs root for security.* xattrs";
  make_branches({"rw", "ro"});
  write_file(br(1) + "/bin", "x", 0755);
  // A valid VFS_CAP_REVISION_2 blob: cap_net_raw (bit 13) permitted+effective.
  const unsigned char cap[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0,
                                 0, 0, 0, 0, 0, 0, 0, 0};
  if (::setxattr((br(1) + "/bin").c_str(), "security.capability", cap, sizeof cap, 0) != 0)
    GTEST_SKIP() << "branch filesystem refuses security.capability";
  // Copy up without writing (a write drops file capabilities on any fs).
  auto touch = [&] {
    SetAttrIn in;
    in.valid = SetAttrIn::kMtimeNow;
    ASSERT_TRUE(fs->setattr(walk("bin")->id, in, nullptr, Ctx{}).ok());
  };
  mount();
  touch();
  EXPECT_TRUE(exists(br(0) + "/bin"));
  EXPECT_LT(::getxattr((br(0) + "/bin").c_str(), "security.capability", nullptr, 0), 0);
  fs.reset();
  remove_tree(br(0));
  mkdirs(br(0));
  mount("cpup_caps");
  touch();
  EXPECT_EQ(::getxattr((br(0) + "/bin").c_str(), "security.capability", nullptr, 0), 20);
}

TEST_F(UnionTest, ShwhListsWhiteouts) {
  make_branches({"ro+wh", "ro"});
  write_file(br(0) + "/.wh.gone", "", 0444);
  write_file(br(1) + "/gone", "g");
  write_file(br(1) + "/kept", "k");
  mount("ro,shwh");
  EXPECT_EQ(ls(""), (std::vector<std::string>{".wh.gone", "kept"}));
  EXPECT_TRUE(walk(".wh.gone").ok()) << "shwh: whiteouts can be looked at";
  EXPECT_EQ(walk("gone").err(), ENOENT) << "and they still hide";
}

TEST_F(UnionTest, DirwhRemovesLargeDirectoriesInTheBackground) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/big");
  for (int i = 0; i < 50; ++i) write_file(br(1) + "/big/f" + std::to_string(i), "x");
  mount("dirwh=5");
  for (int i = 0; i < 50; ++i) ASSERT_EQ(unlink("big/f" + std::to_string(i)), 0);
  EXPECT_EQ(list(br(0) + "/big").size(), 50u) << "50 whiteouts";
  EXPECT_EQ(rmdir("big"), 0);
  EXPECT_EQ(walk("big").err(), ENOENT);
  for (int i = 0; i < 200 && fs->reap_pending() > 0; ++i) ::usleep(10000);
  ::usleep(20000);
  EXPECT_EQ(list(br(0)), (std::vector<std::string>{".wh..wh.aufs", ".wh..wh.orph", ".wh..wh.plnk", ".wh.big"}));
}

TEST_F(UnionTest, ListingCacheSeesChangesFromBothSides) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "a");
  mount("rdcache=60");
  EXPECT_EQ(ls(""), std::vector<std::string>{"a"});
  EXPECT_EQ(create("b"), 0);
  EXPECT_EQ(ls(""), (std::vector<std::string>{"a", "b"})) << "change through the union";
  ::usleep(20000);  // a new mtime tick for the direct edit
  write_file(br(1) + "/c", "c");
  EXPECT_EQ(ls(""), (std::vector<std::string>{"a", "b", "c"})) << "direct branch edit";
}

// Kept listings are bounded in entries (65,536; 1,000 here), not only in
// time: the oldest go first, and a listing built again after eviction is
// complete.
TEST_F(UnionTest, ListingCacheIsBoundedInEntries) {
  make_branches({"rw", "ro"});
  for (int d = 0; d < 4; ++d) {
    std::string dir = br(1) + "/d" + std::to_string(d);
    mkdirs(dir);
    for (int i = 0; i < 300; ++i) {
      int fd = ::open((dir + "/f" + std::to_string(i)).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      ASSERT_GE(fd, 0);
      ::close(fd);
    }
  }
  mount("rdcache=600");
  fs->set_listing_budget(1000);
  auto cached = [&] {
    std::string j = fs->info_json();
    auto at = j.find("\"listing_cache_entries\":");
    EXPECT_NE(at, std::string::npos) << j;
    return at == std::string::npos ? -1L : std::stol(j.substr(at + 24));
  };
  EXPECT_EQ(cached(), 0);
  EXPECT_EQ(ls("d0").size(), 300u);
  EXPECT_EQ(cached(), 300);
  for (int d = 1; d < 4; ++d) EXPECT_EQ(ls("d" + std::to_string(d)).size(), 300u);
  EXPECT_EQ(cached(), 900) << "d0 dropped, d1..d3 kept";
  EXPECT_EQ(ls("d0").size(), 300u) << "an evicted listing is built again";
  EXPECT_EQ(cached(), 900) << "d1 dropped";
  // A listing over the whole budget is still kept, alone.
  std::string big = br(1) + "/big";
  mkdirs(big);
  for (int i = 0; i < 1200; ++i) write_file(big + "/f" + std::to_string(i), "");
  EXPECT_EQ(ls("big").size(), 1200u);
  EXPECT_EQ(cached(), 1200);
  // A directory changed and listed again replaces its listing: the old one
  // is freed (and the big one goes, over budget).
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(create("d3/new" + std::to_string(i)), 0);
    ASSERT_EQ(ls("d3").size(), 301u + static_cast<size_t>(i));
    ASSERT_EQ(cached(), 301 + i);
  }
}

TEST_F(UnionTest, NoDirPerm1ChecksEveryBranchCopy) {
  make_branches({"rw", "ro"});
  mkdirs(br(0) + "/d");
  ::chmod((br(0) + "/d").c_str(), 0755);
  mkdirs(br(1) + "/d");
  write_file(br(1) + "/d/f", "f");
  ::chmod((br(1) + "/d").c_str(), 0700);  // root-only lower copy
  mount();
  Ctx user;
  user.uid = 4321;
  user.gid = 4321;
  user.have_groups = true;
  NodeId d = dir("d");
  EXPECT_EQ(fs->lookup(d, "f", &user).err(), EACCES);
  EXPECT_EQ(fs->opendir(d, &user).err(), EACCES);
  EXPECT_TRUE(fs->lookup(d, "f", nullptr).ok()) << "root / no caller: allowed";
  fs.reset();
  mount("dirperm1");
  d = dir("d");
  EXPECT_TRUE(fs->lookup(d, "f", &user).ok()) << "dirperm1: top copy only";
  EXPECT_TRUE(fs->opendir(d, &user).ok());
}

TEST_F(UnionTest, OciWhiteoutRuleIsAnOption) {
  // An OCI layer may hold X and .wh.X together: X is the layer's own entry
  // (added after deleting a lower X). AUFS hides it; the OCI rule keeps it.
  make_branches({"rw", "ro+wh", "ro"});
  write_file(br(1) + "/x", "layer1");
  write_file(br(1) + "/.wh.x", "", 0444);
  write_file(br(2) + "/x", "base");
  write_file(br(2) + "/y", "base-y");
  write_file(br(1) + "/.wh.y", "", 0444);
  mount();
  EXPECT_EQ(walk("x").err(), ENOENT) << "AUFS: a whiteout hides its own branch too";
  EXPECT_EQ(ls(""), std::vector<std::string>{});
  fs.reset();
  mount("ociwh");
  EXPECT_EQ(cat("x"), "layer1");
  EXPECT_EQ(walk("y").err(), ENOENT) << "lower layers stay hidden";
  EXPECT_EQ(ls(""), std::vector<std::string>{"x"});
}

TEST_F(UnionTest, CachedFileFollowsRenamedDirectory) {
  make_branches({"rw", "ro"});
  mount();
  EXPECT_EQ(mkdir("a"), 0);
  EXPECT_EQ(create("a/f", "1"), 0);
  NodeId f = walk("a/f")->id;  // the kernel keeps this node across the rename
  EXPECT_EQ(rename("a", "b"), 0);
  auto fh = fs->open(f, O_RDONLY, Ctx{});
  ASSERT_TRUE(fh.ok()) << fh.err();
  char buf[4] = {};
  EXPECT_EQ(::pread(fs->io_fd(*fh.value()).value()->get(), buf, sizeof buf, 0), 1);
  fs->release(std::move(fh.value()));
  EXPECT_TRUE(fs->getattr(f).ok());
}

namespace {

// A lookup that resolves its name now but updates the node only when
// released, as a lookup slowed down by the scheduler would (test hooks).
class PausedLookupTest : public UnionTest {
 protected:
  void TearDown() override {
    if (t_.joinable()) release();
    UnionTest::TearDown();
  }
  // release_at_copy_up: the paused lookup finishes as soon as a change has
  // made sure of its copy-up (before it locates the node), and the change
  // waits for it.
  void pause_lookup(NodeId parent, const std::string& name, bool release_at_copy_up = false) {
    fs->set_test_hook([this, name, release_at_copy_up](std::string_view point, std::string_view n) {
      std::unique_lock<std::mutex> l(mu_);
      if (point == "make_entry" && n == name && stage_ == 0) {
        stage_ = 1;
        cv_.notify_all();
        cv_.wait(l, [this] { return stage_ >= 2; });
      } else if (point == "copied_up" && release_at_copy_up && stage_ == 1) {
        stage_ = 2;
        cv_.notify_all();
        cv_.wait(l, [this] { return stage_ == 3; });
      }
    });
    t_ = std::thread([this, parent, name] {
      auto r = fs->lookup(parent, name);
      paused_err_ = r.ok() ? 0 : r.err();
      paused_id_ = r.ok() ? r->id : 0;
      std::lock_guard<std::mutex> l(mu_);
      stage_ = 3;
      cv_.notify_all();
    });
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return stage_ >= 1; });
  }
  void release() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stage_ < 2) stage_ = 2;
      cv_.notify_all();
    }
    t_.join();
    fs->set_test_hook(nullptr);
  }
  std::mutex mu_;
  std::condition_variable cv_;
  int stage_ = 0;
  int paused_err_ = 0;  // the paused lookup's result
  NodeId paused_id_ = 0;
  std::thread t_;
};

// Found by Concurrency.WritesDuringLookupsNeverReachReadOnlyBranch: a lookup
// that resolved the name before a copy-up of its node finished set the
// node's layers back to the lower file afterwards (make_entry trusted the
// stale resolution): reads saw the old data, and an open for writing that
// located the node right then wrote into the read-only branch.
TEST_F(PausedLookupTest, StaleLookupKeepsCopiedUpFile) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "lower");
  mount();
  NodeId f = walk("f")->id;
  pause_lookup(kRootId, "f");  // resolved: on the ro branch
  write_node(f, "X");          // copy-up
  release();                   // the lookup ends after the copy-up
  EXPECT_EQ(read_node(f), "Xower");
  EXPECT_EQ(fs->getattr(f)->st_size, 5);
  write_node(f, "XY");
  EXPECT_EQ(read_file(br(1) + "/f"), "lower");
  EXPECT_EQ(read_file(br(0) + "/f"), "XYwer");
}

TEST_F(PausedLookupTest, OpenForWritingNeverUsesReadOnlyBranch) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "lower");
  mount();
  NodeId f = walk("f")->id;
  pause_lookup(kRootId, "f", true);  // ends between the open's copy-up and its fd
  write_node(f, "X");
  release();
  EXPECT_EQ(read_file(br(1) + "/f"), "lower") << "written through to the read-only branch";
  EXPECT_EQ(read_file(br(0) + "/f"), "Xower");
  EXPECT_EQ(read_node(f), "Xower");
}

TEST_F(PausedLookupTest, ChmodNeverUsesReadOnlyBranch) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "lower", 0644);
  mount();
  NodeId f = walk("f")->id;
  pause_lookup(kRootId, "f", true);
  SetAttrIn in;
  in.valid = SetAttrIn::kMode;
  in.mode = 0600;
  auto r = fs->setattr(f, in, nullptr, Ctx{});
  release();
  ASSERT_TRUE(r.ok()) << r.err();
  EXPECT_EQ(r->st_mode & 07777, 0600u);
  struct stat st;
  ASSERT_EQ(::lstat((br(1) + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u) << "chmod reached the read-only branch";
}

// The same for a directory: the stale lookup dropped the copied-up layer,
// so the directory's own new entries vanished from its listing.
TEST_F(PausedLookupTest, StaleLookupKeepsCopiedUpDirectoryLayer) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/d");
  write_file(br(1) + "/d/old", "x");
  mount();
  NodeId d = walk("d")->id;
  pause_lookup(kRootId, "d");
  EXPECT_EQ(create("d/new", "n"), 0);  // copies d up
  release();
  auto dh = fs->opendir(d);
  ASSERT_TRUE(dh.ok()) << dh.err();
  std::vector<std::string> names;
  for (auto& e : dh.value()->entries) names.push_back(e.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"new", "old"}));
  SetAttrIn in;
  in.valid = SetAttrIn::kMode;
  in.mode = 0700;
  ASSERT_TRUE(fs->setattr(d, in, nullptr, Ctx{}).ok());
  struct stat st;
  ASSERT_EQ(::lstat((br(1) + "/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u) << "chmod reached the read-only branch";
}

// Found by Concurrency.OverlappingNamesKeepInvariants (read ELOOP, write
// and truncate EINVAL): requests by node (open, setattr, readlink, copy-up)
// used the node's remembered name even after the name was removed and
// taken by an object of another type. They must reach the node's own
// removed object (as on a local filesystem) and never the new one.
TEST_F(UnionTest, RemovedNodeNeverReachesTheNewObjectOfItsName) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/low", "lower");
  mount();
  ASSERT_EQ(create("f", "data"), 0);
  ASSERT_EQ(create("g", "data"), 0);
  NodeId f = walk("f")->id, g = walk("g")->id, low = walk("low")->id;
  ASSERT_EQ(unlink("f"), 0);
  ASSERT_TRUE(fs->symlink("target", kRootId, "f", Ctx{}).ok());
  ASSERT_EQ(unlink("g"), 0);
  ASSERT_EQ(mkdir("g"), 0);
  ASSERT_EQ(unlink("low"), 0);
  ASSERT_TRUE(fs->mkdir(kRootId, "low", 0700, Ctx{}).ok());
  for (auto [id, was] : {std::pair{f, "data"}, std::pair{g, "data"}, std::pair{low, "lower"}}) {
    for (int flags : {O_RDONLY, O_RDWR}) {
      auto fh = fs->open(id, flags, Ctx{});
      ASSERT_TRUE(fh.ok()) << "node " << id << ": " << fh.err();
      auto st = sys::fstat_fd(fs->io_fd(*fh.value()).value()->get());
      EXPECT_TRUE(st.ok() && S_ISREG(st->st_mode)) << "node " << id << " opened the new object";
      fs->release(std::move(fh.value()));
    }
    EXPECT_EQ(read_node(id), was);
    SetAttrIn in;
    in.valid = SetAttrIn::kMode;
    in.mode = 0600;
    auto r = fs->setattr(id, in, nullptr, Ctx{});
    ASSERT_TRUE(r.ok()) << r.err();
    EXPECT_TRUE(S_ISREG(r->st_mode));
    EXPECT_EQ(r->st_mode & 07777, 0600u);
  }
  struct stat st;
  ASSERT_EQ(::lstat((br(0) + "/g").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u) << "chmod reached the new directory";
  ASSERT_EQ(::lstat((br(0) + "/low").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(fs->readlink(walk("f")->id).value(), "target");
  EXPECT_EQ(read_file(br(1) + "/low"), "lower");
  ASSERT_EQ(::lstat((br(1) + "/low").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u) << "the lower branch changed";
  EXPECT_TRUE(list(br(0) + "/" + std::string(wh::kOrph)).empty());
}

// A file removed while the kernel still knows its node stays reachable by
// node (an open racing the unlink, /proc/PID/fd, fchmod) until the node is
// forgotten; a change to a removed lower file goes to an unnamed copy on the
// rw branch, never to the lower branch, and brings no name back.
TEST_F(UnionTest, RemovedFileStaysReachableByNodeUntilForgotten) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/low", "lower");
  write_file(br(1) + "/victim", "old");
  mount();
  ASSERT_EQ(create("up", "upper"), 0);
  ASSERT_EQ(create("src", "new"), 0);
  const long before = Orphan::live.load();
  NodeId up = walk("up")->id, low = walk("low")->id, victim = walk("victim")->id;
  auto reader = fs->open(low, O_RDONLY, Ctx{});
  ASSERT_TRUE(reader.ok());
  ASSERT_EQ(unlink("up"), 0);
  ASSERT_EQ(unlink("low"), 0);
  ASSERT_EQ(rename("src", "victim"), 0);  // replaces the lower file
  EXPECT_EQ(Orphan::live.load(), before + 3);
  EXPECT_EQ(read_node(up), "upper");
  EXPECT_EQ(read_node(low), "lower");
  EXPECT_EQ(read_node(victim), "old");
  EXPECT_EQ(cat("victim"), "new");
  write_node(low, "LOW");
  EXPECT_EQ(read_node(low), "LOWer");
  std::string buf(16, '\0');
  ssize_t n = ::pread(fs->io_fd(*reader.value()).value()->get(), buf.data(), buf.size(), 0);
  EXPECT_EQ(buf.substr(0, n > 0 ? static_cast<size_t>(n) : 0), "LOWer") << "the reader was not moved to the copy";
  fs->release(std::move(reader.value()));
  auto st = fs->getattr(low);
  ASSERT_TRUE(st.ok()) << st.err();
  EXPECT_EQ(st->st_size, 5);
  EXPECT_EQ(read_file(br(1) + "/low"), "lower");
  EXPECT_EQ(read_file(br(1) + "/victim"), "old");
  EXPECT_FALSE(exists(br(0) + "/low"));
  EXPECT_FALSE(exists(br(0) + "/up"));
  EXPECT_EQ(walk("low").err(), ENOENT);
  EXPECT_TRUE(list(br(0) + "/" + std::string(wh::kOrph)).empty());
  SetAttrIn in;
  in.valid = SetAttrIn::kSize;
  in.size = 2;
  auto r = fs->setattr(victim, in, nullptr, Ctx{});
  ASSERT_TRUE(r.ok()) << r.err();
  EXPECT_EQ(r->st_size, 2);
  EXPECT_EQ(read_node(victim), "ol");
  EXPECT_EQ(read_file(br(1) + "/victim"), "old");
  fs->forget(up, 2);  // create and walk
  for (NodeId id : {low, victim}) fs->forget(id, 1);
  EXPECT_EQ(Orphan::live.load(), before) << "forget must drop what the node held";
}

// Found in review: removing one name of a hard-linked file kept an orphan
// descriptor for a node that still had a name (until the kernel forgot it,
// using up the orphan budget), and served it where its name should be used.
TEST_F(UnionTest, RemovingOneOfTwoNamesKeepsNoOrphan) {
  make_branches({"rw", "ro"});
  mount();
  ASSERT_EQ(create("a", "data"), 0);
  NodeId a = walk("a")->id;
  ASSERT_TRUE(fs->link(a, kRootId, "b", Ctx{}).ok());
  const long before = Orphan::live.load();
  ASSERT_EQ(unlink("a"), 0);
  EXPECT_EQ(Orphan::live.load(), before) << "an orphan for a node that still has a name";
  EXPECT_EQ(read_node(a), "data");
  write_node(a, "DATA");
  EXPECT_EQ(cat("b"), "DATA");
  ASSERT_EQ(unlink("b"), 0);
  EXPECT_EQ(Orphan::live.load(), before + 1) << "the last name is gone: the node keeps its file";
  EXPECT_EQ(read_node(a), "DATA");
}

// Found by Concurrency.OverlappingNamesKeepInvariants: a lookup that
// resolved a name before the node was renamed moved the node back to the
// old name afterwards (its parent and name), so requests by node went to
// the wrong path.
TEST_F(PausedLookupTest, StaleLookupDoesNotUndoRename) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "A");
  mount();
  NodeId a = walk("a")->id;
  pause_lookup(kRootId, "a");
  ASSERT_EQ(rename("a", "b"), 0);
  release();
  EXPECT_NE(paused_err_, 0) << "the stale lookup succeeded";
  EXPECT_EQ(read_node(a), "A");
  write_node(a, "B");
  EXPECT_EQ(cat("b"), "B");
  EXPECT_EQ(walk("b")->id, a);
  EXPECT_EQ(walk("a").err(), ENOENT);
  EXPECT_EQ(read_file(br(1) + "/a"), "A");
}

// Found by Concurrency.OverlappingNamesKeepInvariants ("name and its
// whiteout both exist" on the rw branch): a lookup that resolved a lower
// file before it was unlinked made the node linked again, and a write
// through it copied the removed file up next to its whiteout: it was back.
TEST_F(PausedLookupTest, StaleLookupDoesNotBringUnlinkedFileBack) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "lower");
  mount();
  NodeId f = walk("f")->id;
  pause_lookup(kRootId, "f");
  ASSERT_EQ(unlink("f"), 0);
  release();
  EXPECT_EQ(paused_err_, ENOENT) << "a node for a removed name";
  // Neither node may write the file back (a write through the removed
  // file's node goes to an unnamed copy).
  for (NodeId id : {f, paused_id_}) {
    if (!id) continue;
    auto fh = fs->open(id, O_WRONLY, Ctx{});
    if (fh.ok()) fs->release(std::move(fh.value()));
  }
  EXPECT_EQ(walk("f").err(), ENOENT) << "the removed file came back";
  EXPECT_FALSE(exists(br(0) + "/f"));
}

// Found by Concurrency.OverlappingNamesKeepInvariants: an open for writing
// copied the file up while an unlink of it was between its lookup and its
// whiteout; the whiteout then sat next to the copy, and the removed file
// was still there.
TEST_F(PausedLookupTest, UnlinkRacingCopyUpRemovesTheCopy) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", "lower");
  mount();
  NodeId f = walk("f")->id;
  bool done = false;
  fs->set_test_hook([&](std::string_view point, std::string_view name) {
    if (point != "unlink" || name != "f" || done) return;
    done = true;
    write_node(f, "X");  // copy-up after unlink resolved the lower file
  });
  EXPECT_EQ(unlink("f"), 0);
  fs->set_test_hook(nullptr);
  EXPECT_TRUE(done);
  EXPECT_EQ(walk("f").err(), ENOENT) << "the removed file came back";
  EXPECT_FALSE(exists(br(0) + "/f"));
  EXPECT_EQ(read_file(br(1) + "/f"), "lower");
}

// Found by Concurrency.OverlappingNamesKeepInvariants (two objects with one
// inode number: the kernel answered mkdir/symlink with ESTALE): a copy-up
// that found its name taken on the rw branch (by a rename, a create, or a
// direct edit) used that object as the copy and gave it the node's number.
TEST_F(UnionTest, CopyUpNeverAdoptsAnotherObjectOfItsName) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", "lower");
  mount();
  auto e = walk("a");
  ASSERT_TRUE(e.ok());
  write_file(br(0) + "/a", "upper made directly");
  auto fh = fs->open(e->id, O_RDWR, Ctx{});
  EXPECT_FALSE(fh.ok()) << "the lower file's node took the upper file";
  if (fh.ok()) fs->release(std::move(fh.value()));
  auto now = walk("a");
  ASSERT_TRUE(now.ok());
  EXPECT_NE(now->attr.st_ino, e->attr.st_ino) << "two files with one inode number";
  EXPECT_EQ(cat("a"), "upper made directly");
  EXPECT_EQ(read_file(br(1) + "/a"), "lower");
}

// Found by Concurrency.OverlappingNamesKeepInvariants (link/write ESTALE
// twice in a row, so the kernel gave up): a hard-linked file's node tracked
// one name; once that name was removed, requests by node failed until the
// kernel looked another name up. The node now moves to another name it was
// reached by (link, lookups) that still leads to it.
TEST_F(UnionTest, HardLinkedNodeMovesToAnotherNameWhenItsNameGoes) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/x", "lower");
  ASSERT_EQ(::link((br(1) + "/x").c_str(), (br(1) + "/y").c_str()), 0);
  mount();
  ASSERT_EQ(create("a", "data"), 0);
  NodeId a = walk("a")->id;
  ASSERT_TRUE(fs->link(a, kRootId, "b", Ctx{}).ok());
  EXPECT_EQ(walk("a")->id, a);  // remembered as "a" again
  ASSERT_EQ(unlink("a"), 0);
  auto check = [&](NodeId id, const std::string& want) {
    auto fh = fs->open(id, O_RDWR, Ctx{});
    ASSERT_TRUE(fh.ok()) << fh.err() << " want " << want;
    std::string out(64, '\0');
    ssize_t n = ::pread(fs->io_fd(*fh.value()).value()->get(), out.data(), out.size(), 0);
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    fs->release(std::move(fh.value()));
    EXPECT_EQ(out, want);
    EXPECT_TRUE(fs->getattr(id).ok());
  };
  check(a, "data");
  // A lower hard link, reached by both names.
  NodeId x = walk("x")->id;
  EXPECT_EQ(walk("y")->id, x);
  ASSERT_EQ(unlink("y"), 0);
  check(x, "lower");
  EXPECT_EQ(read_file(br(1) + "/x"), "lower");
}

}  // namespace

// Found by the long form of Concurrency.DisjointNamesMatchPlainDirectory-
// WithKernelCache: once unlink or rename has removed a branch file, another
// request may create a file that gets the freed inode, hence the same inode
// number; the removal then looked its victim up by number and retired the
// new file's node (its requests failed with ENOENT). The hook runs the
// create in exactly that window.
class ReusedInodeTest : public UnionTest {
 protected:
  // Runs `remove` (which removes "a"); right after the branch file is gone,
  // creates files until one gets a's branch inode. Returns its node id, or 0
  // when the file system did not hand the inode out again.
  NodeId race(const std::function<int()>& remove) {
    struct stat st {};
    EXPECT_EQ(::lstat((br(0) + "/a").c_str(), &st), 0);
    NodeId reused = 0;
    int n = 0;
    fs->set_test_hook([&](std::string_view point, std::string_view name) {
      if (point != "unlinked" || name != "a" || n > 0) return;
      for (n = 1; n <= 64 && !reused; ++n) {
        std::string b = "b" + std::to_string(n);
        EXPECT_EQ(create(b, "new"), 0);
        struct stat bs {};
        if (::lstat((br(0) + "/" + b).c_str(), &bs) == 0 && bs.st_ino == st.st_ino) {
          auto e = walk(b);
          if (e.ok()) reused = e->id;
          reused_name_ = b;
        }
      }
    });
    EXPECT_EQ(remove(), 0);
    fs->set_test_hook(nullptr);
    return reused;
  }
  std::string reused_name_;
};

TEST_F(ReusedInodeTest, UnlinkLeavesTheNewOwnerOfTheInodeAlone) {
  make_branches({"rw"});
  mount();
  ASSERT_EQ(create("a", "old"), 0);
  ASSERT_TRUE(walk("a").ok());
  NodeId b = race([&] { return unlink("a"); });
  if (!b) GTEST_SKIP() << "the branch file system did not reuse the inode";
  EXPECT_EQ(read_node(b), "new");
  auto again = walk(reused_name_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id, b) << "the new file's node was retired";
  EXPECT_EQ(walk("a").err(), ENOENT);
}

TEST_F(ReusedInodeTest, RenameOverLeavesTheNewOwnerOfTheInodeAlone) {
  make_branches({"rw"});
  mount();
  ASSERT_EQ(create("a", "old"), 0);
  ASSERT_EQ(create("c", "moved"), 0);
  ASSERT_TRUE(walk("a").ok());
  NodeId c = walk("c")->id;
  NodeId b = race([&] { return rename("c", "a"); });
  if (!b) GTEST_SKIP() << "the branch file system did not reuse the inode";
  EXPECT_EQ(read_node(b), "new");
  auto again = walk(reused_name_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id, b) << "the new file's node was retired";
  EXPECT_EQ(walk("a")->id, c);
  EXPECT_EQ(read_node(c), "moved");
}

// ---- dirren: directory rename through redirect records ----

namespace {
const std::string kRec = "/.wh..wh..dr.aufs-fuse";
}

TEST_F(UnionTest, DirrenRenameKeepsLowerContentsAndNumbers) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/a/sub");
  write_file(br(1) + "/a/x", "lower x");
  write_file(br(1) + "/a/sub/y", "lower y");
  mount("dirren");
  auto a0 = walk("a"), x0 = walk("a/x"), s0 = walk("a/sub");
  ASSERT_TRUE(a0.ok() && x0.ok() && s0.ok());
  EXPECT_EQ(rename("a", "b"), 0);
  EXPECT_EQ(ls(""), std::vector<std::string>{"b"});
  EXPECT_EQ(walk("a").err(), ENOENT);
  EXPECT_EQ(ls("b"), (std::vector<std::string>{"sub", "x"}));
  EXPECT_EQ(cat("b/x"), "lower x");
  EXPECT_EQ(cat("b/sub/y"), "lower y");
  EXPECT_EQ(walk("b")->attr.st_ino, a0->attr.st_ino);
  EXPECT_EQ(walk("b/x")->attr.st_ino, x0->attr.st_ino);
  EXPECT_EQ(walk("b/sub")->attr.st_ino, s0->attr.st_ino);
  // Nothing copied: the rw branch holds the directory, its record and the
  // old name's whiteout; the lower branch is untouched.
  EXPECT_TRUE(exists(br(0) + "/b" + kRec));
  EXPECT_TRUE(exists(br(0) + "/.wh.a"));
  EXPECT_FALSE(exists(br(0) + "/b/x"));
  EXPECT_EQ(list(br(1)), std::vector<std::string>{"a"});
  EXPECT_EQ(read_file(br(1) + "/a/x"), "lower x");
  auto check = check_branch(br(0), false);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->issues.empty());

  fs.reset();  // remount: the record alone carries the redirect
  mount("dirren");
  EXPECT_EQ(ls(""), std::vector<std::string>{"b"});
  EXPECT_EQ(ls("b"), (std::vector<std::string>{"sub", "x"}));
  EXPECT_EQ(cat("b/sub/y"), "lower y");
  EXPECT_EQ(walk("b")->attr.st_ino, a0->attr.st_ino);
  EXPECT_EQ(walk("b/x")->attr.st_ino, x0->attr.st_ino);

  fs.reset();  // without dirren the record is ignored (AUFS does the same)
  mount();
  EXPECT_EQ(ls("b"), std::vector<std::string>{});
  EXPECT_EQ(walk("a").err(), ENOENT);
}

TEST_F(UnionTest, DirrenNestedChainsAndBack) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/p/a/s");
  write_file(br(1) + "/p/a/x", "x");
  write_file(br(1) + "/p/a/s/y", "y");
  mount("dirren");
  EXPECT_EQ(rename("p/a", "p/b"), 0);
  EXPECT_EQ(rename("p/b", "p/c"), 0);            // a chain: the record moves along
  EXPECT_EQ(rename("p/c/s", "p/c/t"), 0);        // a lower-only dir inside a renamed one
  EXPECT_EQ(rename("p", "q"), 0);                // the parent of renamed dirs
  EXPECT_EQ(ls(""), std::vector<std::string>{"q"});
  EXPECT_EQ(ls("q"), std::vector<std::string>{"c"});
  EXPECT_EQ(ls("q/c"), (std::vector<std::string>{"t", "x"}));
  EXPECT_EQ(cat("q/c/t/y"), "y");
  EXPECT_EQ(mkdir("q/c/new"), 0);
  EXPECT_EQ(rename("q/c", "q/a"), 0);  // back to a name the lower branch has
  EXPECT_EQ(rename("q", "p"), 0);      // and the parent back to its old name
  EXPECT_EQ(ls("p/a"), (std::vector<std::string>{"new", "t", "x"}));
  EXPECT_EQ(cat("p/a/t/y"), "y");
  EXPECT_EQ(walk("p/a/s").err(), ENOENT);
  fs.reset();
  mount("dirren");
  EXPECT_EQ(ls(""), std::vector<std::string>{"p"});
  EXPECT_EQ(ls("p/a"), (std::vector<std::string>{"new", "t", "x"}));
  EXPECT_EQ(cat("p/a/t/y"), "y");
  EXPECT_EQ(cat("p/a/x"), "x");
  EXPECT_EQ(list(br(1) + "/p/a"), (std::vector<std::string>{"s", "x"}));
}

TEST_F(UnionTest, DirrenWritesWhiteoutsAndRmdir) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/a");
  write_file(br(1) + "/a/x", "x");
  write_file(br(1) + "/a/y", "y");
  mount("dirren");
  EXPECT_EQ(rename("a", "b"), 0);
  append("b/x", "+more");  // copy-up goes to the new name on the rw branch
  EXPECT_EQ(read_file(br(0) + "/b/x"), "x+more");
  EXPECT_EQ(read_file(br(1) + "/a/x"), "x");
  EXPECT_EQ(rename("b/y", "b/y2"), 0);  // a lower file renamed inside: copied up, old name whited out
  EXPECT_EQ(cat("b/y2"), "y");
  EXPECT_EQ(walk("b/y").err(), ENOENT);
  EXPECT_EQ(rename("b/y2", "b/y"), 0);
  EXPECT_EQ(unlink("b/y"), 0);  // only in the old lower dir: whited out under the new name
  EXPECT_TRUE(exists(br(0) + "/b/.wh.y"));
  EXPECT_EQ(walk("b/y").err(), ENOENT);
  EXPECT_EQ(create("b/z", "z"), 0);
  EXPECT_EQ(ls("b"), (std::vector<std::string>{"x", "z"}));
  EXPECT_EQ(rmdir("b"), ENOTEMPTY);
  EXPECT_EQ(unlink("b/x"), 0);
  EXPECT_EQ(unlink("b/z"), 0);
  EXPECT_EQ(ls("b"), std::vector<std::string>{});
  EXPECT_EQ(rmdir("b"), 0);
  EXPECT_EQ(ls(""), std::vector<std::string>{});
  EXPECT_TRUE(exists(br(1) + "/a/y"));
  fs.reset();
  mount("dirren");
  EXPECT_EQ(ls(""), std::vector<std::string>{});
  EXPECT_EQ(mkdir("b"), 0);
  EXPECT_EQ(ls("b"), std::vector<std::string>{});
}

TEST_F(UnionTest, DirrenStaleOrInvalidRecordsAreHarmless) {
  make_branches({"rw", "ro"});
  mkdirs(br(0) + "/gone");
  write_file(br(0) + "/gone" + kRec, "aufs-fuse-dirren 1\n1 2 3 /nowhere missing/dir\n", 0444);
  mkdirs(br(0) + "/bad");
  write_file(br(0) + "/bad/mine", "m");
  write_file(br(0) + "/bad" + kRec, "adr\x01 not ours", 0444);
  mkdirs(br(1) + "/bad");
  write_file(br(1) + "/bad/low", "l");
  mount("dirren");
  EXPECT_EQ(ls("gone"), std::vector<std::string>{});
  // An unreadable record: the directory merges by name as without dirren.
  EXPECT_EQ(ls("bad"), (std::vector<std::string>{"low", "mine"}));
  EXPECT_EQ(rmdir("gone"), 0);
  auto check = check_branch(br(0), false);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->issues.empty());
}

TEST_F(UnionTest, DirrenTwoLowerBranchesAndMovedBranchRoot) {
  make_branches({"rw", "ro", "ro"});
  mkdirs(br(1) + "/a");
  mkdirs(br(2) + "/a");
  write_file(br(1) + "/a/one", "1");
  write_file(br(2) + "/a/two", "2");
  mkdirs(br(2) + "/b");  // unrelated lower b: not merged into the renamed a
  write_file(br(2) + "/b/other", "o");
  mount("dirren");
  EXPECT_EQ(rmdir("b"), ENOTEMPTY);
  EXPECT_EQ(unlink("b/other"), 0);
  EXPECT_EQ(rmdir("b"), 0);
  // The lower b (its "other" still there) stays hidden under the moved a.
  EXPECT_EQ(rename("a", "b"), 0);
  EXPECT_EQ(ls("b"), (std::vector<std::string>{"one", "two"}));
  fs.reset();
  // The branch moved: the same directory under another path is found by
  // its root's device and inode.
  ASSERT_EQ(::rename(br(2).c_str(), (tmp / "moved").c_str()), 0);
  perms_ = {"rw", "ro"};
  auto r = parse_command_line({"-o", "br=" + br(0) + "=rw:" + br(1) + "=ro:" + (tmp / "moved") +
                                         "=ro,dirren", tmp / "mnt"});
  ASSERT_TRUE(r.ok()) << r.error;
  auto u = Union::mount(r.opts);
  ASSERT_TRUE(u.ok());
  fs = std::move(u.value());
  EXPECT_EQ(ls("b"), (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(cat("b/two"), "2");
}

TEST_F(UnionTest, DirrenWithSeveralWritableBranchesKeepsWritablePartsInPlace) {
  // Writes find a writable branch's copy by the directory's own path, so a
  // directory with entries on a lower writable branch keeps the EXDEV rule;
  // an empty writable part is hidden, not recorded.
  make_branches({"rw", "rw", "ro"});
  mkdirs(br(0) + "/a");
  mkdirs(br(1) + "/a");
  write_file(br(1) + "/a/w", "on rw2");
  mkdirs(br(2) + "/a");
  write_file(br(2) + "/a/r", "on ro");
  mkdirs(br(0) + "/e");
  mkdirs(br(1) + "/e");  // empty on rw2, entries on ro
  mkdirs(br(2) + "/e");
  write_file(br(2) + "/e/r", "e on ro");
  mkdirs(br(1) + "/g");  // its top copy on rw2: renamed there
  write_file(br(1) + "/g/w", "g on rw2");
  mkdirs(br(2) + "/g");
  write_file(br(2) + "/g/r", "g on ro");
  mount("dirren");
  EXPECT_EQ(rename("a", "b"), EXDEV);
  EXPECT_EQ(ls("a"), (std::vector<std::string>{"r", "w"}));
  EXPECT_TRUE(exists(br(1) + "/a/w"));

  EXPECT_EQ(rename("e", "f"), 0);
  EXPECT_EQ(ls("f"), std::vector<std::string>{"r"});
  std::string rec = read_file(br(0) + "/f" + kRec);
  EXPECT_NE(rec.find(br(2)), std::string::npos) << rec;
  EXPECT_EQ(rec.find(br(1)), std::string::npos) << rec;
  // Writes in the moved directory land on the top branch at the new path;
  // unlinking the read-only part's file whites it out there.
  EXPECT_EQ(create("f/n", "new"), 0);
  EXPECT_EQ(unlink("f/r"), 0);
  EXPECT_EQ(ls("f"), std::vector<std::string>{"n"});
  EXPECT_TRUE(exists(br(0) + "/f/n"));
  EXPECT_TRUE(exists(br(0) + "/f/.wh.r"));
  EXPECT_TRUE(exists(br(2) + "/e/r"));
  EXPECT_TRUE(exists(br(1) + "/e"));
  EXPECT_EQ(walk("e").err(), ENOENT);
  EXPECT_EQ(unlink("f/n"), 0);
  EXPECT_EQ(rmdir("f"), 0);

  EXPECT_EQ(rename("g", "h"), 0);
  EXPECT_EQ(ls("h"), (std::vector<std::string>{"r", "w"}));
  EXPECT_TRUE(exists(br(1) + "/h/w"));
  EXPECT_TRUE(exists(br(1) + "/h" + kRec));
  EXPECT_TRUE(exists(br(1) + "/.wh.g"));
  EXPECT_EQ(unlink("h/w"), 0);  // in place on rw2, at the new path
  EXPECT_FALSE(exists(br(1) + "/h/w"));
  EXPECT_EQ(cat("h/r"), "g on ro");

  EXPECT_EQ(ls(""), (std::vector<std::string>{"a", "h"}));
  fs.reset();
  mount("dirren");
  EXPECT_EQ(ls(""), (std::vector<std::string>{"a", "h"}));
  EXPECT_EQ(ls("a"), (std::vector<std::string>{"r", "w"}));
  EXPECT_EQ(ls("h"), std::vector<std::string>{"r"});
}

TEST_F(UnionTest, DirrenRecordNamingAWritableBranchIsNotFollowed) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/a");
  write_file(br(1) + "/a/x", "x");
  mount("dirren");
  ASSERT_EQ(rename("a", "b"), 0);
  EXPECT_EQ(ls("b"), std::vector<std::string>{"x"});
  fs.reset();
  // The same branches, the lower one now writable: its part would be
  // written at the wrong path, so it is not merged.
  perms_ = {"rw", "rw"};
  mount("dirren");
  EXPECT_EQ(ls("b"), std::vector<std::string>{});
  EXPECT_EQ(create("b/y", "y"), 0);
  EXPECT_TRUE(exists(br(0) + "/b/y"));
  EXPECT_FALSE(exists(br(1) + "/b"));
  EXPECT_EQ(read_file(br(1) + "/a/x"), "x");
}

TEST_F(UnionTest, DirrenRecordAddedLaterIsSeenDespiteTheCache) {
  make_branches({"rw", "ro"});
  mkdirs(br(0) + "/new");
  mkdirs(br(1) + "/old");
  write_file(br(1) + "/old/f", "f");
  ::usleep(100 * 1000);  // the dir's ctime is old enough to be cached
  mount("dirren");
  EXPECT_EQ(ls("new"), std::vector<std::string>{});
  EXPECT_EQ(ls("new"), std::vector<std::string>{});  // "no record" is now cached
  struct stat rs, ds;
  ASSERT_EQ(::stat(br(1).c_str(), &rs), 0);
  ASSERT_EQ(::stat((br(1) + "/old").c_str(), &ds), 0);
  // What a rename by another mount (or a restore) leaves: the ctime moves.
  write_file(br(0) + "/new" + kRec,
             "aufs-fuse-dirren 1\n" + std::to_string(rs.st_dev) + " " + std::to_string(rs.st_ino) +
                 " " + std::to_string(ds.st_ino) + " " + br(1) + " old\n",
             0444);
  EXPECT_EQ(ls("new"), std::vector<std::string>{"f"});
  EXPECT_EQ(cat("new/f"), "f");
}

// The states a crash can leave between the steps of a dirren rename (see
// Union::rename): each shows the old name with its lower contents, or the
// new one.
TEST_F(UnionTest, DirrenInterruptedRenameShowsOldOrNewState) {
  make_branches({"rw", "ro"});
  mkdirs(br(1) + "/a");
  write_file(br(1) + "/a/f", "f");
  mount("dirren");
  EXPECT_EQ(rename("a", "b"), 0);
  std::string rec = read_file(br(0) + "/b" + kRec);
  ASSERT_FALSE(rec.empty());
  fs.reset();
  // Steps 1-2: the rw part at the old name with its record (and a leftover
  // record temporary): the old state.
  ASSERT_EQ(::rename((br(0) + "/b").c_str(), (br(0) + "/a").c_str()), 0);
  ASSERT_EQ(::unlink((br(0) + "/.wh.a").c_str()), 0);
  write_file(br(0) + "/a/.wh..wh..dr.aufs-fuse.0001", rec.substr(0, 5), 0444);
  mount("dirren");
  EXPECT_EQ(ls(""), std::vector<std::string>{"a"});
  EXPECT_EQ(cat("a/f"), "f");
  EXPECT_FALSE(exists(br(0) + "/a/.wh..wh..dr.aufs-fuse.0001"));  // removed by the mount's check
  fs.reset();
  // Step 3: the old name's whiteout too: the rw entry still wins.
  write_file(br(0) + "/.wh.a", "", 0444);
  mount("dirren,nochk");
  EXPECT_EQ(ls(""), std::vector<std::string>{"a"});
  EXPECT_EQ(cat("a/f"), "f");
  fs.reset();
  // The checker removes the whiteout and keeps the record.
  auto check = check_branch(br(0), true);
  ASSERT_TRUE(check.ok());
  EXPECT_EQ(check->issues.size(), 1u);  // the name with its whiteout
  EXPECT_TRUE(exists(br(0) + "/a" + kRec));
  // Step 4 done: the new state.
  ASSERT_EQ(::rename((br(0) + "/a").c_str(), (br(0) + "/b").c_str()), 0);
  write_file(br(0) + "/.wh.a", "", 0444);
  mount("dirren");
  EXPECT_EQ(ls(""), std::vector<std::string>{"b"});
  EXPECT_EQ(cat("b/f"), "f");
}

// readdirplus looks up a reply's entries in one batch, with the directory
// opened once per branch: each result must equal a lookup of the name.
TEST_F(UnionTest, BatchedEntryLookupsMatchSingleLookups) {
  make_branches({"rw", "ro+wh", "ro"});
  mkdirs(br(0) + "/d/both");
  mkdirs(br(1) + "/d/both/x");
  mkdirs(br(2) + "/d/both/y");
  mkdirs(br(1) + "/d/opq");
  write_file(br(1) + "/d/opq/.wh..wh..opq", "", 0444);
  mkdirs(br(2) + "/d/opq/hidden");
  write_file(br(0) + "/d/top", "top");
  write_file(br(1) + "/d/mid", "mid");
  write_file(br(2) + "/d/mid", "shadowed");
  write_file(br(2) + "/d/low", "low");
  write_file(br(2) + "/d/gone", "gone");
  write_file(br(1) + "/d/.wh.gone", "", 0444);
  mkdirs(br(2) + "/d/typed");  // a file above a directory: the file wins
  write_file(br(1) + "/d/typed", "file");
  mount();
  auto dh = fs->opendir(walk("d")->id);
  ASSERT_TRUE(dh.ok());
  // The listing's entries plus a whited-out and a missing name.
  std::vector<VEntry> extra{VEntry{}, VEntry{}};
  extra[0].name = "gone";
  extra[1].name = "nothing";
  std::vector<const VEntry*> es;
  for (auto& e : dh.value()->entries) es.push_back(&e);
  for (auto& e : extra) es.push_back(&e);
  ASSERT_EQ(es.size(), 8u) << ::testing::PrintToString(ls("d"));  // both low mid opq top typed + 2
  auto got = fs->lookup_entries(*dh.value(), es.data(), es.size());
  ASSERT_EQ(got.size(), es.size());
  NodeId d = walk("d")->id;
  for (size_t i = 0; i < es.size(); ++i) {
    auto one = fs->lookup(d, es[i]->name);
    ASSERT_EQ(got[i].ok(), one.ok()) << es[i]->name;
    if (!one.ok()) {
      EXPECT_EQ(got[i].err(), one.err()) << es[i]->name;
      EXPECT_EQ(one.err(), ENOENT) << es[i]->name;
      continue;
    }
    EXPECT_EQ(got[i]->id, one->id) << es[i]->name;
    EXPECT_EQ(got[i]->attr.st_ino, one->attr.st_ino) << es[i]->name;
    EXPECT_EQ(got[i]->attr.st_mode, one->attr.st_mode) << es[i]->name;
    EXPECT_EQ(got[i]->attr.st_size, one->attr.st_size) << es[i]->name;
  }
  EXPECT_EQ(ls("d/both"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(ls("d/opq"), std::vector<std::string>{});
  EXPECT_EQ(cat("d/mid"), "mid");
  EXPECT_TRUE(S_ISREG(walk("d/typed")->attr.st_mode));
}
