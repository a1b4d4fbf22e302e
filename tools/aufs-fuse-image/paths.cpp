// SPDX-License-Identifier: GPL-2.0-or-later
// Path helpers of the tool.
#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <fstream>

#include "image.hpp"

namespace aufs_image {

void mkdir_p(const std::string& path, mode_t mode) {
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), mode) < 0 && errno != EEXIST)
      throw Error("mkdir " + cur + ": " + std::strerror(errno));
  }
}

std::optional<std::vector<std::string>> list_names(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return std::nullopt;
  std::vector<std::string> names;
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

void write_file_atomic(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << data;
    if (!out.flush()) throw Error("cannot write " + tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) < 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Error("rename " + tmp + ": " + std::strerror(e));
  }
}

void remove_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return;
  if (S_ISDIR(st.st_mode)) {
    ::chmod(path.c_str(), 0700);
    if (auto names = list_names(path))
      for (auto& n : *names) remove_tree(path + "/" + n);
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

std::string absolute(const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  char cwd[PATH_MAX];
  if (!::getcwd(cwd, sizeof cwd)) throw Error("getcwd");
  return std::string(cwd) + "/" + p;
}

std::optional<std::string> clean_member(const std::string& name, std::string& why) {
  if (name.empty()) {
    why = "empty name";
    return std::nullopt;
  }
  if (name[0] == '/') {
    why = "absolute path";
    return std::nullopt;
  }
  std::string out;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t c = name.find('/', pos);
    if (c == std::string::npos) c = name.size();
    std::string comp = name.substr(pos, c - pos);
    pos = c + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      why = "'..' component";
      return std::nullopt;
    }
    if (!out.empty()) out += "/";
    out += comp;
  }
  return out;
}

}  // namespace aufs_image
