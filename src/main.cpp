// SPDX-License-Identifier: GPL-2.0-or-later
// aufs-fuse daemon: parse and validate options, open the branches, mount,
// serve. Every error before mounting is one line on stderr and exit 1.
#include <fcntl.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "aufs_fuse/options.hpp"
#include "aufs_fuse/union_fs.hpp"
#include "aufs_fuse/version.hpp"
#include "core/util.hpp"
#include "fuse/adapter.hpp"
#include "fuse/session.hpp"

namespace {

void raise_fd_limit() {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Grows the descriptor table now, while the daemon has one thread. A
// process with several threads that outgrows its table (at 256, 512, ...
// descriptors) waits for an RCU grace period: 10-20 ms measured here, in
// about half of the mounts with 127 branches under udba=notify (two
// descriptors each), and again at each doubling during a first cold walk.
// The table never shrinks; 8192 slots are 64 KiB of kernel memory.
void presize_fd_table(size_t branches) {
  long want = std::min(8192 + 4 * static_cast<long>(branches), aufs::core::fd_limit(LONG_MAX));
  if (want < 1) return;
  int fd = ::open("/", O_PATH | O_CLOEXEC);
  if (fd < 0) return;
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, static_cast<int>(want - 1));
  if (high >= 0) ::close(high);
  ::close(fd);
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "aufs-fuse: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto pr = aufs::parse_command_line(args);
  if (!pr.ok()) return fail(pr.error + " (see aufs-fuse --help)");
  aufs::MountOptions opts = pr.opts;
  if (opts.show_help) {
    std::fputs(aufs::usage_text("aufs-fuse").c_str(), stdout);
    return 0;
  }
  if (opts.show_version) {
    // The features this build can use; aufsctl says which a mount uses.
    std::printf("aufs-fuse %s, %s\n", AUFS_FUSE_VERSION, aufs::Features::build_text().c_str());
    return 0;
  }
  if (auto e = aufs::validate_options(opts); !e.empty()) return fail(e);

  auto logger = spdlog::stderr_logger_mt("aufs-fuse");
  spdlog::set_default_logger(logger);
  // Debug output interleaves worker threads: tag each line with its thread.
  spdlog::set_pattern(opts.debug ? "aufs-fuse[%P/%t]: %l: %v" : "aufs-fuse[%P]: %l: %v");
  spdlog::set_level(opts.debug ? spdlog::level::debug
                               : opts.verbose ? spdlog::level::info : spdlog::level::warn);
  aufs::route_libfuse_log();
  for (auto& n : opts.notices) spdlog::warn("{}", n);

  ::umask(0);  // the kernel applied the caller's umask already
  raise_fd_limit();
  presize_fd_table(opts.branches.size());
  std::string why;
  // Nothing is written to the branches before FUSE mounts (serve()).
  auto u = aufs::Union::mount(opts, &why, false);
  if (!u.ok())
    return fail(!why.empty() ? why : std::string("cannot open branches: ") + std::strerror(u.err()));

  return aufs::serve(*u.value(), opts);
}
