// SPDX-License-Identifier: GPL-2.0-or-later
// Writable-branch selection (AUFS create= and cpup= policies). Pure: the
// caller describes the branches; no I/O except through `free_bytes`.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace aufs {

enum class CreatePolicy { Tdp, Rr, Mfs, MfsRr, TdMfs, PMfs, PMfsRr };
enum class CpupPolicy { Tdp, Bup, Bu };

struct PolicyConfig {
  CreatePolicy create = CreatePolicy::Tdp;
  CpupPolicy cpup = CpupPolicy::Tdp;
  uint64_t low = 0;   // mfsrr/tdmfs/pmfsrr threshold in bytes
  int mfs_sec = 30;   // how long a most-free-space answer is reused
  bool operator==(const PolicyConfig&) const = default;
};

// Parses "tdp", "rr", "mfs[:sec]", "mfsrr:low[:sec]", "tdmfs:low[:sec]",
// "pmfs[:sec]", "pmfsrr:low[:sec]" (and long forms). Returns an error line.
std::string parse_create_policy(std::string_view s, PolicyConfig& out);
std::string parse_cpup_policy(std::string_view s, PolicyConfig& out);
std::string format_policies(const PolicyConfig& p);

struct BranchFacts {
  std::vector<bool> writable;    // per branch index
  std::vector<bool> has_parent;  // the parent directory exists there
  int parent_top = 0;            // top branch of the parent directory
  // Highest branch where the name is whited out or the parent is opaque;
  // entries must not land below it (-1: none).
  int shadow = -1;
  std::function<uint64_t(int)> free_bytes;  // f_bavail * f_bsize of a branch
};

class PolicyState {
 public:
  explicit PolicyState(PolicyConfig c) : cfg_(c) {}
  const PolicyConfig& config() const { return cfg_; }
  // Branch for a new entry; -1 when no writable branch fits (EROFS).
  // `is_mkdir`: rr does not advance its counter for mkdir (AUFS).
  int select_create(const BranchFacts& f, bool is_mkdir, int64_t now_sec);
  // Branch to copy an entry on branch `src` up to; -1 if none (EROFS).
  int select_cpup(const BranchFacts& f, int src) const;

 private:
  int tdp(const BranchFacts& f) const;
  int rr(const BranchFacts& f, bool advance);
  int mfs(const BranchFacts& f, int64_t now_sec);
  int apply_shadow(const BranchFacts& f, int pick) const;
  PolicyConfig cfg_;
  unsigned rr_next_ = 0;
  int mfs_cached_ = -1;
  int64_t mfs_when_ = 0;
};

}  // namespace aufs
