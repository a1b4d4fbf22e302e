// SPDX-License-Identifier: GPL-2.0-or-later
// Injected system-call faults, for tests only (meson -Dfault_injection=true;
// tests/reliability/README.md). Every branch system call goes through
// AUFS_SYSCALL in sys.cpp; in a normal build the macro is the bare call, so
// nothing is counted and nothing can fail on purpose.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#ifdef AUFS_FAULT_INJECTION
namespace aufs::fault {

// Counts one call named `call`; true, with errno set, if it is the armed one.
bool fire(const char* call);
// Counts calls from now on; the n-th (1-based; 0: none) fails with `err`.
void arm(uint64_t n, int err);
// Stops counting and failing.
void disarm();
// Calls counted since arm(), and their names in order.
uint64_t calls();
std::vector<std::string> trace();
// The call that was failed ("" if none).
std::string fired();

}  // namespace aufs::fault

#define AUFS_SYSCALL(name, expr) (::aufs::fault::fire(name) ? -1 : (expr))
#else
#define AUFS_SYSCALL(name, expr) (expr)
#endif
