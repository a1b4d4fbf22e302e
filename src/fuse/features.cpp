// SPDX-License-Identifier: GPL-2.0-or-later
// Feature negotiation with libfuse and the kernel (see features.hpp).
#include "fuse/features.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace aufs {
namespace {

constexpr const char* kNames[kFeatureCount] = {"passthrough", "handle_killpriv_v2", "expire_only",
                                               "io_uring"};
// The libfuse release that first has each (for "library too old").
constexpr const char* kSince[kFeatureCount] = {"3.16", "3.18", "3.16", "3.18"};

constexpr bool kBuilt[kFeatureCount] = {AUFS_HAVE_PASSTHROUGH != 0, AUFS_HAVE_KILLPRIV_V2 != 0,
                                        AUFS_HAVE_EXPIRE_ONLY != 0, AUFS_HAVE_IO_URING != 0};

std::string too_old(Feature f) {
  return std::string("library too old (built with libfuse ") + fuse_pkgversion() + "; needs " +
         kSince[static_cast<size_t>(f)] + ")";
}

#if AUFS_HAVE_IO_URING
// The module parameter that gates FUSE over io_uring ("Y"/"N"; "" if absent).
std::string uring_param() {
  std::ifstream in("/sys/module/fuse/parameters/enable_uring");
  std::string v;
  in >> v;
  return v;
}
#endif

}  // namespace

bool have_cap_sys_admin() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    unsigned long long caps = std::strtoull(line.c_str() + 7, nullptr, 16);
    return caps & (1ULL << 21);  // CAP_SYS_ADMIN
  }
  return false;
}

bool Features::built(Feature f) { return kBuilt[static_cast<size_t>(f)]; }

std::string Features::build_text() {
  std::string s = std::string("libfuse ") + fuse_pkgversion() + ":";
  for (size_t i = 0; i < kFeatureCount; ++i)
    if (kBuilt[i]) s += std::string(" ") + kNames[i];
  bool none = true;
  for (bool b : kBuilt) none = none && !b;
  if (none) s += " (none of passthrough, handle_killpriv_v2, expire_only, io_uring)";
  return s;
}

void Features::configure(const MountOptions& o) {
  passthrough_ = o.passthrough;
  io_uring_ = o.io_uring;
  io_uring_q_depth_ = o.io_uring_q_depth;
  for (size_t i = 0; i < kFeatureCount; ++i)
    if (!kBuilt[i]) why_[i] = too_old(static_cast<Feature>(i));
  if (io_uring_ && !kBuilt[static_cast<size_t>(Feature::IoUring)])
    spdlog::warn("io_uring: {}; using the normal request path", too_old(Feature::IoUring));
}

std::vector<std::string> Features::session_options() const {
  std::vector<std::string> v;
#if AUFS_HAVE_IO_URING
  if (io_uring_) {
    v.push_back("io_uring");
    if (io_uring_q_depth_) v.push_back("io_uring_q_depth=" + std::to_string(io_uring_q_depth_));
  }
#endif
  return v;
}

void Features::set(Feature f, bool on, std::string why) {
  std::lock_guard<std::mutex> g(mu_);
  active_[static_cast<size_t>(f)].store(on, std::memory_order_relaxed);
  why_[static_cast<size_t>(f)] = std::move(why);
}

void Features::negotiate(fuse_conn_info* conn) {
  const char* no_kernel = "the kernel did not offer it";
  (void)conn;
  (void)no_kernel;
#if AUFS_HAVE_KILLPRIV_V2
  // The daemon clears set-id bits itself (adapter: write, open with
  // O_TRUNC, truncate): no security.capability GETXATTR before each write.
  if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV_V2) {
    conn->want |= FUSE_CAP_HANDLE_KILLPRIV_V2;
    set(Feature::KillprivV2, true, "");
  } else {
    set(Feature::KillprivV2, false, no_kernel);
  }
#endif
#if AUFS_HAVE_EXPIRE_ONLY
  set(Feature::ExpireOnly, conn->capable & FUSE_CAP_EXPIRE_ONLY, conn->capable & FUSE_CAP_EXPIRE_ONLY ? "" : no_kernel);
#endif
#if AUFS_HAVE_PASSTHROUGH
  if (passthrough_ == PassthroughMode::None) {
    set(Feature::Passthrough, false, "option off (passthrough=none)");
  } else if (!(conn->capable & FUSE_CAP_PASSTHROUGH)) {
    set(Feature::Passthrough, false, std::string(no_kernel) + " (needs Linux 6.9)");
  } else if (!have_cap_sys_admin()) {
    set(Feature::Passthrough, false, "no CAP_SYS_ADMIN (the kernel registers backing files for it only)");
  } else {
    conn->want |= FUSE_CAP_PASSTHROUGH;
    // Branch files on a plain file system only (stacking depth 0): this
    // mount then stays usable as an overlayfs layer; a backing file on a
    // stacked branch is refused and that open falls back.
    conn->max_backing_stack_depth = 0;
    set(Feature::Passthrough, true, "");
  }
#endif
#if AUFS_HAVE_IO_URING
  if (!io_uring_) {
    // libfuse asks for it by default where offered (its rings start only
    // when enabled): the option alone decides.
    conn->want &= ~FUSE_CAP_OVER_IO_URING;
    set(Feature::IoUring, false, "option off (-o io_uring enables it)");
  } else if (!(conn->capable & FUSE_CAP_OVER_IO_URING)) {
    std::string p = uring_param();
    std::string why = p == "N" ? "the kernel did not offer it (/sys/module/fuse/parameters/enable_uring is N)"
                               : std::string(no_kernel) + " (needs Linux 6.14 with CONFIG_FUSE_IO_URING)";
    spdlog::warn("io_uring: {}; using the normal request path", why);
    set(Feature::IoUring, false, why);
  } else {
    conn->want |= FUSE_CAP_OVER_IO_URING;
    uring_asked_ = true;
    // Active once a request arrives through a ring (libfuse falls back
    // quietly when it cannot start the rings).
    set(Feature::IoUring, false, "requested; no request has come through a ring yet");
  }
#endif
}

void Features::saw_uring_request() {
  if (!active(Feature::IoUring)) set(Feature::IoUring, true, "");
}

std::string Features::json() const {
  nlohmann::ordered_json j;
  j["libfuse"] = fuse_pkgversion();
  std::lock_guard<std::mutex> g(mu_);
  for (size_t i = 0; i < kFeatureCount; ++i) {
    nlohmann::ordered_json f;
    f["active"] = active_[i].load(std::memory_order_relaxed);
    if (!f["active"].get<bool>()) f["why"] = why_[i].empty() ? "not negotiated" : why_[i];
    j[kNames[i]] = std::move(f);
  }
  return j.dump();
}

}  // namespace aufs
