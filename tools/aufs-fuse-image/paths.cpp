// Path helpers of the tool.
#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

void remove_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return;
  if (S_ISDIR(st.st_mode)) {
    ::chmod(path.c_str(), 0700);
    if (DIR* d = ::opendir(path.c_str())) {
      std::vector<std::string> names;
      while (auto* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
      }
      ::closedir(d);
      for (auto& n : names) remove_tree(path + "/" + n);
    }
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
