// SPDX-License-Identifier: GPL-2.0-or-later
// libFuzzer target: the dirren record codec (include/aufs_fuse/dirren.hpp).
// The record is read from a branch, so its bytes are untrusted. Invariants:
//  * decode accepts only entries whose path stays below the branch root
//    (relative_path_ok) and whose branch path is not empty;
//  * what decode accepts, encode writes back to a text that decodes to the
//    same entries;
//  * unescape(escape(s)) == s for any bytes, and escape's output has no
//    space, newline or NUL (the record's separators).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "aufs_fuse/dirren.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& in) {
  std::fprintf(stderr, "fuzz_dirren: invariant broken: %s\ninput (%zu bytes)\n", what, in.size());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aufs::dirren;
  std::string in(reinterpret_cast<const char*>(data), size);

  std::string esc = escape(in);
  if (esc.find_first_of(std::string(" \n\0", 3)) != std::string::npos) fail("escape left a separator", in);
  auto back = unescape(esc);
  if (!back.ok() || back.value() != in) fail("unescape(escape(x)) != x", in);

  // As a whole record (with the magic line prepended when missing, so most
  // inputs reach the entry parser).
  std::string text = in.starts_with(kMagic) ? in : std::string(kMagic) + "\n" + in;
  auto es = decode(text);
  if (!es.ok()) return 0;
  for (const auto& e : es.value()) {
    if (!relative_path_ok(e.rel)) fail("decode accepted a path leaving the branch", in);
    if (e.branch.empty()) fail("decode accepted an empty branch path", in);
  }
  auto again = decode(encode(es.value()));
  if (!again.ok() || again.value() != es.value()) fail("decode(encode(x)) != x", in);
  return 0;
}
