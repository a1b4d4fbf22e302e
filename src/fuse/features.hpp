// SPDX-License-Identifier: GPL-2.0-or-later
// libfuse's newer features: which ones this build has (by what the
// library's headers offer, AUFS_HAVE_* from meson), which ones the options
// ask for, and which ones the kernel granted at INIT. Each one that is off
// says why, for `aufs-fuse --version` and the control file (aufsctl).
#pragma once
#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

#include <array>
#include <atomic>
#include <mutex>
#include <string>

#include "aufs_fuse/options.hpp"

namespace aufs {

enum class Feature { Passthrough, KillprivV2, ExpireOnly, IoUring };
inline constexpr size_t kFeatureCount = 4;

class Features {
 public:
  // What this build of aufs-fuse can use, one line ("libfuse 3.18.3:
  // passthrough handle_killpriv_v2 ...").
  static std::string build_text();
  static bool built(Feature f);

  // Before the session: what the options ask for.
  void configure(const MountOptions& o);
  // libfuse's session options for what is asked (-o io_uring...).
  std::vector<std::string> session_options() const;
  // INIT: asks the kernel for what is built, asked for and offered.
  void negotiate(fuse_conn_info* conn);
  bool active(Feature f) const { return active_[static_cast<size_t>(f)].load(std::memory_order_relaxed); }
  // A request came through a ring: io_uring is in use.
  void saw_uring_request();
  // INIT asked the kernel for io_uring (-o io_uring, offered by the kernel);
  // libfuse may still fall back to /dev/fuse quietly.
  bool uring_asked() const { return uring_asked_; }
  // {"libfuse": "3.18.3", "passthrough": {"active": true}, "io_uring":
  // {"active": false, "why": "..."}} (the control file's "fuse" member).
  std::string json() const;

 private:
  void set(Feature f, bool on, std::string why);
  std::array<std::atomic<bool>, kFeatureCount> active_{};
  mutable std::mutex mu_;  // why_
  std::array<std::string, kFeatureCount> why_;
  PassthroughMode passthrough_ = PassthroughMode::Rw;
  bool io_uring_ = false;
  bool uring_asked_ = false;  // set once, at INIT
  unsigned io_uring_q_depth_ = 0;
};

// The daemon's effective capabilities include CAP_SYS_ADMIN (needed by the
// kernel to register a backing file for passthrough).
bool have_cap_sys_admin();

}  // namespace aufs
