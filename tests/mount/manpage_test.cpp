// SPDX-License-Identifier: GPL-2.0-or-later
// Documentation checks: every page in man/ (enumerated at run time, so new
// pages are covered) renders without groff or man warnings and is installed
// by `meson install`; the required pages exist; the daemon's options are all
// in aufs-fuse(8), and aufs-fuse-image(8) documents exactly the options of
// the tool's --help; README shows the mount(8) and fstab use.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <regex>
#include <set>
#include <sstream>

#include "mount_fixture.hpp"

namespace aufs::mt {
namespace {

std::string env_or_empty(const char* k) {
  const char* v = std::getenv(k);
  return v ? v : "";
}

std::string man_dir() { return env_or_empty("AUFS_MAN_DIR"); }

// man/*.[1-8], sorted.
std::vector<std::string> man_pages() {
  std::vector<std::string> out;
  static const std::regex page(R"(.+\.[1-8])");
  for (auto& n : list_dir(man_dir()))
    if (std::regex_match(n, page)) out.push_back(n);
  return out;
}

class ManPages : public ::testing::Test {
 protected:
  void SetUp() override {
    if (man_dir().empty())
      GTEST_SKIP() << "AUFS_MAN_DIR is not set (meson test sets it to the source's man/)";
    ASSERT_TRUE(exists(man_dir())) << man_dir();
    pages_ = man_pages();
    ASSERT_FALSE(pages_.empty()) << "no man pages in " << man_dir();
  }
  std::string path(const std::string& name) const { return man_dir() + "/" + name; }
  std::vector<std::string> pages_;
};

TEST_F(ManPages, RequiredPagesExist) {
  for (const char* name :
       {"aufs-fuse.8", "aufs-fuse.5", "mount.aufs.8", "aufsctl.8", "aufs-fuse-image.8"})
    EXPECT_NE(std::find(pages_.begin(), pages_.end(), name), pages_.end())
        << name << " missing from " << man_dir();
}

TEST_F(ManPages, GroffLintIsClean) {
  if (!sh("command -v groff").ok()) GTEST_SKIP() << "groff is not installed";
  for (auto& name : pages_) {
    SCOPED_TRACE(name);
    std::string text = read_file(path(name));
    ASSERT_FALSE(text.empty());
    // Pages that use tables say so on their first line ('\" t).
    std::vector<std::string> argv = {"groff", "-ww", "-z", "-man"};
    if (text.starts_with("'\\\" t") || text.starts_with(".\\\" t")) argv.push_back("-t");
    argv.push_back(path(name));
    auto r = run(argv);
    EXPECT_EQ(r.exit_code, 0) << r;
    EXPECT_EQ(r.err, "") << r;
    // The section in .TH matches the file name.
    std::smatch mt;
    std::string sect = name.substr(name.rfind('.') + 1);
    ASSERT_TRUE(std::regex_search(text, mt, std::regex(R"re((^|\n)\.TH +"?[^ "]+"? +"?([1-8])"?)re")))
        << "no .TH line";
    EXPECT_EQ(mt[2].str(), sect) << ".TH section differs from the file name";
  }
}

TEST_F(ManPages, ManRendersWithoutWarnings) {
  if (!sh("command -v man").ok()) GTEST_SKIP() << "man is not installed";
  for (auto& name : pages_) {
    SCOPED_TRACE(name);
    auto r = sh("MANWIDTH=80 MAN_KEEP_FORMATTING=0 man --warnings -l " + q(path(name)) +
                " >/dev/null");
    EXPECT_EQ(r.exit_code, 0) << r;
    EXPECT_EQ(r.err, "") << r;
  }
}

TEST_F(ManPages, EveryPageIsInstalled) {
  std::string build = env_or_empty("AUFS_BUILD_DIR");
  if (build.empty()) GTEST_SKIP() << "AUFS_BUILD_DIR is not set";
  std::string installed = read_file(build + "/meson-info/intro-installed.json");
  ASSERT_FALSE(installed.empty()) << "cannot read " << build << "/meson-info/intro-installed.json";
  // aufs-fuse-image(8) goes with the tool: installed exactly when it is built.
  bool image_built = !env_or_empty("AUFS_FUSE_IMAGE_BIN").empty();
  for (auto& name : pages_) {
    std::string sect = name.substr(name.rfind('.') + 1);
    std::string src = "\"" + path(name) + "\"";
    auto at = installed.find(src);
    if (name == "aufs-fuse-image.8" && !image_built) {
      EXPECT_EQ(at, std::string::npos) << name << " is installed without the tool";
      continue;
    }
    EXPECT_NE(at, std::string::npos) << name << " is not installed by meson install";
    if (at == std::string::npos) continue;
    auto end = installed.find_first_of(",}", at);
    std::string entry = installed.substr(at, end - at);
    EXPECT_NE(entry.find("/man" + sect + "/" + name + "\""), std::string::npos)
        << name << " installed to the wrong place: " << entry;
  }
}

TEST_F(ManPages, DaemonPageDocumentsEveryOption) {
  std::string page = read_file(path("aufs-fuse.8"));
  ASSERT_FALSE(page.empty());
  // Options as the daemon's --help lists them ("key=..." or bare words).
  auto help = run({daemon_binary(), "--help"});
  ASSERT_TRUE(help.ok()) << help;
  std::string opts = help.out.substr(help.out.find("Options:"));
  opts = opts.substr(0, opts.find("See aufs-fuse"));
  std::set<std::string> keys;
  static const std::regex word(R"(([a-z_]+)(=|\||,|\.|\s))");
  for (auto it = std::sregex_iterator(opts.begin(), opts.end(), word); it != std::sregex_iterator();
       ++it) {
    std::string k = (*it)[1];
    if (k == "and" || k == "options" || k == "none" || k == "reval" || k == "notify" || k == "w" ||
        k == "a" || k == "ro" || k == "rw" || k.size() < 2)
      continue;
    keys.insert(k);
  }
  for (const char* k : {"br", "dirs", "udba", "lowerdir", "upperdir", "workdir", "ro", "rw"})
    keys.insert(k);
  ASSERT_GT(keys.size(), 20u);
  // groff escapes '-' as '\-'; underscores and '=' are literal.
  std::string plain = std::regex_replace(page, std::regex(R"(\\-)"), "-");
  plain = std::regex_replace(plain, std::regex(R"(\\f[BIRP])"), "");
  for (auto& k : keys)
    EXPECT_TRUE(std::regex_search(plain, std::regex("(^|[^a-z_])" + k + "([^a-z_]|$)")))
        << "aufs-fuse(8) does not mention option '" << k << "'";
  // Overlay-style options keep AUFS whiteouts: the page must say so.
  EXPECT_NE(plain.find("lowerdir"), std::string::npos);
  EXPECT_TRUE(std::regex_search(plain, std::regex("[Ww]hiteout")));
}

// The options of `aufs-fuse-image --help` and the option items (.TP
// headings) of aufs-fuse-image(8) are the same set: none undocumented, none
// documented that the tool does not have.
TEST_F(ManPages, ImagePageDocumentsEveryOption) {
  std::string bin = env_or_empty("AUFS_FUSE_IMAGE_BIN");
  if (bin.empty()) GTEST_SKIP() << "aufs-fuse-image not built (AUFS_FUSE_IMAGE_BIN unset)";
  auto help = run({bin, "--help"});
  ASSERT_TRUE(help.ok()) << help;
  static const std::regex opt(R"(--?[a-z][a-z-]*)");
  std::set<std::string> in_help, in_page;
  // Help lines that describe an option start with blanks and the option.
  std::istringstream hl(help.out);
  for (std::string line; std::getline(hl, line);) {
    static const std::regex item(R"(^\s+((--?[a-z][a-z-]*)(, --?[a-z][a-z-]*)?)\s)");
    std::smatch m;
    if (!std::regex_search(line, m, item)) continue;
    std::string names = m[1];
    for (auto it = std::sregex_iterator(names.begin(), names.end(), opt);
         it != std::sregex_iterator(); ++it)
      in_help.insert(it->str());
  }
  ASSERT_GE(in_help.size(), 9u) << help.out;
  std::string page = read_file(path("aufs-fuse-image.8"));
  ASSERT_FALSE(page.empty());
  std::string plain = std::regex_replace(page, std::regex(R"(\\-)"), "-");
  std::istringstream pl(plain);
  bool heading = false, in_options = false;
  for (std::string line; std::getline(pl, line);) {
    if (line.starts_with(".SH")) in_options = line == ".SH OPTIONS";
    if (in_options && heading) {
      // ".BI --rw " DIR"", ".BR -h ", " --help" (operands are upper case).
      static const std::regex word(R"((^|[ "])(--?[a-z][a-z-]*))");
      for (auto it = std::sregex_iterator(line.begin(), line.end(), word);
           it != std::sregex_iterator(); ++it)
        in_page.insert((*it)[2].str());
    }
    heading = line == ".TP";
  }
  EXPECT_EQ(in_page, in_help) << "aufs-fuse-image(8) OPTIONS vs --help";
}

TEST(Docs, ReadmeShowsMountAndFstab) {
  std::string dir = man_dir();
  if (dir.empty()) GTEST_SKIP() << "AUFS_MAN_DIR is not set";
  std::string readme = read_file(dir + "/../README.md");
  ASSERT_FALSE(readme.empty());
  EXPECT_NE(readme.find("mount -t aufs"), std::string::npos);
  EXPECT_TRUE(std::regex_search(readme, std::regex(R"(none\s+\S+\s+aufs\s+\S+)")))
      << "README has no fstab line of type aufs";
  EXPECT_NE(readme.find("remount"), std::string::npos);
  EXPECT_NE(readme.find("aufsctl"), std::string::npos);
}

}  // namespace
}  // namespace aufs::mt
