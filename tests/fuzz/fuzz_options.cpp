// SPDX-License-Identifier: GPL-2.0-or-later
// libFuzzer target: the mount option and branch parsers
// (include/aufs_fuse/options.hpp). The input is split into a mode byte and
// text. Checked beyond "no crash, no sanitizer report":
//  * parse_branch_ops -> format_branch_ops -> parse_branch_ops gives the
//    same operations (for paths the syntax can carry unquoted);
//  * split_options never yields a piece with an unquoted comma;
//  * a successful parse_command_line has a branch list and a mount point,
//    and every branch path is non-empty.
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <vector>

#include "aufs_fuse/options.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& in) {
  std::fprintf(stderr, "fuzz_options: invariant broken: %s\ninput: '%s'\n", what, in.c_str());
  std::abort();
}

bool same_spec(const aufs::BranchSpec& a, const aufs::BranchSpec& b) {
  return a.path == b.path && a.perm == b.perm && a.wh == b.wh && a.nolwh == b.nolwh &&
         a.perm_given == b.perm_given && a.coo == b.coo && a.icex == b.icex;
}

bool plain_path(const std::string& p) {
  return p.find_first_of(",\":=") == std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const unsigned mode = data[0] % 5;
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (mode) {
    case 0: {
      aufs::MountOptions o;
      (void)aufs::apply_option_string(o, text);
      for (auto& b : o.branches)
        if (b.path.empty()) fail("empty branch path accepted", text);
      break;
    }
    case 1: {
      // argv separated by newlines.
      std::vector<std::string> args;
      size_t pos = 0;
      while (pos <= text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        args.push_back(text.substr(pos, nl - pos));
        pos = nl + 1;
      }
      auto r = aufs::parse_command_line(args);
      if (r.ok() && !r.opts.show_help && !r.opts.show_version) {
        for (auto& b : r.opts.branches)
          if (b.path.empty()) fail("empty branch path accepted", text);
      }
      break;
    }
    case 2: {
      std::vector<aufs::BranchSpec> out;
      std::vector<std::string> notes;
      auto e = aufs::parse_branches(text, (data[0] / 5) & 1, out, notes);
      if (e.empty())
        for (auto& b : out)
          if (b.path.empty()) fail("empty branch path accepted", text);
      break;
    }
    case 3: {
      std::vector<aufs::BranchOp> ops;
      auto e = aufs::parse_branch_ops(text, (data[0] / 5) & 1, ops);
      if (!e.empty()) break;
      bool plain = true;
      for (auto& op : ops) plain = plain && plain_path(op.spec.path);
      if (!plain) break;
      std::string f = aufs::format_branch_ops(ops);
      std::vector<aufs::BranchOp> again;
      auto e2 = aufs::parse_branch_ops(f, (data[0] / 5) & 1, again);
      if (!e2.empty()) fail(("formatted ops do not parse: " + f + ": " + e2).c_str(), text);
      if (again.size() != ops.size()) fail(("round trip changed the op count: " + f).c_str(), text);
      for (size_t i = 0; i < ops.size(); ++i) {
        if (again[i].kind != ops[i].kind || again[i].index != ops[i].index ||
            !same_spec(again[i].spec, ops[i].spec))
          fail(("round trip changed an op: " + f).c_str(), text);
      }
      break;
    }
    case 4: {
      for (auto& piece : aufs::split_options(text)) {
        if (piece.find('"') != std::string::npos) fail("quote left in a piece", text);
      }
      (void)aufs::is_mount_helper_option(text);
      break;
    }
  }
  return 0;
}
