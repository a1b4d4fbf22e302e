// SPDX-License-Identifier: GPL-2.0-or-later
// Test helpers: a temporary directory removed recursively on destruction,
// and small file helpers.
#pragma once
#include <sys/stat.h>

#include <string>
#include <vector>

namespace aufs::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::string& content, mode_t mode = 0644);
std::string read_file(const std::string& path);  // "" if missing
bool exists(const std::string& path);            // lstat
void mkdirs(const std::string& path, mode_t mode = 0755);
void remove_tree(const std::string& path);
// Sorted names in a directory (no . and ..); empty if missing.
std::vector<std::string> list(const std::string& dir);

}  // namespace aufs::test
