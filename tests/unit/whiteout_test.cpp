// SPDX-License-Identifier: GPL-2.0-or-later
#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "aufs_fuse/whiteout.hpp"

using namespace aufs;

TEST(Whiteout, Names) {
  EXPECT_EQ(wh::whiteout_of("x"), ".wh.x");
  EXPECT_EQ(wh::whiteout_target(".wh.x"), "x");
  EXPECT_EQ(wh::whiteout_target(".wh..wh..opq"), "");
  EXPECT_EQ(wh::whiteout_target("x"), "");
  EXPECT_TRUE(wh::is_whiteout_name(".wh..wh.aufs"));
  EXPECT_TRUE(wh::is_meta_name(".wh..wh.plnk"));
  EXPECT_FALSE(wh::is_meta_name(".wh.x"));
}

TEST(Whiteout, TempNamesAreHiddenAndFit) {
  std::string n(242, 'a');
  std::string t = wh::temp_name(n, 0x1abcd);
  EXPECT_EQ(t.size(), 255u);
  EXPECT_TRUE(wh::is_temp_name(t));
  EXPECT_TRUE(t.ends_with(".abcd"));
  EXPECT_FALSE(wh::is_temp_name(std::string(wh::kOpaque)));
}

TEST(Whiteout, UserNameRules) {
  EXPECT_EQ(wh::check_user_name("ok"), 0);
  EXPECT_EQ(wh::check_user_name(".wh.x"), EPERM);
  EXPECT_EQ(wh::check_user_name(".wh.x", true), 0);
  EXPECT_EQ(wh::check_user_name(std::string(242, 'a')), 0);
  EXPECT_EQ(wh::check_user_name(std::string(243, 'a')), ENAMETOOLONG);
  // ENAMETOOLONG is checked first.
  EXPECT_EQ(wh::check_user_name(".wh." + std::string(250, 'a')), ENAMETOOLONG);
  EXPECT_EQ(wh::check_user_name(".whx"), 0);
}
