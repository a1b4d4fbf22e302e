// SPDX-License-Identifier: GPL-2.0-or-later
// Runs a fuzz target over files (or directories of files) given on the
// command line, without libFuzzer: the regression corpus in CI (gcc builds).
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

int run_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return 1;
  }
  std::vector<char> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(buf.data()), buf.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int files = 0, rc = 0;
  for (int i = 1; i < argc; ++i) {
    struct stat st;
    if (::stat(argv[i], &st) < 0) {
      std::fprintf(stderr, "missing: %s\n", argv[i]);
      return 1;
    }
    if (S_ISDIR(st.st_mode)) {
      std::vector<std::string> names;
      if (DIR* d = ::opendir(argv[i])) {
        while (auto* e = ::readdir(d))
          if (e->d_name[0] != '.') names.push_back(e->d_name);
        ::closedir(d);
      }
      std::sort(names.begin(), names.end());
      for (auto& n : names) {
        rc |= run_file(std::string(argv[i]) + "/" + n);
        ++files;
      }
    } else {
      rc |= run_file(argv[i]);
      ++files;
    }
  }
  std::printf("replayed %d inputs\n", files);
  return rc || files == 0;
}
