// SPDX-License-Identifier: GPL-2.0-or-later
#include "aufs_fuse/dirren.hpp"

#include <charconv>

namespace aufs::dirren {
namespace {

bool plain(unsigned char c) { return c > ' ' && c < 0x7f && c != '%'; }

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

bool relative_path_ok(std::string_view rel) {
  if (rel.empty() || rel.find('\0') != std::string_view::npos) return false;
  for (;;) {
    size_t sl = rel.find('/');
    std::string_view c = rel.substr(0, sl);
    if (c.empty() || c == "." || c == "..") return false;
    if (sl == std::string_view::npos) return true;
    rel.remove_prefix(sl + 1);
  }
}

std::string escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string r;
  r.reserve(s.size());
  for (unsigned char c : s) {
    if (plain(c)) {
      r += static_cast<char>(c);
    } else {
      r += '%';
      r += kHex[c >> 4];
      r += kHex[c & 15];
    }
  }
  return r;
}

Result<std::string> unescape(std::string_view s) {
  std::string r;
  r.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      if (!plain(static_cast<unsigned char>(s[i]))) return Errno{EINVAL};
      r += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return Errno{EINVAL};
    int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
    if (hi < 0 || lo < 0) return Errno{EINVAL};
    r += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return r;
}

std::string encode(const std::vector<Entry>& entries) {
  std::string t(kMagic);
  t += '\n';
  for (const auto& e : entries) {
    t += std::to_string(e.root_dev) + ' ' + std::to_string(e.root_ino) + ' ' +
         std::to_string(e.dir_ino) + ' ' + escape(e.branch) + ' ' + escape(e.rel) + '\n';
  }
  return t;
}

Result<std::vector<Entry>> decode(std::string_view text) {
  std::vector<Entry> out;
  size_t nl = text.find('\n');
  if (nl == std::string_view::npos || text.substr(0, nl) != kMagic) return Errno{EINVAL};
  text.remove_prefix(nl + 1);
  while (!text.empty()) {
    nl = text.find('\n');
    if (nl == std::string_view::npos) return Errno{EINVAL};  // torn last line
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    std::string_view f[5];
    for (int i = 0; i < 5; ++i) {
      size_t sp = line.find(' ');
      if ((i < 4) == (sp == std::string_view::npos)) return Errno{EINVAL};
      f[i] = line.substr(0, sp);
      line = i < 4 ? line.substr(sp + 1) : std::string_view{};
    }
    Entry e;
    if (!parse_u64(f[0], e.root_dev) || !parse_u64(f[1], e.root_ino) ||
        !parse_u64(f[2], e.dir_ino))
      return Errno{EINVAL};
    auto br = unescape(f[3]);
    auto rel = unescape(f[4]);
    if (!br.ok() || !rel.ok() || br->empty() || rel->empty()) return Errno{EINVAL};
    e.branch = std::move(br.value());
    e.rel = std::move(rel.value());
    // The path must be plain names below the branch root: an escaped NUL
    // would cut it short ("..%00x" is ".." to the kernel), and ".", ".." or
    // empty components could name the root or leave the branch.
    if (!relative_path_ok(e.rel)) return Errno{EINVAL};
    out.push_back(std::move(e));
  }
  return out;
}

const Entry* match(const std::vector<Entry>& entries, uint64_t root_dev, uint64_t root_ino,
                   std::string_view branch_path, bool* by_path) {
  for (const auto& e : entries)
    if (e.root_dev == root_dev && e.root_ino == root_ino) {
      if (by_path) *by_path = false;
      return &e;
    }
  for (const auto& e : entries)
    if (e.branch == branch_path) {
      if (by_path) *by_path = true;
      return &e;
    }
  return nullptr;
}

}  // namespace aufs::dirren
