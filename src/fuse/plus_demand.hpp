// SPDX-License-Identifier: GPL-2.0-or-later
// Which readdirplus replies carry attributes (readdirplus=auto).
//
// An entry sent with its attributes costs the daemon a stat of it on its
// branch (a disk read when cold) and saves the caller's later stat a
// LOOKUP. A walk that only lists names (find, the names of `ls`) pays the
// reads and saves nothing. So a calling thread is sent names only until it
// shows it stats what it lists: once it has looked up enough of the
// non-directories it was sent, it gets attributes, as every caller did
// before. Directories do not count: a walk looks them up to descend.
// No libfuse here: the frontend asks and reports by thread id.
#pragma once
#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

#include "aufs_fuse/options.hpp"

namespace aufs {

class PlusDemand {
 public:
  // Lookups of listed non-directories after which a caller gets attributes
  // (fewer if it was sent fewer).
  static constexpr uint32_t kSwitchAfter = 4;
  static constexpr size_t kCallers = 64;  // threads remembered, least recent dropped

  void configure(PlusMode m) { mode_ = m; }
  PlusMode mode() const { return mode_; }
  // Does a readdirplus reply to thread `tid` carry attributes? (tid 0: a
  // caller outside the daemon's pid namespace: always.)
  bool wants_attrs(pid_t tid);
  // A reply of names only was sent to tid, with `nondirs` non-directories.
  void sent_names(pid_t tid, size_t nondirs);
  // tid looked up a non-directory.
  void looked_up(pid_t tid) {
    if (probing_.load(std::memory_order_relaxed) == 0) return;  // the common case: nothing to learn
    note_lookup(tid);
  }
  std::string json() const;  // aufsctl: the mode and the counts

 private:
  struct Caller {
    pid_t tid = 0;
    bool attrs = false;
    uint32_t sent = 0, looked = 0;
    uint64_t used = 0;  // tick of the last use
  };
  Caller* find(pid_t tid);
  Caller& slot(pid_t tid);  // found, or the least recently used one taken over
  void note_lookup(pid_t tid);

  PlusMode mode_ = PlusMode::Auto;
  mutable std::mutex mu_;
  std::array<Caller, kCallers> callers_{};  // mu_
  uint64_t tick_ = 0;                       // mu_
  std::atomic<uint32_t> probing_{0};        // callers sent names only
  std::atomic<uint64_t> names_replies_{0}, attr_replies_{0}, switched_{0};
};

}  // namespace aufs
