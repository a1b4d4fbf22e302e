// SPDX-License-Identifier: GPL-2.0-or-later
#include <gtest/gtest.h>

#include "aufs_fuse/dirren.hpp"

using namespace aufs;

TEST(Dirren, EscapeRoundTrip) {
  std::string odd = std::string("a b%c\n\x01\xff") + "/d";
  std::string e = dirren::escape(odd);
  EXPECT_EQ(e.find(' '), std::string::npos);
  EXPECT_EQ(e.find('\n'), std::string::npos);
  auto back = dirren::unescape(e);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back.value(), odd);
  EXPECT_EQ(dirren::escape("plain/path"), "plain/path");
  EXPECT_FALSE(dirren::unescape("%4").ok());
  EXPECT_FALSE(dirren::unescape("%zz").ok());
  EXPECT_FALSE(dirren::unescape("a b").ok());
}

TEST(Dirren, EncodeDecodeRoundTrip) {
  std::vector<dirren::Entry> es = {{64769, 2, 1234, "/var/lib/low er", "a/b c"},
                                   {42, 128, 99, "/l2", "x"}};
  std::string t = dirren::encode(es);
  EXPECT_TRUE(t.starts_with("aufs-fuse-dirren 1\n"));
  auto d = dirren::decode(t);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d.value(), es);
  auto empty = dirren::decode(dirren::encode({}));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(Dirren, DecodeRefusesMalformed) {
  for (std::string_view bad : {
           "",                                     // nothing
           "aufs-fuse-dirren 2\n",                 // unknown version
           "adr\x01",                              // AUFS's binary record
           "aufs-fuse-dirren 1\n1 2 3 /b a",       // torn last line
           "aufs-fuse-dirren 1\n1 2 /b a\n",       // missing field
           "aufs-fuse-dirren 1\n1 2 3 /b a x\n",   // extra field
           "aufs-fuse-dirren 1\nx 2 3 /b a\n",     // not a number
           "aufs-fuse-dirren 1\n-1 2 3 /b a\n",    // negative
           "aufs-fuse-dirren 1\n1 2 3 /b ../a\n",  // leaves the branch
           "aufs-fuse-dirren 1\n1 2 3 /b /a\n",    // absolute
           "aufs-fuse-dirren 1\n1 2 3 /b a/..\n",
           "aufs-fuse-dirren 1\n1 2 3 /b %zz\n",
           "aufs-fuse-dirren 1\n1 2 3 /b ..%00x\n",  // NUL: ".." to the kernel
           "aufs-fuse-dirren 1\n1 2 3 /b a%00\n",
           "aufs-fuse-dirren 1\n1 2 3 /b .\n",       // the root itself
           "aufs-fuse-dirren 1\n1 2 3 /b a/./b\n",
           "aufs-fuse-dirren 1\n1 2 3 /b a//b\n",
           "aufs-fuse-dirren 1\n1 2 3 /b a/\n",
       })
    EXPECT_FALSE(dirren::decode(bad).ok()) << bad;
}

TEST(Dirren, RelativePathOk) {
  EXPECT_TRUE(dirren::relative_path_ok("a"));
  EXPECT_TRUE(dirren::relative_path_ok("a/b c/..d"));
  EXPECT_FALSE(dirren::relative_path_ok(""));
  EXPECT_FALSE(dirren::relative_path_ok(std::string_view("..\0x", 4)));
  EXPECT_FALSE(dirren::relative_path_ok("a/../b"));
  EXPECT_FALSE(dirren::relative_path_ok("/a"));
}

TEST(Dirren, MatchByIdentityThenPath) {
  std::vector<dirren::Entry> es = {{1, 2, 10, "/old", "a"}, {3, 4, 11, "/l2", "b"}};
  bool by_path = true;
  auto* e = dirren::match(es, 1, 2, "/moved", &by_path);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->rel, "a");
  EXPECT_FALSE(by_path);
  // Another device number (reboot, other file system): the path decides.
  e = dirren::match(es, 9, 9, "/l2", &by_path);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->rel, "b");
  EXPECT_TRUE(by_path);
  EXPECT_EQ(dirren::match(es, 9, 9, "/other"), nullptr);
}
