// SPDX-License-Identifier: GPL-2.0-or-later
// The options aufs-fuse(8) documents are the options the parser accepts:
// every option named by a tagged paragraph (.TP) of its OPTIONS section is
// parsed with a sample value, and must be accepted, or refused with the
// reason the page gives for it, never as unknown.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "aufs_fuse/options.hpp"

namespace aufs {
namespace {

// Option words of one .TP tag line: roff fonts, quotes and separators
// dropped; placeholders are upper case and do not match; in
// "udba=reval | notify", the words after '|' are values, not options.
std::vector<std::string> option_words(std::string line) {
  line = std::regex_replace(line, std::regex(R"(^\.[A-Z]+\s*)"), "");
  line = std::regex_replace(line, std::regex(R"(\\f[A-Z]|\\-|\\c|\\&)"), " ");
  line = std::regex_replace(line, std::regex(R"(\|)"), " | ");
  std::vector<std::string> out;
  static const std::regex word(R"([a-z][a-z0-9_]*(=|:)?)");
  std::string tok;
  bool values = false;  // after KEY=VALUE, alternatives are values
  std::istringstream in(std::regex_replace(line, std::regex(R"([",\s]+)"), " "));
  while (in >> tok) {
    if (tok == "|") continue;
    std::smatch m;
    if (!std::regex_search(tok, m, word) || m.position(0) != 0) continue;
    bool with_value = m.str(0).back() == '=' && m.length(0) < static_cast<long>(tok.size());
    if (values && m.str(0).back() != '=') continue;
    values = with_value;
    out.push_back(m.str(0));
  }
  return out;
}

// The .TP tags of aufs-fuse(8)'s OPTIONS section, with the subsection each
// is in.
std::vector<std::pair<std::string, std::string>> documented_options(const std::string& page) {
  std::ifstream in(page);
  std::vector<std::pair<std::string, std::string>> out;
  std::string line, section, sub;
  bool tag_next = false;
  int indent = 0;  // .RS blocks: tags there describe values
  while (std::getline(in, line)) {
    if (line.starts_with(".SH ")) section = line.substr(4);
    if (line.starts_with(".SS ")) sub = line.substr(4);
    if (section != "OPTIONS") continue;
    if (line.starts_with(".RS")) ++indent;
    if (line.starts_with(".RE")) --indent;
    if (line == ".TP" && indent == 0) {
      tag_next = true;
      continue;
    }
    if (!tag_next) continue;
    tag_next = false;
    for (auto& w : option_words(line)) out.emplace_back(w, sub);
  }
  return out;
}

TEST(ManPage, EveryDocumentedDaemonOptionIsAccepted) {
  const char* dir = std::getenv("AUFS_MAN_DIR");
  if (!dir || !*dir) GTEST_SKIP() << "AUFS_MAN_DIR is not set (meson test sets it)";
  auto opts = documented_options(std::string(dir) + "/aufs-fuse.8");
  ASSERT_GT(opts.size(), 40u) << "the OPTIONS section was not found or not parsed";
  // A sample value for options that need one; 1 for the others.
  const std::map<std::string, std::string> sample = {
      {"br", "/a"}, {"dirs", "/a"}, {"udba", "reval"}, {"create", "tdp"}, {"cpup", "tdp"},
      {"diropq", "w"}, {"xino", "/dev/shm/x"}, {"fsname", "x"}, {"subtype", "x"},
      {"create_policy", "tdp"}, {"copyup", "tdp"}, {"copyup_policy", "tdp"},
      {"passthrough", "rw"}, {"readdirplus", "auto"}};
  std::set<std::string> seen;
  for (auto& [w, sub] : opts) {
    bool has_val = w.back() == '=' || w.back() == ':';
    std::string key = has_val ? w.substr(0, w.size() - 1) : w;
    if (!seen.insert(key).second) continue;
    std::string item = key;
    if (has_val) item += "=" + (sample.count(key) ? sample.at(key) : std::string("1"));
    if (key == "shwh") item += ",ro";  // documented as shwh with ro
    SCOPED_TRACE(item + " (" + sub + ")");
    auto r = parse_command_line({"-o", (key == "br" || key == "dirs" ? "" : "br=/a,") + item, "m"});
    EXPECT_EQ(r.error.find("unknown option"), std::string::npos) << r.error;
    if (sub.find("not supported") == std::string::npos) {
      EXPECT_TRUE(r.ok()) << r.error;
    }
  }
  EXPECT_TRUE(seen.count("debug")) << "-o debug is documented";
  EXPECT_TRUE(seen.count("max_threads")) << "second spellings are read too";
  EXPECT_TRUE(seen.count("udba"));
}

}  // namespace
}  // namespace aufs
