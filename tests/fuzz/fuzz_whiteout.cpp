// SPDX-License-Identifier: GPL-2.0-or-later
// libFuzzer target: the whiteout name codec (include/aufs_fuse/whiteout.hpp).
// Invariants, for any name:
//  * whiteout_of(name) is a whiteout name; its target is name again unless
//    the result is AUFS metadata (.wh..wh.*);
//  * temp_name(name, seq) is metadata and a temporary name, and fits 255
//    bytes whenever check_user_name(name) accepts name;
//  * check_user_name: ENAMETOOLONG iff > 242 bytes, else EPERM iff .wh.*;
//  * whiteout_target never returns a name that is itself a whiteout of ""
//    and is_temp_name implies is_meta_name.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "aufs_fuse/whiteout.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& in) {
  std::fprintf(stderr, "fuzz_whiteout: invariant broken: %s\ninput (%zu bytes)\n", what, in.size());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aufs::wh;
  uint32_t seq = 0;
  if (size >= 4) {
    std::memcpy(&seq, data, 4);
    data += 4;
    size -= 4;
  }
  std::string name(reinterpret_cast<const char*>(data), size);

  std::string w = whiteout_of(name);
  if (!is_whiteout_name(w)) fail("whiteout_of is not a whiteout name", name);
  if (!is_meta_name(w) && whiteout_target(w) != name) fail("whiteout_target(whiteout_of(x)) != x", name);
  if (is_meta_name(w) && !whiteout_target(w).empty()) fail("metadata has a whiteout target", name);

  auto t = whiteout_target(name);
  if (!t.empty() && (!is_whiteout_name(name) || whiteout_of(t) != name))
    fail("whiteout_target inconsistent with whiteout_of", name);
  if (is_whiteout_name(name) && !is_meta_name(name) && name.size() > kPrefix.size() && t.empty())
    fail("a whiteout without target", name);

  std::string tmp = temp_name(name, seq);
  if (!is_meta_name(tmp) || !is_temp_name(tmp)) fail("temp_name is not a temporary name", name);
  if (tmp.size() != name.size() + kDoublePrefix.size() + 5) fail("temp_name length", name);
  if (is_temp_name(name) && !is_meta_name(name)) fail("temp name that is not metadata", name);

  int e = check_user_name(name);
  int want = name.size() > kMaxNameLen ? ENAMETOOLONG : is_whiteout_name(name) ? EPERM : 0;
  if (e != want) fail("check_user_name", name);
  if (e == 0) {
    if (tmp.size() > 255) fail("accepted name's temporary name exceeds 255 bytes", name);
    if (w.size() > 255) fail("accepted name's whiteout exceeds 255 bytes", name);
    if (is_meta_name(w)) fail("accepted name whose whiteout is metadata", name);
  }
  if (check_user_name(name, true) == EPERM) fail("shwh still refuses .wh. names", name);
  return 0;
}
