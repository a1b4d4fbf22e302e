// SPDX-License-Identifier: GPL-2.0-or-later
// The fault injector behind AUFS_SYSCALL (see fault.hpp); compiled only
// with -Dfault_injection=true.
#include "aufs_fuse/fault.hpp"

#include <atomic>
#include <cerrno>
#include <mutex>

namespace aufs::fault {
namespace {
std::atomic<bool> g_armed{false};
std::atomic<uint64_t> g_count{0};
uint64_t g_target = 0;
int g_err = 0;
std::mutex g_mu;  // the trace and the fired name
std::vector<std::string> g_trace;
std::string g_fired;
}  // namespace

bool fire(const char* call) {
  if (!g_armed.load(std::memory_order_acquire)) return false;
  uint64_t k = g_count.fetch_add(1) + 1;
  std::lock_guard<std::mutex> g(g_mu);
  g_trace.emplace_back(call);
  if (k != g_target) return false;
  g_fired = call;
  errno = g_err;
  return true;
}

void arm(uint64_t n, int err) {
  std::lock_guard<std::mutex> g(g_mu);
  g_target = n;
  g_err = err;
  g_count.store(0);
  g_trace.clear();
  g_fired.clear();
  g_armed.store(true, std::memory_order_release);
}

void disarm() { g_armed.store(false, std::memory_order_release); }

uint64_t calls() { return g_count.load(); }

std::vector<std::string> trace() {
  std::lock_guard<std::mutex> g(g_mu);
  return g_trace;
}

std::string fired() {
  std::lock_guard<std::mutex> g(g_mu);
  return g_fired;
}

}  // namespace aufs::fault
