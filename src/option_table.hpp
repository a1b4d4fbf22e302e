// SPDX-License-Identifier: GPL-2.0-or-later
// The daemon's -o options as one table: the parser (options.cpp) and --help
// read it, so an option is declared once with its spellings, its argument
// and its help.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "aufs_fuse/options.hpp"

namespace aufs {

// One -o item as given: key, its value (if any), and the whole item.
struct OptionArg {
  std::string key;
  std::string_view val;
  bool has_val = false;
  std::string_view item;
  std::string bad(const char* what) const {
    return "option '" + key + "': invalid value '" + std::string(val) + "' (" + what + ")";
  }
};

struct OptionDef {
  std::string_view names;  // spellings, '|'-separated
  enum class Arg {
    None,     // a bare word; with a value it is no option of ours
    Ignored,  // a value, if any, is ignored
    Any,      // the value, possibly empty, goes to apply
    Required,  // "needs a value" without one
    KeyValue   // a KEY=VALUE option; a bare word is no option of ours
  } arg;
  // --help's words for it; empty: not listed (an alias, or listed elsewhere).
  std::string_view help;
  // Applies the option; an error message or "".
  std::string (*apply)(MountOptions& o, const OptionArg& a);
};

const std::vector<OptionDef>& option_table();
// A whole decimal number in [0, max].
bool parse_uint(std::string_view s, long long max, long long& out);
// The table entry for key given with or without a value (null: unknown).
const OptionDef* find_option(std::string_view key, bool has_val);
// --help's "Options:" lines, wrapped.
std::string option_help();

}  // namespace aufs
