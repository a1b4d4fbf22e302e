// SPDX-License-Identifier: GPL-2.0-or-later
// aufs-fuse-check: offline consistency check of AUFS branches (auchk).
// Exit status: 0 clean (or everything repaired), 1 problems remain, 2 error.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aufs_fuse/branch_lock.hpp"
#include "aufs_fuse/check.hpp"
#include "aufs_fuse/version.hpp"

int main(int argc, char** argv) {
  bool fix = false, json = false;
  std::vector<std::string> branches;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--fix") fix = true;
    else if (a == "--json") json = true;
    else if (a == "-h" || a == "--help") {
      std::puts("usage: aufs-fuse-check [--fix] [--json] BRANCH...\n"
                "Checks AUFS branches for interrupted-operation leftovers, a name together\n"
                "with its whiteout, malformed whiteouts and stale pseudo-links/orphans.\n"
                "--fix repairs what is safe. Run it on unmounted branches. See aufs-fuse-check(8).");
      return 0;
    } else if (a == "-V" || a == "--version") {
      std::printf("aufs-fuse-check %s\n", AUFS_FUSE_VERSION);
      return 0;
    } else if (a.starts_with("-")) {
      std::fprintf(stderr, "aufs-fuse-check: unknown option '%s'\n", a.c_str());
      return 2;
    } else branches.push_back(a);
  }
  if (branches.empty()) {
    std::fprintf(stderr, "aufs-fuse-check: no branch given (see --help)\n");
    return 2;
  }
  int rc = 0;
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  auto print_json = [&] {
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
  };
  for (const std::string& br : branches) {
    // A branch a live mount writes is that daemon's to repair: --fix takes
    // the mount's lock, held until we exit.
    aufs::BranchLockPtr lock;
    if (fix) {
      std::string why;
      if (lock = aufs::lock_branch(br, why); !lock) {
        std::fprintf(stderr, "aufs-fuse-check: %s; unmount it before --fix\n", why.c_str());
        if (json) {
          out.push_back({{"branch", br}, {"error", why}});
          print_json();
        }
        return 2;
      }
    }
    auto rep = aufs::check_branch(br, fix, fix);
    if (!rep.ok()) {
      std::fprintf(stderr, "aufs-fuse-check: %s: %s\n", br.c_str(), std::strerror(rep.err()));
      if (json) {
        out.push_back({{"branch", br}, {"error", std::strerror(rep.err())}});
        print_json();
      }
      return 2;
    }
    size_t left = 0;
    for (auto& is : rep->issues) left += is.fixed ? 0 : 1;
    if (left) rc = 1;
    if (json) {
      nlohmann::ordered_json issues = nlohmann::ordered_json::array();
      for (auto& is : rep->issues)
        issues.push_back({{"kind", aufs::kind_name(is.kind)}, {"path", is.path}, {"fixed", is.fixed}});
      out.push_back({{"branch", br}, {"dirs", rep->dirs}, {"entries", rep->entries}, {"issues", issues}});
    } else {
      for (auto& is : rep->issues)
        std::printf("%s: %s %s%s\n", br.c_str(), aufs::kind_name(is.kind), is.path.c_str(),
                    is.fixed ? " (repaired)" : "");
      std::printf("%s: %llu dirs, %llu entries, %zu issues, %zu left\n", br.c_str(),
                  static_cast<unsigned long long>(rep->dirs),
                  static_cast<unsigned long long>(rep->entries), rep->issues.size(), left);
    }
  }
  if (json) print_json();
  return rc;
}
