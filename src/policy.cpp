// SPDX-License-Identifier: GPL-2.0-or-later
#include "aufs_fuse/policy.hpp"

#include <charconv>

namespace aufs {
namespace {

bool num(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// Splits "name:a:b".
std::vector<std::string_view> parts(std::string_view s) {
  std::vector<std::string_view> v;
  size_t p = 0;
  while (true) {
    size_t c = s.find(':', p);
    v.push_back(s.substr(p, c == std::string_view::npos ? std::string_view::npos : c - p));
    if (c == std::string_view::npos) break;
    p = c + 1;
  }
  return v;
}

}  // namespace

std::string parse_create_policy(std::string_view s, PolicyConfig& out) {
  auto v = parts(s);
  std::string_view n = v[0];
  auto bad = [&](const char* why) { return "create=" + std::string(s) + ": " + why; };
  auto sec = [&](std::string_view x) -> bool {
    uint64_t t;
    if (!num(x, t) || t > 3600) return false;
    out.mfs_sec = static_cast<int>(t);
    return true;
  };
  if (n == "tdp" || n == "top-down-parent") {
    if (v.size() != 1) return bad("takes no argument");
    out.create = CreatePolicy::Tdp;
  } else if (n == "rr" || n == "round-robin") {
    if (v.size() != 1) return bad("takes no argument");
    out.create = CreatePolicy::Rr;
  } else if (n == "mfs" || n == "most-free-space" || n == "pmfs") {
    if (v.size() > 2 || (v.size() == 2 && !sec(v[1]))) return bad("expected [:SECONDS] (0..3600)");
    out.create = n == "pmfs" ? CreatePolicy::PMfs : CreatePolicy::Mfs;
  } else if (n == "mfsrr" || n == "tdmfs" || n == "pmfsrr") {
    if (v.size() < 2 || v.size() > 3 || !num(v[1], out.low)) return bad("expected :LOW[:SECONDS]");
    if (v.size() == 3 && !sec(v[2])) return bad("seconds must be 0..3600");
    out.create = n == "mfsrr" ? CreatePolicy::MfsRr : n == "tdmfs" ? CreatePolicy::TdMfs : CreatePolicy::PMfsRr;
  } else {
    return bad("unknown policy");
  }
  return {};
}

std::string parse_cpup_policy(std::string_view s, PolicyConfig& out) {
  if (s == "tdp" || s == "top-down-parent") out.cpup = CpupPolicy::Tdp;
  else if (s == "bup" || s == "bottom-up-parent") out.cpup = CpupPolicy::Bup;
  else if (s == "bu" || s == "bottom-up") out.cpup = CpupPolicy::Bu;
  else return "cpup=" + std::string(s) + ": unknown policy (tdp, bup or bu)";
  return {};
}

std::string format_policies(const PolicyConfig& p) {
  const char* c[] = {"tdp", "rr", "mfs", "mfsrr", "tdmfs", "pmfs", "pmfsrr"};
  const char* u[] = {"tdp", "bup", "bu"};
  std::string s = "create=";
  s += c[static_cast<int>(p.create)];
  if (p.create == CreatePolicy::MfsRr || p.create == CreatePolicy::TdMfs ||
      p.create == CreatePolicy::PMfsRr)
    s += ":" + std::to_string(p.low);
  if (p.create != CreatePolicy::Tdp && p.create != CreatePolicy::Rr)
    s += ":" + std::to_string(p.mfs_sec);
  s += ",cpup=";
  s += u[static_cast<int>(p.cpup)];
  return s;
}

int PolicyState::tdp(const BranchFacts& f) const {
  int n = static_cast<int>(f.writable.size());
  if (f.parent_top >= 0 && f.parent_top < n && f.writable[f.parent_top]) return f.parent_top;
  for (int b = std::max(0, f.parent_top); b < n; ++b)
    if (f.writable[b] && f.has_parent[b]) return b;
  // Nearest writable branch above the parent (ancestors get copied up).
  for (int b = std::min(f.parent_top, n) - 1; b >= 0; --b)
    if (f.writable[b]) return b;
  return -1;
}

int PolicyState::rr(const BranchFacts& f, bool advance) {
  std::vector<int> w;
  for (int b = 0; b < static_cast<int>(f.writable.size()); ++b)
    if (f.writable[b]) w.push_back(b);
  if (w.empty()) return -1;
  int pick = w[rr_next_ % w.size()];
  if (advance) rr_next_++;
  return pick;
}

int PolicyState::mfs(const BranchFacts& f, int64_t now) {
  if (mfs_cached_ >= 0 && mfs_cached_ < static_cast<int>(f.writable.size()) &&
      f.writable[mfs_cached_] && now - mfs_when_ < cfg_.mfs_sec)
    return mfs_cached_;
  int best = -1;
  uint64_t most = 0;
  for (int b = 0; b < static_cast<int>(f.writable.size()); ++b) {
    if (!f.writable[b]) continue;
    uint64_t fr = f.free_bytes ? f.free_bytes(b) : 0;
    if (best < 0 || fr > most) {
      best = b;
      most = fr;
    }
  }
  mfs_cached_ = best;
  mfs_when_ = now;
  return best;
}

// Never below a whiteout or opaque parent that would hide the new entry:
// move up to the nearest writable branch at or above it.
int PolicyState::apply_shadow(const BranchFacts& f, int pick) const {
  if (pick < 0 || f.shadow < 0 || pick <= f.shadow) return pick;
  for (int b = f.shadow; b >= 0; --b)
    if (f.writable[b]) return b;
  return -1;
}

int PolicyState::select_create(const BranchFacts& f, bool is_mkdir, int64_t now) {
  int pick = -1;
  auto free_of = [&](int b) { return f.free_bytes ? f.free_bytes(b) : 0; };
  switch (cfg_.create) {
    case CreatePolicy::Tdp:
      pick = tdp(f);
      break;
    case CreatePolicy::Rr:
      pick = rr(f, !is_mkdir);
      break;
    case CreatePolicy::Mfs:
      pick = mfs(f, now);
      break;
    case CreatePolicy::MfsRr:
      pick = mfs(f, now);
      if (pick >= 0 && free_of(pick) < cfg_.low) pick = rr(f, !is_mkdir);
      break;
    case CreatePolicy::TdMfs: {
      int top = f.shadow >= 0 ? f.shadow : static_cast<int>(f.writable.size()) - 1;
      for (int b = 0; b <= top && b < static_cast<int>(f.writable.size()); ++b)
        if (f.writable[b] && free_of(b) > cfg_.low) {
          pick = b;
          break;
        }
      if (pick < 0) pick = mfs(f, now);
      break;
    }
    case CreatePolicy::PMfs:
    case CreatePolicy::PMfsRr: {
      uint64_t most = 0;
      for (int b = 0; b < static_cast<int>(f.writable.size()); ++b) {
        if (!f.writable[b] || !f.has_parent[b]) continue;
        uint64_t fr = free_of(b);
        if (pick < 0 || fr > most) {
          pick = b;
          most = fr;
        }
      }
      if (pick < 0) pick = tdp(f);
      else if (cfg_.create == CreatePolicy::PMfsRr && most < cfg_.low) pick = mfs(f, now);
      break;
    }
  }
  return apply_shadow(f, pick);
}

int PolicyState::select_cpup(const BranchFacts& f, int src) const {
  int n = static_cast<int>(f.writable.size());
  if (src >= 0 && src < n && f.writable[src]) return src;  // modified in place
  switch (cfg_.cpup) {
    case CpupPolicy::Tdp: {
      // A writable branch above the source holding the parent, else the
      // nearest writable branch above the source.
      for (int b = std::max(0, f.parent_top); b < src && b < n; ++b)
        if (f.writable[b] && f.has_parent[b]) return b;
      for (int b = src - 1; b >= 0; --b)
        if (f.writable[b]) return b;
      return -1;
    }
    case CpupPolicy::Bup:
      for (int b = src - 1; b >= 0; --b)
        if (f.writable[b] && f.has_parent[b]) return b;
      [[fallthrough]];
    case CpupPolicy::Bu:
      for (int b = src - 1; b >= 0; --b)
        if (f.writable[b]) return b;
      return -1;
  }
  return -1;
}

}  // namespace aufs
