// SPDX-License-Identifier: GPL-2.0-or-later
// Injected I/O faults at every branch system call (issue 18), as SQLite's
// I/O-error tests do. Built only with -Dfault_injection=true. For each
// operation: one run counts its calls K; then for N = 1..K and each errno,
// fresh branches, call N fails, and after the operation:
//  * success means the union shows exactly the state after; an error means
//    the state before (never the state after: the change happened, so the
//    caller must hear success; never a third state);
//  * EINTR is retried inside the wrappers: the operation succeeds;
//  * the same core keeps serving (the whole view is listed and read again),
//    a fresh mount shows the same view, lower branches are unchanged
//    (contents, modes, xattrs, times, inode numbers), and the checker finds
//    nothing but temporaries on the writable branches.
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "aufs_fuse/fault.hpp"
#include "union_fixture.hpp"

using namespace aufs;
using namespace aufs::test;

namespace {

using View = std::map<std::string, std::string>;

std::string errname(int e) {
  switch (e) {
    case 0: return "ok";
    case EIO: return "EIO";
    case ENOSPC: return "ENOSPC";
    case EDQUOT: return "EDQUOT";
    case EMFILE: return "EMFILE";
    case ENOMEM: return "ENOMEM";
    case EINTR: return "EINTR";
    default: return std::to_string(e);
  }
}

const int kErrnos[] = {EIO, ENOSPC, EDQUOT, EMFILE, ENOMEM, EINTR};

// Lines of the differences between two views.
std::string diff(const View& a, const View& b) {
  std::string out;
  for (auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end()) out += "  - " + k + " " + v + "\n";
    else if (it->second != v) out += "  ~ " + k + " " + v + " -> " + it->second + "\n";
  }
  for (auto& [k, v] : b)
    if (!a.count(k)) out += "  + " + k + " " + v + "\n";
  return out;
}

// Everything of a branch tree, by lstat/readlink/read/l*xattr.
void snapshot(const std::string& dir, const std::string& rel, View& out) {
  for (auto& n : list(dir)) {
    std::string p = dir + "/" + n, r = rel.empty() ? n : rel + "/" + n;
    struct stat st;
    if (::lstat(p.c_str(), &st) < 0) {
      out[r] = "<lstat " + errname(errno) + ">";
      continue;
    }
    char buf[512];
    std::snprintf(buf, sizeof buf, "%o %u:%u n%lu i%lu s%ld m%ld.%ld c%ld.%ld", st.st_mode, st.st_uid,
                  st.st_gid, static_cast<unsigned long>(st.st_nlink), static_cast<unsigned long>(st.st_ino),
                  static_cast<long>(st.st_size), st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_ctim.tv_sec,
                  st.st_ctim.tv_nsec);
    std::string d = buf;
    if (S_ISREG(st.st_mode)) d += " data#" + std::to_string(std::hash<std::string>{}(read_file(p)));
    char names[4096];
    ssize_t k = ::llistxattr(p.c_str(), names, sizeof names);
    for (ssize_t i = 0; i < k; i += static_cast<ssize_t>(std::strlen(names + i)) + 1) {
      char val[4096];
      ssize_t v = ::lgetxattr(p.c_str(), names + i, val, sizeof val);
      d += std::string(" ") + (names + i) + "=" + std::string(val, v > 0 ? static_cast<size_t>(v) : 0);
    }
    out[r] = d;
    if (S_ISDIR(st.st_mode)) snapshot(p, r, out);
  }
}

}  // namespace

class FaultTest : public UnionTest {
 protected:
  struct Scenario {
    std::string name;
    std::vector<std::string> perms;
    std::string options;
    std::vector<std::string> extra_dirs;  // made fresh too (branches to add)
    std::function<void()> setup;          // fills the branches
    // Looks up what the operation needs (not counted); the operation,
    // answering an errno (0: done).
    std::function<std::function<int()>()> prepare;
  };

  // The union as a caller sees it: every name, type, mode, owner, size,
  // link count, data, symlink target and xattr (times and inode numbers of
  // directories change legitimately and are left out).
  View view() {
    View out;
    view_dir(kRootId, "", out);
    return out;
  }
  void view_dir(NodeId dir, const std::string& path, View& out) {
    auto dh = fs->opendir(dir);
    if (!dh.ok()) {
      out[path + "/"] = "<opendir " + errname(dh.err()) + ">";
      return;
    }
    for (auto& e : dh.value()->entries) {
      std::string p = path.empty() ? e.name : path + "/" + e.name;
      auto r = fs->lookup(dir, e.name);
      if (!r.ok()) {
        out[p] = "<lookup " + errname(r.err()) + ">";
        continue;
      }
      const struct stat& st = r->attr;
      char buf[128];
      std::snprintf(buf, sizeof buf, "%o %u:%u", st.st_mode, st.st_uid, st.st_gid);
      std::string d = buf;
      if (S_ISREG(st.st_mode)) {
        d += " s" + std::to_string(st.st_size) + " n" + std::to_string(st.st_nlink) + " " + data_of(r->id);
      } else if (S_ISLNK(st.st_mode)) {
        auto t = fs->readlink(r->id);
        d += " -> " + (t.ok() ? t.value() : "<" + errname(t.err()) + ">");
      }
      auto names = fs->listxattr(r->id, 4096);
      if (names.ok()) {
        for (size_t i = 0; i < names->size(); i += std::strlen(names->data() + i) + 1) {
          auto v = fs->getxattr(r->id, names->data() + i, 4096);
          d += std::string(" ") + (names->data() + i) + "=" +
               (v.ok() ? std::string(v->begin(), v->end()) : "<" + errname(v.err()) + ">");
        }
      } else {
        d += " <listxattr " + errname(names.err()) + ">";
      }
      out[p] = d;
      if (S_ISDIR(st.st_mode)) view_dir(r->id, p, out);
    }
  }
  std::string data_of(NodeId id) {
    auto fh = fs->open(id, O_RDONLY, Ctx{});
    if (!fh.ok()) return "<open " + errname(fh.err()) + ">";
    auto fd = fs->io_fd(*fh.value());
    std::string all, buf(1 << 16, '\0');
    for (off_t off = 0;;) {
      ssize_t n = ::pread(fd.value()->get(), buf.data(), buf.size(), off);
      if (n < 0) return "<read " + errname(errno) + ">";
      if (n == 0) break;
      all.append(buf, 0, static_cast<size_t>(n));
      off += n;
    }
    fs->release(std::move(fh.value()));
    return "data#" + std::to_string(std::hash<std::string>{}(all));
  }

  // Branches as the scenario makes them, and a mount over them.
  void fresh(const Scenario& sc) {
    fs.reset();
    for (size_t i = 0; i < sc.perms.size(); ++i) remove_tree(br(i));
    for (auto& d : sc.extra_dirs) remove_tree(tmp / d);
    make_branches(sc.perms);
    for (auto& d : sc.extra_dirs) mkdirs(tmp / d);
    sc.setup();
    mount(sc.options);
  }
  // The read-only branches (and extra dirs), as bytes and metadata.
  View lower(const Scenario& sc) {
    View out;
    for (size_t i = 0; i < sc.perms.size(); ++i)
      if (sc.perms[i].rfind("rw", 0) != 0) snapshot(br(i), "b" + std::to_string(i), out);
    return out;
  }
  // Checker issues other than temporaries on the writable branches.
  std::string unrepairable(const Scenario& sc) {
    std::string out;
    std::vector<std::string> dirs;
    for (size_t i = 0; i < sc.perms.size(); ++i)
      if (sc.perms[i].rfind("rw", 0) == 0) dirs.push_back(br(i));
    for (auto& d : sc.extra_dirs) dirs.push_back(tmp / d);
    for (auto& d : dirs) {
      auto rep = check_branch(d, false);
      if (!rep.ok()) {
        out += d + ": check " + errname(rep.err()) + "; ";
        continue;
      }
      for (auto& is : rep->issues)
        if (is.kind != CheckIssue::Kind::TempLeftover) out += std::string(kind_name(is.kind)) + " " + is.path + "; ";
    }
    return out;
  }

  // A new core over the branches the current one has now.
  void remount_current(const std::string& options) {
    std::string list;
    {
      // The snapshot holds the branches and with them their locks: drop it
      // before the old core goes, or the new one finds the rw branch busy.
      auto bs = fs->branches();
      for (size_t i = 0; i < bs->size(); ++i)
        list += (i ? ":" : "") + (*bs)[i].spec.path + "=" + format_perm((*bs)[i].spec);
    }
    fs.reset();
    auto r = parse_command_line({"-o", "br=" + list + (options.empty() ? "" : "," + options), tmp / "mnt"});
    ASSERT_TRUE(r.ok()) << r.error;
    ASSERT_EQ(validate_options(r.opts), "");
    auto u = Union::mount(r.opts);
    ASSERT_TRUE(u.ok()) << u.err();
    fs = std::move(u.value());
  }

  struct Baseline {
    View before, after;
    uint64_t calls = 0;
    std::vector<std::string> names;  // the calls, in order
  };

  // The operation once without a fault: its call count and both states.
  Baseline baseline(const Scenario& sc) {
    Baseline b;
    // Once uncounted first: what the process learns of the file systems
    // (which cannot clone, which close() reports nothing) is then the same
    // for every counted run.
    fresh(sc);
    (void)sc.prepare()();
    fresh(sc);
    b.before = view();
    View low = lower(sc);
    auto op = sc.prepare();
    fault::arm(0, 0);
    int r = op();
    b.calls = fault::calls();
    auto names = fault::trace();
    b.names = names;
    fault::disarm();
    EXPECT_EQ(r, 0) << sc.name << ": " << errname(r);
    b.after = view();
    EXPECT_NE(b.before, b.after) << sc.name << ": the operation changed nothing";
    EXPECT_EQ(lower(sc), low) << sc.name;
    EXPECT_EQ(unrepairable(sc), "") << sc.name;
    std::string calls;
    for (auto& n : names) calls += " " + n;
    std::printf("%s: %lu calls:%s\n", sc.name.c_str(), static_cast<unsigned long>(b.calls), calls.c_str());
    return b;
  }

  // Fails call n with err; "" if every check holds, else what broke.
  std::string run_one(const Scenario& sc, const Baseline& b, uint64_t n, int err) {
    fresh(sc);
    if (view() != b.before) return "setup differs";
    View low = lower(sc);  // made anew with the branches
    auto op = sc.prepare();
    fault::arm(n, err);
    int r = op();
    uint64_t made = fault::calls();
    std::string call = fault::fired();
    fault::disarm();
    std::string what = sc.name + " call " + std::to_string(n) + " (" + call + ") " + errname(err) + " -> " +
                       errname(r) + ": ";
    std::string bad;
    View now = view();  // the same core keeps serving
    if (err == EINTR && (r != 0 || made != b.calls + 1))
      bad += "EINTR not retried (" + std::to_string(made) + " calls); ";
    if (r == 0 && now != b.after) bad += "success, but not the state after:\n" + diff(b.after, now);
    if (r != 0 && now != b.before && now != b.after)
      bad += "neither the state before nor after:\n" + diff(b.before, now);
    // An error for a change that did happen: the caller would retry, or
    // give up on, something already done.
    if (r != 0 && now == b.after) bad += "an error, but the change was made; ";
    if (auto l = lower(sc); l != low) bad += "lower branch changed:\n" + diff(low, l);
    if (auto u = unrepairable(sc); !u.empty()) bad += "checker: " + u;
    remount_current(sc.options);  // repairs temporaries
    if (View again = view(); again != now) bad += "a fresh mount sees another view:\n" + diff(now, again);
    return bad.empty() ? "" : what + bad;
  }

  // Every (call, errno) of the scenario; failures are reported together.
  void run_all(const Scenario& sc) {
    Baseline b = baseline(sc);
    ASSERT_FALSE(HasFailure());
    ASSERT_GT(b.calls, 0u);
    std::vector<std::string> failures;
    uint64_t triples = 0;
    for (uint64_t n = 1; n <= b.calls; ++n)
      for (int e : kErrnos) {
        ++triples;
        if (auto f = run_one(sc, b, n, e); !f.empty()) failures.push_back(f);
      }
    std::printf("stats: %s: %lu calls, %lu triples, %zu failed\n", sc.name.c_str(),
                static_cast<unsigned long>(b.calls), static_cast<unsigned long>(triples), failures.size());
    for (size_t i = 0; i < failures.size() && i < 20; ++i) ADD_FAILURE() << failures[i];
    EXPECT_EQ(failures.size(), 0u);
  }
  // One triple (regression cases): the k-th call named `call` fails, so
  // the case stays the one that found the bug when other calls come or go.
  void run_triple(const Scenario& sc, const std::string& call, int k, int err) {
    Baseline b = baseline(sc);
    ASSERT_FALSE(HasFailure());
    uint64_t n = 0;
    for (size_t i = 0; i < b.names.size() && k > 0; ++i)
      if (b.names[i] == call && --k == 0) n = i + 1;
    ASSERT_NE(n, 0u) << sc.name << ": no such call " << call;
    EXPECT_EQ(run_one(sc, b, n, err), "");
  }

  void TearDown() override { fault::disarm(); }

  // ---- the operations ----
  int setattr_mode(NodeId id, mode_t mode) {
    SetAttrIn in;
    in.valid = SetAttrIn::kMode;
    in.mode = mode;
    auto r = fs->setattr(id, in, nullptr, Ctx{});
    return r.ok() ? 0 : r.err();
  }
  Scenario copy_up() {
    return {"copy-up", {"rw", "ro"}, "", {}, [this] {
              mkdirs(br(1) + "/d");
              ::setxattr((br(1) + "/d").c_str(), "user.dir", "D", 1, 0);
              std::string f = br(1) + "/d/f";
              write_file(f, "head");
              int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
              ASSERT_EQ(::pwrite(fd, "tail", 4, 1 << 20), 4);  // a 1 MiB hole
              ::close(fd);
              ASSERT_EQ(::setxattr(f.c_str(), "user.a", "1", 1, 0), 0);
              ASSERT_EQ(::setxattr(f.c_str(), "user.b", "two", 3, 0), 0);
              write_file(br(1) + "/d/other", "other");
            },
            [this] {
              NodeId id = walk("d/f")->id;
              return std::function<int()>([this, id] { return setattr_mode(id, 0600); });
            }};
  }
  Scenario unlink_lower() {
    return {"unlink", {"rw", "ro"}, "", {}, [this] {
              mkdirs(br(1) + "/d");
              write_file(br(1) + "/d/f", "f");
              write_file(br(1) + "/d/g", "g");
            },
            [this] {
              NodeId d = dir("d");
              return std::function<int()>([this, d] { return fs->unlink(d, "f").err(); });
            }};
  }
  Scenario rmdir_merged() {
    return {"rmdir", {"rw", "ro"}, "", {}, [this] {
              mkdirs(br(1) + "/m/sub");
              write_file(br(1) + "/m/a", "a");
              write_file(br(1) + "/m/b", "b");
              mkdirs(br(0) + "/m");
              for (auto n : {".wh.a", ".wh.b", ".wh.sub"}) write_file(br(0) + "/m/" + n, "", 0444);
              write_file(br(1) + "/keep", "keep");
            },
            [this] { return std::function<int()>([this] { return fs->rmdir(kRootId, "m").err(); }); }};
  }
  Scenario rename_file() {
    return {"rename-file", {"rw", "ro"}, "", {}, [this] {
              mkdirs(br(1) + "/d");
              write_file(br(1) + "/d/f", "moving");
              write_file(br(1) + "/d/g", "replaced");
            },
            [this] {
              NodeId d = dir("d");
              return std::function<int()>([this, d] { return fs->rename(d, "f", d, "g", 0).err(); });
            }};
  }
  Scenario rename_dirren() {
    return {"rename-dirren", {"rw", "ro"}, "dirren", {}, [this] {
              mkdirs(br(1) + "/a/sub");
              write_file(br(1) + "/a/x", "x");
              write_file(br(1) + "/a/sub/y", "y");
            },
            [this] { return std::function<int()>([this] { return fs->rename(kRootId, "a", kRootId, "b", 0).err(); }); }};
  }
  Scenario mkdir_over_whiteout() {
    return {"mkdir-opaque", {"rw", "ro"}, "", {}, [this] {
              mkdirs(br(1) + "/d");
              write_file(br(1) + "/d/x", "x");
              write_file(br(0) + "/.wh.d", "", 0444);
            },
            [this] {
              return std::function<int()>([this] {
                auto r = fs->mkdir(kRootId, "d", 0750, Ctx{});
                return r.ok() ? 0 : r.err();
              });
            }};
  }
  Scenario link_plink() {
    return {"link-plink", {"rw", "ro"}, "", {}, [this] {
              write_file(br(1) + "/h1", "linked");
              ASSERT_EQ(::link((br(1) + "/h1").c_str(), (br(1) + "/h2").c_str()), 0);
            },
            [this] {
              NodeId h1 = walk("h1")->id;
              (void)walk("h2");
              return std::function<int()>([this, h1] {
                auto r = fs->link(h1, kRootId, "h3", Ctx{});
                return r.ok() ? 0 : r.err();
              });
            }};
  }
  // A lower name of a pseudo-linked file removed: the link count kept on
  // the copy (the view shows it) goes down with the whiteout, or not at all.
  Scenario unlink_plinked() {
    return {"unlink-plinked", {"rw", "ro"}, "", {}, [this] {
              write_file(br(1) + "/h1", "linked", 0644);
              for (auto n : {"/h2", "/h3"}) ASSERT_EQ(::link((br(1) + "/h1").c_str(), (br(1) + n).c_str()), 0);
            },
            [this] {
              // Copied up (with its plnk record) by a chmod that changes
              // nothing the view shows.
              EXPECT_EQ(setattr_mode(walk("h1")->id, 0644), 0);
              (void)walk("h2");
              return std::function<int()>([this] { return fs->unlink(kRootId, "h2").err(); });
            }};
  }
  Scenario branch_change(bool add) {
    std::string spec = add ? "prepend:" + (tmp / "new") + "=rw" : "del:" + br(1);
    return {add ? "branch-add" : "branch-del", {"rw", "ro"}, "", {"new"}, [this] {
              write_file(br(1) + "/lower", "lower");
              write_file(br(0) + "/upper", "upper");
              write_file(tmp / "new/added", "added");
            },
            [this, spec] {
              return std::function<int()>([this, spec] {
                std::vector<BranchOp> ops;
                if (!parse_branch_ops(spec, false, ops).empty()) return EINVAL;
                std::string msg;
                return fs->change_branches(ops, &msg).err();
              });
            }};
  }

};

TEST_F(FaultTest, CopyUpWithXattrsAndHoles) { run_all(copy_up()); }
TEST_F(FaultTest, UnlinkLowerFile) { run_all(unlink_lower()); }
TEST_F(FaultTest, RmdirMergedDirectory) { run_all(rmdir_merged()); }
TEST_F(FaultTest, RenameFile) { run_all(rename_file()); }
TEST_F(FaultTest, RenameDirrenDirectory) { run_all(rename_dirren()); }
TEST_F(FaultTest, MkdirOverWhiteout) { run_all(mkdir_over_whiteout()); }
TEST_F(FaultTest, LinkPlink) { run_all(link_plink()); }
TEST_F(FaultTest, UnlinkPseudoLinkedLowerName) { run_all(unlink_plinked()); }
TEST_F(FaultTest, BranchAdd) { run_all(branch_change(true)); }
TEST_F(FaultTest, BranchDel) { run_all(branch_change(false)); }

// The faults that found bugs, by the call that failed (run_all above covers
// them too).
// A whiteout inside the set-aside directory failed to go: it was renamed
// back with lower entries showing again.
TEST_F(FaultTest, RegressionRmdirWhiteoutRemovalFails) { run_triple(rmdir_merged(), "unlinkat", 3, EIO); }
// The lower part's stat failed: the record left it out, the renamed
// directory lost its lower contents and rename said success.
TEST_F(FaultTest, RegressionDirrenRecordDropsLowerPart) { run_triple(rename_dirren(), "openat2", 10, EIO); }
// The whiteout under a new directory failed to go: name and whiteout stayed
// together (a checker issue, not a temporary).
TEST_F(FaultTest, RegressionMkdirLeavesWhiteout) { run_triple(mkdir_over_whiteout(), "unlinkat", 1, EIO); }
// The copy's inode number failed to be recorded: after a remount the
// pseudo-linked names gave ESTALE.
TEST_F(FaultTest, RegressionPlinkInoNotRecorded) { run_triple(link_plink(), "setxattr", 1, EIO); }
// The pseudo-link failed: link said success, the names had parted.
TEST_F(FaultTest, RegressionPlinkNotMade) { run_triple(link_plink(), "linkat", 1, EIO); }
// The publishing rename failed: the pseudo-link stayed, serving the other
// names from the removed temporary.
TEST_F(FaultTest, RegressionPlinkLeftAfterFailedCopy) { run_triple(link_plink(), "renameat2", 1, ENOSPC); }

// The calls themselves, counted by the same hooks.
std::vector<std::string> calls_of(const std::function<void()>& op) {
  fault::arm(0, 0);
  op();
  auto t = fault::trace();
  fault::disarm();
  return t;
}
long count_of(const std::vector<std::string>& t, const std::string& name) {
  return std::count(t.begin(), t.end(), name);
}

// A file without holes is copied in one piece: no extent walk (lseek) and
// no ftruncate; a sparse one still keeps its holes (CopyUpWithXattrsAndHoles).
TEST_F(FaultTest, DenseCopyUpWalksNoExtents) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/f", std::string(20000, 'x'));
  mount();
  NodeId id = walk("f")->id;
  auto t = calls_of([&] { EXPECT_EQ(setattr_mode(id, 0600), 0); });
  EXPECT_EQ(count_of(t, "lseek"), 0);
  EXPECT_EQ(count_of(t, "ftruncate"), 0);
  EXPECT_EQ(read_file(br(0) + "/f"), std::string(20000, 'x'));
}

// A lookup of a file on the writable branch is one lstat (no probe for its
// whiteout); a name found lower down still costs the probe.
TEST_F(FaultTest, LookupOfAWritableBranchFileIsOneLstat) {
  make_branches({"rw", "ro"});
  write_file(br(0) + "/up", "u");
  write_file(br(1) + "/low", "l");
  mount();
  auto t = calls_of([&] { EXPECT_TRUE(walk("up").ok()); });
  EXPECT_EQ(count_of(t, "lstat"), 1);
  t = calls_of([&] { EXPECT_TRUE(walk("low").ok()); });
  EXPECT_EQ(count_of(t, "lstat"), 3);  // upper name, upper whiteout, lower name
}

// A file the union makes carries no recorded inode number yet, so none is
// read; and the kind of file system behind a writer (does close() report
// anything?) is asked once per block device, not at every open.
TEST_F(FaultTest, CreateReadsNoInodeNumberAndAsksTheFileSystemOnce) {
  make_branches({"rw", "ro"});
  mount();
  EXPECT_EQ(create("first", "1"), 0);
  auto t = calls_of([&] { EXPECT_EQ(create("second", "2"), 0); });
  EXPECT_EQ(count_of(t, "getxattr"), 0);
  struct stat st;
  ASSERT_EQ(::stat(br(0).c_str(), &st), 0);
  if (major(st.st_dev) != 0) {
    EXPECT_EQ(count_of(t, "fstatfs"), 0);
  }
  EXPECT_EQ(cat("second"), "2");
}

// An open reads the opened file's attributes once (the check that it is
// the node's file gives the page-cache stamp too); a create, none beyond
// the new entry's own stat.
TEST_F(FaultTest, AnOpenReadsTheFilesAttributesOnce) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/low", "l");
  mount();
  EXPECT_EQ(create("first", "1"), 0);
  for (const char* name : {"low", "first"}) {
    NodeId id = walk(name)->id;
    auto t = calls_of([&] {
      auto r = fs->open(id, O_RDONLY, Ctx{});
      ASSERT_TRUE(r.ok()) << r.err();
      fs->release(std::move(r.value()));
    });
    EXPECT_EQ(count_of(t, "fstat"), 1) << name << ": " << ::testing::PrintToString(t);
  }
  auto t = calls_of([&] {
    auto r = fs->create(kRootId, "second", 0644, O_WRONLY, Ctx{});
    ASSERT_TRUE(r.ok()) << r.err();
    fs->release(std::move(r->fh));  // a writer's release reads the size it left
  });
  // From the creating openat on (before it: the name's lookup).
  auto made = std::find(t.begin(), t.end(), "openat");
  ASSERT_NE(made, t.end()) << ::testing::PrintToString(t);
  EXPECT_EQ(std::count(made, t.end(), "fstat"), 1) << ::testing::PrintToString(t);
}

// A copy-up syncs the copy's data before publishing it; a copy without
// data (an empty file, or an open with O_TRUNC) has nothing to sync.
TEST_F(FaultTest, OnlyACopyWithDataIsSynced) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/full", "data");
  write_file(br(1) + "/trunc", "data");
  write_file(br(1) + "/empty", "");
  mount();
  NodeId full = walk("full")->id, trunc = walk("trunc")->id, empty = walk("empty")->id;
  auto t = calls_of([&] { EXPECT_EQ(setattr_mode(full, 0600), 0); });
  EXPECT_EQ(count_of(t, "fsync"), 1) << ::testing::PrintToString(t);
  t = calls_of([&] { EXPECT_EQ(setattr_mode(empty, 0600), 0); });
  EXPECT_EQ(count_of(t, "fsync"), 0) << ::testing::PrintToString(t);
  t = calls_of([&] {
    auto r = fs->open(trunc, O_WRONLY | O_TRUNC, Ctx{});
    ASSERT_TRUE(r.ok()) << r.err();
    fs->release(std::move(r.value()));
  });
  EXPECT_EQ(count_of(t, "fsync"), 0) << ::testing::PrintToString(t);
  EXPECT_EQ(read_file(br(0) + "/full"), "data");
  EXPECT_EQ(read_file(br(0) + "/trunc"), "");
  EXPECT_EQ(read_file(br(1) + "/trunc"), "data");
  struct stat st;
  ASSERT_EQ(::stat((br(0) + "/empty").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

// chmod goes by the file's own descriptor: its parent is not opened.
TEST_F(FaultTest, ChmodOfAWritableBranchFileOpensNoParent) {
  make_branches({"rw", "ro"});
  mkdirs(br(0) + "/d");
  write_file(br(0) + "/d/f", "f");
  mount();
  NodeId id = walk("d/f")->id;
  auto t = calls_of([&] { EXPECT_EQ(setattr_mode(id, 0640), 0); });
  std::string all;
  for (auto& c : t) all += " " + c;
  // Its check on the writable branch, the chmod, its attributes after.
  EXPECT_EQ(count_of(t, "openat2"), 3) << all;
  struct stat st;
  ASSERT_EQ(::stat((br(0) + "/d/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

// Where the branches cannot share extents (ext4, or two file systems), the
// clone is tried once, not at every copy-up.
TEST_F(FaultTest, CopyUpTriesTheCloneOncePerPairOfFileSystems) {
  make_branches({"rw", "ro"});
  write_file(br(1) + "/a", std::string(5000, 'a'));
  write_file(br(1) + "/b", std::string(5000, 'b'));
  mount();
  NodeId a = walk("a")->id, b = walk("b")->id;
  auto first = calls_of([&] { EXPECT_EQ(setattr_mode(a, 0600), 0); });
  auto second = calls_of([&] { EXPECT_EQ(setattr_mode(b, 0600), 0); });
  bool cloned = count_of(first, "ficlone") == 1 && count_of(first, "copy_file_range") == 0;
  EXPECT_EQ(count_of(second, "ficlone"), cloned ? 1 : 0);
  EXPECT_EQ(read_file(br(0) + "/b"), std::string(5000, 'b'));
}
