// SPDX-License-Identifier: GPL-2.0-or-later
#include <gtest/gtest.h>

#include "aufs_fuse/options.hpp"

using namespace aufs;

namespace {
ParseResult parse(std::vector<std::string> a) { return parse_command_line(a); }
}  // namespace

TEST(Options, DefaultPermsFirstRwRestRo) {
  auto r = parse({"-o", "dirs=./a:./b:./c", "mnt"});
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.opts.branches.size(), 3u);
  EXPECT_EQ(r.opts.branches[0].perm, Perm::RW);
  EXPECT_EQ(r.opts.branches[1].perm, Perm::RO);
  EXPECT_EQ(r.opts.branches[2].perm, Perm::RO);
  EXPECT_FALSE(r.opts.branches[1].wh_able());
  EXPECT_EQ(r.opts.mountpoint, "mnt");
}

TEST(Options, BrColonAndEqualAreAliases) {
  auto a = parse({"-o", "br:/x=rw:/y=ro+wh", "m"});
  auto b = parse({"-o", "br=/x=rw:/y=ro+wh", "m"});
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a.opts.branches.size(), 2u);
  EXPECT_EQ(a.opts.branches[1].path, "/y");
  EXPECT_TRUE(a.opts.branches[1].wh);
  EXPECT_EQ(format_perm(a.opts.branches[1]), "ro+wh");
  EXPECT_EQ(format_perm(b.opts.branches[1]), "ro+wh");
}

TEST(Options, PermsAndAttrs) {
  auto r = parse({"-o", "br=/a=rw+nolwh:/b=rr+wh:/c=rr:/d=ro", "m"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.opts.branches[0].nolwh);
  EXPECT_EQ(format_perm(r.opts.branches[0]), "rw+nolwh");
  EXPECT_EQ(r.opts.branches[1].perm, Perm::RR);
  EXPECT_TRUE(r.opts.branches[1].wh_able());
  EXPECT_FALSE(r.opts.branches[2].wh_able());
  EXPECT_FALSE(r.opts.branches[3].wh_able());
}

TEST(Options, SharedAttributeOnRwBranchesOnly) {
  auto r = parse({"-o", "br=/a=rw+shared:/b=ro+shared", "m"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.opts.branches[0].shared);
  EXPECT_EQ(format_perm(r.opts.branches[0]), "rw+shared");
  EXPECT_FALSE(r.opts.branches[1].shared);
  EXPECT_EQ(r.opts.notices,
            std::vector<std::string>{"branch '/b': attribute 'shared' ignored on a read-only branch"});
}

TEST(Options, InvalidAttrForPermIsDroppedWithNotice) {
  auto r = parse({"-o", "br=/a=rw+wh:/b=ro+nolwh", "m"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_FALSE(r.opts.branches[0].wh);
  EXPECT_FALSE(r.opts.branches[1].nolwh);
  EXPECT_EQ(r.opts.notices.size(), 2u);
}

TEST(Options, ReadOnlyMountMakesFirstBranchRo) {
  auto r = parse({"-o", "br=/a:/b,ro", "m"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.opts.branches[0].perm, Perm::RO);
  EXPECT_TRUE(r.opts.read_only);
}

TEST(Options, EmptyElementEndsTheList) {
  auto r = parse({"-o", "br=/a::/b", "m"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.opts.branches.size(), 1u);
}

TEST(Options, Errors) {
  struct Case {
    std::vector<std::string> args;
    const char* needle;
  } cases[] = {
      {{"-o", "br=/a", "-o", "bogus", "m"}, "unknown option 'bogus'"},
      {{"-o", "br=/a=xx", "m"}, "unknown permission 'xx'"},
      {{"-o", "br=/a=ro+zz", "m"}, "unknown attribute 'zz'"},
      {{"-o", "br=/a=rw+fhsm", "m"}, "not supported"},
      {{"m"}, "no branches"},
      {{"-o", "br=/a"}, "no mount point"},
      {{"-o", "br=/a", "s", "m", "n"}, "too many arguments"},
      {{"-o", "br=/a,bogus=1", "m"}, "unknown option 'bogus=1'"},
      {{"-o", "br=/a,udba=sometimes", "m"}, "invalid value"},
      {{"-o", "br=/a,udba", "m"}, "invalid value"},
      {{"-o", "br=/a,create=bogus", "m"}, "unknown policy"},
      {{"-o", "br=/a,create=mfs:4000", "m"}, "0..3600"},
      {{"-o", "br=/a,create=mfsrr", "m"}, "LOW"},
      {{"-o", "br=/a,cpup=up", "m"}, "unknown policy"},
      {{"-o", "br=/a,list_plink", "m"}, "not supported"},
      {{"-o", "br=/a,br=/b", "m"}, "twice"},
      {{"-o", "br=/a,rdcache=9999", "m"}, "invalid value"},
      {{"-o", "br=/a,threads=0", "m"}, "invalid value"},
      {{"-o", "br==rw", "m"}, "empty branch path"},
      {{"-x", "m"}, "unknown option '-x'"},
      {{"-o"}, "needs a value"},
  };
  for (auto& c : cases) {
    auto r = parse(c.args);
    EXPECT_FALSE(r.ok()) << c.needle;
    EXPECT_NE(r.error.find(c.needle), std::string::npos) << r.error;
    EXPECT_EQ(r.error.find('\n'), std::string::npos) << "one line: " << r.error;
  }
}

TEST(Options, ObsoleteIgnoredWithNotice) {
  auto r = parse({"-o", "br=/a,clean_plink,si=1234,relatime", "m"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.opts.notices.size(), 3u);
}

// -o debug is -d, as in every FUSE tool; libfuse's other options are
// accepted with a notice or refused with a reason, never "unknown option".
TEST(Options, GenericFuseOptionsSayWhy) {
  auto r = parse({"-o", "br=/a,debug", "m"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.opts.debug);
  EXPECT_TRUE(r.opts.foreground);
  EXPECT_TRUE(r.opts.notices.empty());
  r = parse({"-o", "br=/a,nonempty,kernel_cache,use_ino,max_write=131072,big_writes", "m"});
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.opts.notices.size(), 5u);
  EXPECT_EQ(r.opts.notices[0],
            "FUSE option 'nonempty' ignored: FUSE 3 mounts over a non-empty directory anyway");
  EXPECT_TRUE(r.opts.fuse_opts.empty());
  for (const char* o : {"umask=022", "uid=0", "modules=subdir", "direct_io", "blkdev", "fd=3"}) {
    r = parse({"-o", std::string("br=/a,") + o, "m"});
    EXPECT_FALSE(r.ok()) << o;
    EXPECT_NE(r.error.find("is not supported: "), std::string::npos) << r.error;
    EXPECT_EQ(r.error.find("unknown"), std::string::npos) << r.error;
  }
}

TEST(Options, FusePassThroughAndTuning) {
  auto r = parse({"-f", "-o", "br=/a,allow_other,fsname=x,nosuid,entry_timeout=2.5,udba=none,diropq=a,sum,xino=/dev/shm/x,dio", "m"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.opts.foreground);
  EXPECT_EQ(r.opts.fuse_opts, (std::vector<std::string>{"allow_other", "fsname=x", "nosuid"}));
  EXPECT_DOUBLE_EQ(r.opts.entry_timeout, 2.5);
  EXPECT_EQ(r.opts.udba, Udba::None);
  EXPECT_TRUE(r.opts.diropq_always);
  EXPECT_TRUE(r.opts.sum);
  EXPECT_EQ(r.opts.xino_path, "/dev/shm/x");
  EXPECT_EQ(r.opts.readdirplus, PlusMode::Auto);
  for (auto [v, mode] : {std::pair{"full", PlusMode::Full}, {"off", PlusMode::Off}, {"auto", PlusMode::Auto}}) {
    auto q = parse({"-o", std::string("br=/a,readdirplus=") + v, "m"});
    ASSERT_TRUE(q.ok()) << q.error;
    EXPECT_EQ(q.opts.readdirplus, mode) << v;
  }
  auto bad = parse({"-o", "br=/a,readdirplus=yes", "m"});
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.error.find("auto, full or off"), std::string::npos) << bad.error;
}

TEST(Options, SourceArgumentAndMountHelperOptions) {
  auto r = parse({"none", "m", "-o", "br=/a,defaults,nofail,_netdev,x-systemd.automount,noauto"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.opts.source, "none");
  EXPECT_EQ(r.opts.mountpoint, "m");
  // A source other than "none" without br= is the branch list (fstab use).
  auto s = parse({"/up=rw:/low=ro+wh", "m"});
  ASSERT_TRUE(s.ok()) << s.error;
  ASSERT_EQ(s.opts.branches.size(), 2u);
  EXPECT_TRUE(s.opts.branches[1].wh);
}

TEST(Options, QuotedValuesKeepCommas) {
  auto v = split_options("br=\"/a,b=rw:/c\",ro");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0], "br=/a,b=rw:/c");
  EXPECT_EQ(v[1], "ro");
}

TEST(Options, BranchOps) {
  std::vector<BranchOp> ops;
  ASSERT_EQ(parse_branch_ops("remount,append:/x=ro+wh,prepend:/p,add:1:/y,ins:2:/z=rr,del:/d,mod:/m=ro", false, ops), "");
  ASSERT_EQ(ops.size(), 6u);
  EXPECT_EQ(ops[0].index, -1);
  EXPECT_TRUE(ops[0].spec.wh);
  EXPECT_EQ(ops[1].index, 0);
  EXPECT_EQ(ops[1].spec.perm, Perm::RW) << "prepend defaults to rw";
  EXPECT_EQ(ops[2].index, 1);
  EXPECT_EQ(ops[2].spec.perm, Perm::RO) << "other positions default to ro";
  EXPECT_EQ(ops[3].spec.perm, Perm::RR);
  EXPECT_EQ(ops[4].kind, BranchOp::Kind::Del);
  EXPECT_EQ(ops[4].spec.path, "/d");
  EXPECT_EQ(ops[5].kind, BranchOp::Kind::Mod);
  std::vector<BranchOp> bad;
  EXPECT_NE(parse_branch_ops("mod:/m", false, bad), "");
  EXPECT_NE(parse_branch_ops("add:x:/m", false, bad), "");
  EXPECT_NE(parse_branch_ops("udba=none", false, bad), "");
  std::vector<BranchOp> neg;
  ASSERT_EQ(parse_branch_ops("add:-1:/m", false, neg), "");
  EXPECT_LT(neg[0].index, -1);
}

TEST(Options, HelpAndVersionNeedNothingElse) {
  EXPECT_TRUE(parse({"--help"}).opts.show_help);
  EXPECT_TRUE(parse({"-V"}).opts.show_version);
}

TEST(Options, OverlayStyleMapsToBranches) {
  auto r = parse({"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w", "m"});
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.opts.branches.size(), 3u);
  EXPECT_EQ(r.opts.branches[0].path, "/u");
  EXPECT_EQ(format_perm(r.opts.branches[0]), "rw");
  EXPECT_EQ(format_perm(r.opts.branches[1]), "ro+wh+ovl");
  EXPECT_EQ(r.opts.branches[2].path, "/l2");
  // ovl: read-only branches only.
  auto o = parse({"-o", "br=/a=rw+ovl:/b=ro+ovl:/c=rr+ovl", "m"});
  ASSERT_TRUE(o.ok()) << o.error;
  EXPECT_EQ(format_perm(o.opts.branches[0]), "rw");
  EXPECT_EQ(format_perm(o.opts.branches[1]), "ro+ovl");
  EXPECT_EQ(format_perm(o.opts.branches[2]), "rr+ovl");
  EXPECT_TRUE(o.opts.branches[1].wh_able());
  auto ro = parse({"-o", "lowerdir=/l1:/l2", "m"});
  ASSERT_TRUE(ro.ok());
  EXPECT_TRUE(ro.opts.read_only);
  EXPECT_FALSE(parse({"-o", "upperdir=/u", "m"}).ok());
  EXPECT_FALSE(parse({"-o", "br=/a,lowerdir=/b", "m"}).ok());
}

TEST(Options, BranchEditsAtMountTime) {
  auto r = parse({"-o", "br=/a:/b,append:/c=ro+wh,prepend:/p=ro,add:1:/q,del:/b,mod:/a=ro", "m"});
  ASSERT_TRUE(r.ok()) << r.error;
  std::vector<std::string> got;
  for (auto& b : r.opts.branches) got.push_back(b.path + "=" + format_perm(b));
  EXPECT_EQ(got, (std::vector<std::string>{"/p=ro", "/q=ro", "/a=ro", "/c=ro+wh"}));
  EXPECT_FALSE(parse({"-o", "br=/a,add:5:/x", "m"}).ok());
  EXPECT_FALSE(parse({"-o", "br=/a,del:/zz", "m"}).ok());
}

TEST(Options, BranchOpsRoundTripAndModes) {
  std::vector<BranchOp> ops;
  ASSERT_EQ(parse_branch_ops("append:/x=ro+wh,add:2:/y,del:/z,mod:/m=rw,ro,rw", false, ops), "");
  ASSERT_EQ(ops.size(), 6u);
  EXPECT_EQ(ops[4].kind, BranchOp::Kind::SetRo);
  EXPECT_EQ(ops[5].kind, BranchOp::Kind::SetRw);
  EXPECT_EQ(format_branch_ops(ops), "append:/x=ro+wh,add:2:/y,del:/z,mod:/m=rw,ro,rw");
}

TEST(Options, BranchAttributes) {
  auto r = parse({"-o", "br=/a=rw+moo+icexsec+icexusr:/b=ro+wh+coo_reg:/c=ro+coo_all+icex:/d=ro+moo", "m"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(format_perm(r.opts.branches[0]), "rw+moo+icexsec+icexusr");
  EXPECT_EQ(format_perm(r.opts.branches[1]), "ro+wh+coo_reg");
  EXPECT_EQ(format_perm(r.opts.branches[2]), "ro+coo_all+icex");
  EXPECT_EQ(r.opts.branches[3].coo, BranchSpec::Coo::None) << "moo needs rw";
  EXPECT_EQ(r.opts.notices.size(), 1u);
}

TEST(Options, AufsFlags) {
  auto r = parse({"-o", "br=/a,ro,dirperm1,shwh,acl,cpup_caps,dirwh=10,rdblk=4096,noplink", "m"});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.opts.dirperm1);
  EXPECT_TRUE(r.opts.shwh);
  EXPECT_TRUE(r.opts.acl);
  EXPECT_TRUE(r.opts.cpup_caps);
  EXPECT_EQ(r.opts.dirwh, 10);
  EXPECT_FALSE(r.opts.plink);
  auto d = parse({"-o", "br=/a", "m"});
  EXPECT_FALSE(d.opts.dirperm1) << "nodirperm1 is the default";
  EXPECT_EQ(d.opts.dirwh, 3);
  EXPECT_FALSE(d.opts.dirren) << "nodirren is the default";
  EXPECT_TRUE(parse({"-o", "br=/a,dirren", "m"}).opts.dirren);
  EXPECT_FALSE(parse({"-o", "br=/a,dirren,nodirren", "m"}).opts.dirren);
  EXPECT_FALSE(parse({"-o", "br=/a,dirren=1", "m"}).ok());
}

TEST(Options, ShwhNeedsReadOnlyAndSourceListIsTheBase) {
  EXPECT_FALSE(parse({"-o", "br=/a,shwh", "m"}).ok());
  auto r = parse({"/a:/b", "m", "-o", "append:/c=ro+wh,del:/b/"});
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.opts.branches.size(), 2u);
  EXPECT_EQ(r.opts.branches[0].path, "/a");
  EXPECT_EQ(r.opts.branches[1].path, "/c");
}

TEST(Options, VolatileAndBack) {
  EXPECT_FALSE(parse({"-o", "br=/x", "m"}).opts.volatile_mode);
  EXPECT_TRUE(parse({"-o", "br=/x,volatile", "m"}).opts.volatile_mode);
  EXPECT_FALSE(parse({"-o", "br=/x,volatile,novolatile", "m"}).opts.volatile_mode);
}
