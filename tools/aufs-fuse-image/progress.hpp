// SPDX-License-Identifier: GPL-2.0-or-later
// A progress bar of bytes processed (a layer committed, verified or
// extracted), on stderr when it is a terminal; nothing otherwise (the tool
// reports each step with note()).
#pragma once
#include <string>

namespace aufs_image {

class Progress {
 public:
  // `what` starts the bar's line ("layer sha256:0123abcd"); may be empty.
  explicit Progress(long long total, std::string what = "");
  void add(long long n);

 private:
  long long total_, done_ = 0;
  std::string what_;
  bool tty_;
  int shown_ = -1;
};

}  // namespace aufs_image
