// SPDX-License-Identifier: GPL-2.0-or-later
// The progress bar (see progress.hpp).
#include "progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "image.hpp"

namespace aufs_image {

Progress::Progress(long long total, std::string what)
    : total_(total), what_(std::move(what)), tty_(::isatty(2) && !g_quiet) {}

void Progress::add(long long n) {
  done_ += n;
  if (!tty_) return;
  int pct = total_ > 0 ? static_cast<int>(std::min(done_, total_) * 100 / total_) : 100;
  if (pct == shown_) return;
  shown_ = pct;
  std::string bar(30, ' ');
  std::fill(bar.begin(), bar.begin() + pct * 30 / 100, '#');
  std::fprintf(stderr, "\r%s%s[%s] %3d%% %lld/%lld MiB", what_.c_str(), what_.empty() ? "" : " ",
               bar.c_str(), pct, done_ >> 20, total_ >> 20);
  if (done_ >= total_) std::fputc('\n', stderr);
}

}  // namespace aufs_image
