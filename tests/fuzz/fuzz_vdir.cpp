// SPDX-License-Identifier: GPL-2.0-or-later
// libFuzzer target: the merged directory listing (merge_listings in
// include/aufs_fuse/vdir.hpp). The input describes 1..5 branch listings
// with names from a small alphabet (so names, whiteouts and long names
// collide). Invariants of the output:
//  * no .wh.* name; no name twice;
//  * every name comes from an input listing of the branch it is reported
//    for, and is the first (top-most) such occurrence not hidden;
//  * a name whited out on a higher wh-able branch (that is not the last one
//    examined) never shows through from below;
//  * names longer than 242 bytes are typed DT_UNKNOWN, others keep theirs.
#include <dirent.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "aufs_fuse/vdir.hpp"
#include "aufs_fuse/whiteout.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& name) {
  std::fprintf(stderr, "fuzz_vdir: invariant broken: %s (name '%s')\n", what, name.c_str());
  std::abort();
}

struct Reader {
  const uint8_t* p;
  size_t n;
  uint8_t byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
};

std::string make_name(Reader& r) {
  static const char* parts[] = {"a", "b", ".wh.", "c", ".wh..wh.", ".opq", "x", "."};
  uint8_t k = r.byte();
  std::string s;
  if (k & 0x80) {
    s.assign(237 + (k & 15), 'L');  // around the 242-byte limit
    if (k & 0x40) s = ".wh." + s;
    return s;
  }
  int len = 1 + (k & 3);
  for (int i = 0; i < len; ++i) s += parts[r.byte() % 8];
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader r{data, size};
  int nlayers = 1 + r.byte() % 5;
  std::vector<aufs::BranchListing> layers;
  for (int i = 0; i < nlayers; ++i) {
    aufs::BranchListing l;
    uint8_t f = r.byte();
    l.branch = i * 2 + (f & 1);  // increasing, not necessarily contiguous
    l.wh_able = f & 2;
    l.own_wh_hides = f & 4;
    int n = r.byte() % 24;
    for (int k = 0; k < n; ++k) {
      aufs::sys::RawDirent d;
      d.name = make_name(r);
      d.ino = r.byte();
      static const unsigned char types[] = {DT_REG, DT_DIR, DT_LNK, DT_UNKNOWN};
      d.type = types[r.byte() % 4];
      l.entries.push_back(d);
    }
    layers.push_back(std::move(l));
  }
  auto out = aufs::merge_listings(layers);

  std::set<std::string> seen;
  for (auto& e : out) {
    if (aufs::wh::is_whiteout_name(e.name)) fail("whiteout name listed", e.name);
    if (!seen.insert(e.name).second) fail("duplicate name", e.name);
    // Its source: the listing of the reported branch holds it.
    const aufs::BranchListing* src = nullptr;
    size_t src_idx = 0;
    for (size_t i = 0; i < layers.size(); ++i)
      if (layers[i].branch == e.branch) {
        src = &layers[i];
        src_idx = i;
      }
    if (!src) fail("unknown branch", e.name);
    const aufs::sys::RawDirent* de = nullptr;
    for (auto& x : src->entries)
      if (x.name == e.name && !de) de = &x;
    if (!de) fail("name not in the reported branch's listing", e.name);
    // Top-most: no higher layer lists it (an own whiteout there would hide
    // it below as well), and no higher wh-able, non-last layer whites it out.
    for (size_t i = 0; i < src_idx; ++i) {
      const auto& l = layers[i];
      for (auto& x : l.entries)
        if (x.name == e.name) fail("reported from a lower branch than the top-most copy", e.name);
      bool wh_here = l.wh_able && i + 1 < layers.size();
      for (auto& x : l.entries)
        if (wh_here && x.name == aufs::wh::whiteout_of(e.name)) fail("shown although whited out above", e.name);
    }
    unsigned char want = e.name.size() > aufs::wh::kMaxNameLen ? static_cast<unsigned char>(DT_UNKNOWN) : de->type;
    if (e.type != want) fail("wrong d_type", e.name);
    if (e.branch_ino != de->ino) fail("inode of another entry", e.name);
  }
  // Nothing visible is lost: a plain name on the top layer, with no
  // whiteout of its own there, is listed.
  const auto& top = layers[0];
  std::set<std::string> top_wh;
  for (auto& x : top.entries)
    if (!aufs::wh::whiteout_target(x.name).empty()) top_wh.insert(std::string(aufs::wh::whiteout_target(x.name)));
  for (auto& x : top.entries) {
    if (aufs::wh::is_whiteout_name(x.name)) continue;
    if (top.wh_able && top.own_wh_hides && top_wh.count(x.name)) continue;
    if (!seen.count(x.name)) fail("top-layer name lost", x.name);
  }
  return 0;
}
